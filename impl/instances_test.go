package impl_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"registrar/db/dbtest"
	"registrar/impl/config"
	"registrar/impl/ratelimit"
)

// running starts the server's background work (the revocation listener
// among it) for the test's duration.
func (e *testEnv) running() *testEnv {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.server.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return e
}

// TestRevocationReachesTheOtherInstance: a logout on one instance is seen
// by the other within a second, its cached copy of the token included
// (the test clock stands still, so the cache's TTL never expires it).
func TestRevocationReachesTheOtherInstance(t *testing.T) {
	a := newEnv(t).running()
	b := a.twin().running()
	for _, how := range []string{"logout", "logout/all", "password"} {
		name := "roamer" + strconv.Itoa(len(how))
		tok := a.register(name, "pw-roamer-1").str("access_token")
		caller := a.do("POST", loginURL, loginBody(name, "pw-roamer-1")).str("access_token")
		b.do("GET", whoamiURL, "", bearer(tok)...).expect(t, 200, "") // cached on b
		time.Sleep(300 * time.Millisecond)                            // the listeners are up
		switch how {
		case "password":
			a.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-roamer-2", "auth": passwordAuth(name, "pw-roamer-1", "")}),
				bearer(caller)...).expect(t, 200, "")
		default:
			a.do("POST", "/_matrix/client/v3/"+how, "", bearer(tok)...).expect(t, 200, "")
		}
		start := time.Now()
		for b.do("GET", whoamiURL, "", bearer(tok)...).Status != 401 {
			if time.Since(start) > time.Second {
				t.Fatalf("%s on one instance: the other still accepts the token after %s", how, time.Since(start))
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("%s: the other instance refused the token after %s", how, time.Since(start))
	}
}

// TestSecondInstanceNeedsNoCopiedFiles: an instance with the same
// configuration (and, on PostgreSQL, its own data directory) continues
// the first one's UIA session: the key sealing sessions is shared.
func TestSecondInstanceNeedsNoCopiedFiles(t *testing.T) {
	a := newEnv(t, func(c *config.Config) { c.MacaroonSecretKey, c.DataDirectory = "", t.TempDir() })
	bcfg := a.cfg
	if dbtest.Postgres() {
		bcfg.DataDirectory = t.TempDir()
	}
	b := &testEnv{t: t, cfg: bcfg, db: a.db, clock: a.clock}
	b.open()
	session := a.do("POST", registerURL, `{"username":"second","password":"pw-second-1"}`).expect(t, 401, "").str("session")
	b.do("POST", registerURL, stage("m.login.dummy", session)).expect(t, 200, "")
	if dbtest.Postgres() {
		if _, err := os.Stat(bcfg.DataDirectory + "/macaroon_secret_key"); err == nil {
			t.Fatal("a key file was generated though the database holds the key")
		}
	}
}

// TestLastTokenUseAcrossInstances: the last use of a registration token,
// raced from two instances, is spent once.
func TestLastTokenUseAcrossInstances(t *testing.T) {
	a := newEnv(t, tokenRequired)
	b := a.twin()
	admin := a.adminToken("root")
	token := a.newToken(admin, `{"uses_allowed":1}`)
	envs := []*testEnv{a, b}
	results := concurrently(8, func(i int) response {
		e := envs[i%2]
		body := map[string]any{"username": fmt.Sprintf("racer%d", i), "password": "pw-racer-1",
			"auth": map[string]any{"type": "m.login.registration_token", "token": token}}
		first := e.doQuiet("POST", registerURL, jsonBody(body))
		if first.Status != 401 {
			return first
		}
		return e.doQuiet("POST", registerURL, stage("m.login.dummy", first.str("session")))
	})
	wins := 0
	for _, r := range results {
		if r.Status == 200 {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d registrations spent a single-use token", wins)
	}
	if st := a.tokenState(admin, token); st.Body["completed"] != float64(1) || st.Body["pending"] != float64(0) {
		t.Fatalf("token state %s", st.Raw)
	}
}

// TestRateLimitsSharedThroughRedis: with redis configured, the rc_login
// address bucket is one across both instances.
func TestRateLimitsSharedThroughRedis(t *testing.T) {
	addr := os.Getenv("REGISTRAR_TEST_REDIS")
	if addr == "" {
		t.Skip("REGISTRAR_TEST_REDIS is not set (make test sets it when Redis answers on 127.0.0.1:6379)")
	}
	host, port, _ := cutHostPort(addr)
	a := newEnv(t, func(c *config.Config) {
		c.Redis = config.Redis{Enabled: true, Host: host, Port: port, Dbid: 1}
		c.RcLogin.Address = ratelimit.Rate{PerSecond: 0.001, BurstCount: 4}
	})
	b := a.twin()
	// A fresh bucket per run, even with other runs sharing the Redis: an
	// IPv6 /64 of 2^32.
	ip := fmt.Sprintf("[2001:db8:%x:%x::1]", rand.Uint32()>>16, rand.Uint32()&0xffff)
	limited := 0
	for i := 0; i < 10; i++ {
		r := []*testEnv{a, b}[i%2].doFrom(ip, "POST", loginURL, loginBody("nobody", "x"))
		if r.Status == 429 {
			limited++
		}
	}
	if limited != 6 {
		t.Fatalf("%d of 10 logins refused across the instances, want 6 (burst 4)", limited)
	}
}

func cutHostPort(addr string) (string, int, error) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			p, err := strconv.Atoi(addr[i+1:])
			return addr[:i], p, err
		}
	}
	return addr, 0, fmt.Errorf("no port in %q", addr)
}
