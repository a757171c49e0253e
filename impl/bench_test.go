package impl_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"registrar/impl/config"
	"registrar/impl/secrets"
)

// BenchmarkBareHTTP is the baseline: a plain net/http handler writing a
// small JSON object, through the same harness.
func BenchmarkBareHTTP(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"versions":["v1.7"]}`))
	})
	benchRequest(b, h, "GET", "/_matrix/client/versions", "")
}

// BenchmarkVersions is the cheapest validated GET through the full stack.
func BenchmarkVersions(b *testing.B) {
	env := newBenchEnv(b)
	benchRequest(b, env.server, "GET", "/_matrix/client/versions", "")
}

// BenchmarkVersionsAccessLog is BenchmarkVersions with the access log on
// (the default), written as JSON: the log's cost per request.
func BenchmarkVersionsAccessLog(b *testing.B) {
	env := newEnv(b, func(c *config.Config) { c.AccessLog = true })
	env.logs = io.Discard
	env.open()
	benchRequest(b, env.server, "GET", "/_matrix/client/versions", "")
}

// BenchmarkAvailable is a validated GET with a query parameter and one
// indexed lookup.
func BenchmarkAvailable(b *testing.B) {
	env := newBenchEnv(b)
	benchRequest(b, env.server, "GET", "/_matrix/client/v3/register/available?username=alice", "")
}

// BenchmarkRegisterRejected is a validated 148-byte POST refused by the
// username rules before any write.
func BenchmarkRegisterRejected(b *testing.B) {
	env := newBenchEnv(b)
	body := `{"username":"_alice","password":"correct-horse-battery-staple-1","auth":{"type":"m.login.dummy"},"device_id":"ABC","initial_device_display_name":"x"}`
	benchRequest(b, env.server, "POST", "/_matrix/client/v3/register", body)
}

// BenchmarkRegisterFirstChallenge is the first POST /register of a flow
// without a password: validation, username lookup, the 401 (no write: the
// session is stored when a stage first completes or it keeps a password).
func BenchmarkRegisterFirstChallenge(b *testing.B) {
	env := newBenchEnv(b)
	body := `{"username":"alice","device_id":"ABC","initial_device_display_name":"x"}`
	benchRequest(b, env.server, "POST", "/_matrix/client/v3/register", body)
}

// BenchmarkRegisterFirstChallengeKeepingPassword is the first POST
// /register with a password: the 401 and the session stored with the
// password sealed (one write).
func BenchmarkRegisterFirstChallengeKeepingPassword(b *testing.B) {
	env := newEnv(b, func(c *config.Config) { c.UIAuth.MaxSessionsPerAddress = 0 })
	body := `{"username":"alice","password":"correct-horse-battery-staple-1","device_id":"ABC","initial_device_display_name":"x"}`
	benchRequest(b, env.server, "POST", "/_matrix/client/v3/register", body)
}

// BenchmarkWhoami is the cheapest authenticated call: it stands for the
// cost of authenticating any request (token cache warm).
func BenchmarkWhoami(b *testing.B) {
	env := newBenchEnv(b)
	token := env.register("bencher", "pw-bench-1").str("access_token")
	benchRequest(b, env.server, "GET", "/_matrix/client/v3/account/whoami", "", "Authorization", "Bearer "+token)
}

// BenchmarkLoginWrongPassword times a failed login to a known user and to
// an unknown one (bcrypt at cost 8): the two should take the same time
// (TestUnknownUserCostsWhatAWrongPasswordCosts asserts the same work).
func BenchmarkLoginWrongPassword(b *testing.B) {
	env := newEnv(b, func(c *config.Config) { c.PasswordConfig.Algorithm = "bcrypt"; c.BcryptRounds = 8 })
	env.register("known", "pw-known-1")
	for _, user := range []string{"known", "unknown"} {
		b.Run(user, func(b *testing.B) {
			benchRequest(b, env.server, "POST", "/_matrix/client/v3/login", loginBody(user, "wrong-password"))
		})
	}
}

// introspectionEnv is a server with a configured client, for the
// introspection benchmarks.
func introspectionEnv(b *testing.B) *testEnv {
	return newEnv(b, func(c *config.Config) {
		c.Clients = []config.Client{{ClientID: "synapse", ClientSecret: "client-secret-0123456789"}}
	})
}

var introspectionAuth = []string{"Content-Type", "application/x-www-form-urlencoded",
	"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("synapse:client-secret-0123456789"))}

// BenchmarkIntrospect is what a homeserver asks on every request it
// serves: POST /oauth2/introspect for a live token (token cache warm).
func BenchmarkIntrospect(b *testing.B) {
	env := introspectionEnv(b)
	token := env.register("bencher", "pw-bench-1").str("access_token")
	benchRequest(b, env.server, "POST", "/oauth2/introspect", "token="+token+"&token_type_hint=access_token", introspectionAuth...)
}

// BenchmarkIntrospectLiveTokens introspects tokens drawn at random from
// 1k, 100k and 1M live ones (1000 accounts, a device each token): past
// the token cache's 100k entries most lookups read the database.
func BenchmarkIntrospectLiveTokens(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			env := introspectionEnv(b)
			seedTokens(b, env, n)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				body := "token=bench-token-" + strconv.Itoa(rng.IntN(n)) + "&token_type_hint=access_token"
				req := httptest.NewRequestWithContext(ctx, "POST", "/oauth2/introspect", strings.NewReader(body))
				req.Header.Set(introspectionAuth[0], introspectionAuth[1])
				req.Header.Set(introspectionAuth[2], introspectionAuth[3])
				rec := httptest.NewRecorder()
				env.server.ServeHTTP(rec, req)
				if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"active":true`) {
					b.Fatalf("%d %s", rec.Code, rec.Body.String())
				}
			}
		})
	}
}

// seedTokens writes n live access tokens bench-token-0... (hashed as
// registrar stores them) on 1000 accounts, a device each, in batches.
func seedTokens(b *testing.B, env *testEnv, n int) {
	b.Helper()
	const users, batch = 1000, 500
	sqlDB, err := env.store.SQLDB()
	if err != nil {
		b.Fatal(err)
	}
	var rows []string
	flush := func(stmt string) {
		if len(rows) == 0 {
			return
		}
		if _, err := sqlDB.Exec(stmt + strings.Join(rows, ",")); err != nil {
			b.Fatal(err)
		}
		rows = rows[:0]
	}
	for u := 0; u < users; u++ {
		rows = append(rows, fmt.Sprintf("('@u%d:example.org', 'u%d', 1)", u, u))
		if len(rows) == batch {
			flush("INSERT INTO accounts (user_id, localpart_lower, created_at) VALUES ")
		}
	}
	flush("INSERT INTO accounts (user_id, localpart_lower, created_at) VALUES ")
	for i := 0; i < n; i++ {
		rows = append(rows, fmt.Sprintf("('@u%d:example.org', 'D%d', 1)", i%users, i))
		if len(rows) == batch {
			flush("INSERT INTO devices (user_id, device_id, created_at) VALUES ")
		}
	}
	flush("INSERT INTO devices (user_id, device_id, created_at) VALUES ")
	for i := 0; i < n; i++ {
		rows = append(rows, fmt.Sprintf("('%s', '@u%d:example.org', 'D%d', 1)", secrets.HashToken("bench-token-"+strconv.Itoa(i)), i%users, i))
		if len(rows) == batch {
			flush("INSERT INTO access_tokens (token_hash, user_id, device_id, created_at) VALUES ")
		}
	}
	flush("INSERT INTO access_tokens (token_hash, user_id, device_id, created_at) VALUES ")
}

// BenchmarkSignInPage renders the sign-in page in German: the language
// picked from Accept-Language, the layout, the catalogue's messages and
// the security headers.
func BenchmarkSignInPage(b *testing.B) {
	env := newBenchEnv(b)
	benchRequest(b, env.server, "GET", "/_registrar/login", "", "Accept-Language", "de-DE,de;q=0.9")
}

// BenchmarkPageAsset serves the style sheet.
func BenchmarkPageAsset(b *testing.B) {
	env := newBenchEnv(b)
	benchRequest(b, env.server, "GET", "/_registrar/static/registrar.css", "")
}
