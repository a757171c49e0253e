package impl_test

import (
	"context"
	"net/http"
	"registrar/impl/config"
	"strings"
	"testing"
	"time"
)

func TestLoginFlowsAndCaseInsensitiveLogin(t *testing.T) {
	env := newEnv(t)
	flows := env.do("GET", loginURL, "").expect(t, 200, "")
	if jsonBody(flows.Body["flows"]) != `[{"type":"m.login.password"}]` {
		t.Fatalf("flows %s", flows.Raw)
	}
	env.register("Dora", "pw-dora-1").expect(t, 200, "")
	for _, user := range []string{"dora", "DORA", "@dora:example.org", "@Dora:example.org"} {
		r := env.do("POST", loginURL, loginBody(user, "pw-dora-1")).expect(t, 200, "")
		if r.str("user_id") != "@dora:example.org" || r.str("access_token") == "" || r.str("device_id") == "" {
			t.Fatalf("%s: %s", user, r.Raw)
		}
		wk, _ := r.Body["well_known"].(map[string]any)
		if hs, _ := wk["m.homeserver"].(map[string]any); hs["base_url"] != "https://matrix.example.org" {
			t.Fatalf("well_known: %s", r.Raw)
		}
	}
	// The deprecated top-level user and the r0 path still work.
	env.do("POST", "/_matrix/client/r0/login", `{"type":"m.login.password","user":"dora","password":"pw-dora-1"}`).expect(t, 200, "")

	wrong := env.do("POST", loginURL, loginBody("dora", "wrong")).expect(t, 403, "M_FORBIDDEN")
	unknown := env.do("POST", loginURL, loginBody("nobody", "wrong")).expect(t, 403, "M_FORBIDDEN")
	if wrong.str("error") != unknown.str("error") {
		t.Errorf("wrong password and unknown user are told apart: %q vs %q", wrong.str("error"), unknown.str("error"))
	}
	env.do("POST", loginURL, loginBody("@dora:elsewhere.org", "pw-dora-1")).expect(t, 403, "M_FORBIDDEN")
	env.do("POST", loginURL, `{"type":"m.login.token","token":"x"}`).expect(t, 400, "M_UNKNOWN")
	env.do("POST", loginURL, `{"type":"m.login.password","password":"x"}`).expect(t, 400, "M_MISSING_PARAM")
}

func TestAccessTokenPlacement(t *testing.T) {
	env := newEnv(t)
	token := env.register("erin", "pw-erin-1").str("access_token")
	env.do("GET", whoamiURL, "", bearer(token)...).expect(t, 200, "")
	env.do("GET", whoamiURL+"?access_token="+token, "").expect(t, 200, "")
	env.do("GET", whoamiURL+"?access_token="+token, "", bearer(token)...).expect(t, 400, "M_INVALID_PARAM")
	env.do("GET", whoamiURL, "").expect(t, 401, "M_MISSING_TOKEN")
	env.do("GET", whoamiURL, "", bearer(token+"x")...).expect(t, 401, "M_UNKNOWN_TOKEN")
}

func TestWhoami(t *testing.T) {
	env := newEnv(t)
	u := env.register("fred", "pw-fred-1", map[string]any{"device_id": "FREDPHONE"})
	who := env.do("GET", whoamiURL, "", bearer(u.str("access_token"))...).expect(t, 200, "")
	if who.str("user_id") != "@fred:example.org" || who.str("device_id") != "FREDPHONE" || who.Body["is_guest"] != false {
		t.Fatalf("whoami %s", who.Raw)
	}
	g := env.do("POST", registerURL+"?kind=guest", `{}`).expect(t, 200, "")
	who = env.do("GET", whoamiURL, "", bearer(g.str("access_token"))...).expect(t, 200, "")
	if who.str("user_id") != g.str("user_id") || who.str("device_id") != g.str("device_id") || who.Body["is_guest"] != true {
		t.Fatalf("guest whoami %s", who.Raw)
	}
}

func TestLogoutAndLogoutAll(t *testing.T) {
	env := newEnv(t)
	a := env.register("gina", "pw-gina-1").str("access_token")
	b := env.do("POST", loginURL, loginBody("gina", "pw-gina-1")).str("access_token")
	c := env.do("POST", loginURL, loginBody("gina", "pw-gina-1")).str("access_token")
	other := env.register("hank", "pw-hank-1").str("access_token")
	for _, tok := range []string{a, b, c} {
		env.do("GET", whoamiURL, "", bearer(tok)...).expect(t, 200, "") // warm the token cache
	}
	env.do("POST", "/_matrix/client/v3/logout", "", bearer(a)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(a)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("GET", whoamiURL, "", bearer(b)...).expect(t, 200, "")
	env.do("POST", "/_matrix/client/v3/logout/all", "", bearer(b)...).expect(t, 200, "")
	for _, tok := range []string{b, c} {
		env.do("GET", whoamiURL, "", bearer(tok)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	}
	env.do("GET", whoamiURL, "", bearer(other)...).expect(t, 200, "")
	env.do("POST", "/_matrix/client/v3/logout", "", bearer(a)...).expect(t, 401, "M_UNKNOWN_TOKEN")
}

func TestRefreshRotation(t *testing.T) {
	env := newEnv(t)
	r := env.do("POST", loginURL, loginBody("ivy", "x")) // no such user yet
	r.expect(t, 403, "M_FORBIDDEN")
	reg := env.register("ivy", "pw-ivy-1", map[string]any{"refresh_token": true}).expect(t, 200, "")
	a1, r1 := reg.str("access_token"), reg.str("refresh_token")

	first := env.do("POST", refreshURL, jsonBody(map[string]string{"refresh_token": r1})).expect(t, 200, "")
	a2 := first.str("access_token")
	if first.str("refresh_token") == "" || first.Body["expires_in_ms"] != float64(300000) {
		t.Fatalf("refresh: %s", first.Raw)
	}
	// The response was "lost": retrying with r1 is safe and replaces the unused pair.
	retry := env.do("POST", refreshURL, jsonBody(map[string]string{"refresh_token": r1})).expect(t, 200, "")
	a3, r3 := retry.str("access_token"), retry.str("refresh_token")
	env.do("GET", whoamiURL, "", bearer(a2)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("GET", whoamiURL, "", bearer(a1)...).expect(t, 200, "")

	// First use of the new pair consumes r1 (and a1 goes with it).
	env.do("GET", whoamiURL, "", bearer(a3)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(a1)...).expect(t, 401, "M_UNKNOWN_TOKEN")

	// Reusing the consumed r1 is theft: the device is revoked.
	env.do("POST", refreshURL, jsonBody(map[string]string{"refresh_token": r1})).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("GET", whoamiURL, "", bearer(a3)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("POST", refreshURL, jsonBody(map[string]string{"refresh_token": r3})).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("POST", refreshURL, `{"refresh_token":"syr_unknown"}`).expect(t, 401, "M_UNKNOWN_TOKEN")
}

func TestExpiredTokenIsSoftLogout(t *testing.T) {
	env := newEnv(t)
	reg := env.register("jack", "pw-jack-1", map[string]any{"refresh_token": true}).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(reg.str("access_token"))...).expect(t, 200, "")
	env.clock.Advance(5*time.Minute + time.Second)
	r := env.do("GET", whoamiURL, "", bearer(reg.str("access_token"))...).expect(t, 401, "M_UNKNOWN_TOKEN")
	if r.Body["soft_logout"] != true {
		t.Fatalf("no soft_logout: %s", r.Raw)
	}
	fresh := env.do("POST", refreshURL, jsonBody(map[string]string{"refresh_token": reg.str("refresh_token")})).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(fresh.str("access_token"))...).expect(t, 200, "")
}

func TestSessionLifetimeCapsTokens(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.SessionLifetime = &config.Duration{Duration: time.Hour}
		c.NonrefreshableAccessTokenLifetime = &config.Duration{Duration: 2 * time.Hour}
	})
	r := env.register("kate", "pw-kate-1").expect(t, 200, "")
	if r.Body["expires_in_ms"] != float64(3600000) {
		t.Fatalf("expires_in_ms: %s", r.Raw)
	}
	env.clock.Advance(time.Hour + time.Second)
	env.do("GET", whoamiURL, "", bearer(r.str("access_token"))...).expect(t, 401, "M_UNKNOWN_TOKEN")
}

func TestRefreshDisabled(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.RefreshableAccessTokenLifetime = nil })
	r := env.register("liam", "pw-liam-1", map[string]any{"refresh_token": true}).expect(t, 200, "")
	if _, ok := r.Body["refresh_token"]; ok {
		t.Fatalf("refresh token issued while disabled: %s", r.Raw)
	}
	if _, ok := r.Body["expires_in_ms"]; ok {
		t.Fatalf("expiring token issued: %s", r.Raw)
	}
	env.do("POST", refreshURL, `{"refresh_token":"x"}`).expect(t, http.StatusNotFound, "M_UNRECOGNIZED")
}

func TestCapabilities(t *testing.T) {
	env := newEnv(t)
	tok := env.register("mia", "pw-mia-1").str("access_token")
	r := env.do("GET", "/_matrix/client/v3/capabilities", "", bearer(tok)...).expect(t, 200, "")
	if jsonBody(r.Body["capabilities"]) != `{"m.3pid_changes":{"enabled":false},"m.change_password":{"enabled":true},"m.get_login_token":{"enabled":false}}` {
		t.Fatalf("capabilities %s", r.Raw)
	}
	off := newEnv(t, func(c *config.Config) { c.PasswordConfig.Enabled = false })
	tok = off.register("nia", "pw-nia-1").str("access_token")
	r = off.do("GET", "/_matrix/client/v3/capabilities", "", bearer(tok)...).expect(t, 200, "")
	if jsonBody(r.Body["capabilities"]) != `{"m.3pid_changes":{"enabled":false},"m.change_password":{"enabled":false},"m.get_login_token":{"enabled":false}}` {
		t.Fatalf("capabilities %s", r.Raw)
	}
}

// TestBcryptHashesStillVerify registers with bcrypt, then logs in on a
// server hashing with argon2id (and the other way round).
func TestBcryptHashesStillVerify(t *testing.T) {
	long := strings.Repeat("long-password-", 8) // over bcrypt's 72 bytes
	old := newEnv(t, func(c *config.Config) { c.PasswordConfig.Algorithm = "bcrypt" })
	old.register("legacy", long).expect(t, 200, "")
	acct, _ := old.store.Account(context.Background(), "legacy")
	if !strings.HasPrefix(acct.PasswordHash, "$2") {
		t.Fatalf("not a bcrypt hash: %q", acct.PasswordHash)
	}
	now := &testEnv{t: t, cfg: testConfig(), db: old.db, clock: old.clock}
	now.open()
	now.do("POST", loginURL, loginBody("legacy", long)).expect(t, 200, "")
	now.do("POST", loginURL, loginBody("legacy", "x"+long)).expect(t, 403, "M_FORBIDDEN")
	now.register("modern", "pw-modern-1").expect(t, 200, "")
	if a, _ := now.store.Account(context.Background(), "modern"); !strings.HasPrefix(a.PasswordHash, "$argon2id$") {
		t.Fatalf("not an argon2id hash: %q", a.PasswordHash)
	}
	old.do("POST", loginURL, loginBody("modern", "pw-modern-1")).expect(t, 200, "")
}

// TestRefreshNeverOutlivesSession refreshes near the end of
// session_lifetime: the new token ends with the session, and after it no
// refresh works.
func TestRefreshNeverOutlivesSession(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.SessionLifetime = &config.Duration{Duration: time.Hour} })
	reg := env.register("nora", "pw-nora-1", map[string]any{"refresh_token": true}).expect(t, 200, "")
	env.clock.Advance(58 * time.Minute)
	r := env.do("POST", refreshURL, jsonBody(map[string]string{"refresh_token": reg.str("refresh_token")})).expect(t, 200, "")
	if ms := r.Body["expires_in_ms"].(float64); ms != 120000 {
		t.Fatalf("expires_in_ms %v, want the 2 minutes left of the session", ms)
	}
	env.do("GET", whoamiURL, "", bearer(r.str("access_token"))...).expect(t, 200, "")
	env.clock.Advance(3 * time.Minute)
	env.do("GET", whoamiURL, "", bearer(r.str("access_token"))...).expect(t, 401, "M_UNKNOWN_TOKEN")
	late := env.do("POST", refreshURL, jsonBody(map[string]string{"refresh_token": r.str("refresh_token")})).expect(t, 401, "M_UNKNOWN_TOKEN")
	if late.Body["soft_logout"] == true {
		t.Fatalf("a finished session is not a soft logout: %s", late.Raw)
	}
}
