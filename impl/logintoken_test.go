package impl_test

import (
	"strings"
	"testing"
	"time"

	"registrar/impl/config"
)

const getTokenURL = "/_matrix/client/v1/login/get_token"

func loginTokenEnabled(c *config.Config) { c.LoginViaExistingSession.Enabled = true }

func TestLoginTokenDisabledByDefault(t *testing.T) {
	env := newEnv(t)
	tok := env.register("plain", "pw-plain-1").str("access_token")
	env.do("POST", getTokenURL, `{}`, bearer(tok)...).expect(t, 404, "M_UNRECOGNIZED")
	caps := env.do("GET", "/_matrix/client/v3/capabilities", "", bearer(tok)...).expect(t, 200, "")
	if !strings.Contains(caps.Raw, `"m.get_login_token":{"enabled":false}`) {
		t.Fatal(caps.Raw)
	}
	if strings.Contains(env.do("GET", loginURL, "").Raw, "m.login.token") {
		t.Fatal("m.login.token offered while disabled")
	}
	env.do("POST", loginURL, `{"type":"m.login.token","token":"x"}`).expect(t, 400, "M_UNKNOWN")
}

func TestLoginTokenGrantsOneLogin(t *testing.T) {
	env := newEnv(t, loginTokenEnabled)
	tok := env.register("owner", "pw-owner-1").str("access_token")
	flows := env.do("GET", loginURL, "").expect(t, 200, "")
	if !strings.Contains(flows.Raw, `{"get_login_token":true,"type":"m.login.token"}`) {
		t.Fatal(flows.Raw)
	}
	caps := env.do("GET", "/_matrix/client/v3/capabilities", "", bearer(tok)...)
	if !strings.Contains(caps.Raw, `"m.get_login_token":{"enabled":true}`) {
		t.Fatal(caps.Raw)
	}
	challenge := env.do("POST", getTokenURL, `{}`, bearer(tok)...).expect(t, 401, "")
	if jsonBody(challenge.Body["flows"]) != `[{"stages":["m.login.password"]}]` {
		t.Fatal(challenge.Raw)
	}
	session := challenge.str("session")
	got := env.do("POST", getTokenURL, jsonBody(map[string]any{"auth": passwordAuth("owner", "pw-owner-1", session)}), bearer(tok)...).expect(t, 200, "")
	loginToken := got.str("login_token")
	if loginToken == "" || got.Body["expires_in_ms"] != float64(300000) {
		t.Fatal(got.Raw)
	}
	if strings.Contains(env.tableDump("login_tokens"), loginToken) {
		t.Fatal("the login token is stored in clear")
	}
	// One a minute per user.
	env.do("POST", getTokenURL, `{}`, bearer(tok)...).expect(t, 429, "M_LIMIT_EXCEEDED")
	env.clock.Advance(time.Minute)
	// The session re-prompts: it cannot mint a second token.
	env.do("POST", getTokenURL, jsonBody(map[string]any{"auth": map[string]any{"session": session}}), bearer(tok)...).expect(t, 400, "M_UNKNOWN")

	in := env.do("POST", loginURL, jsonBody(map[string]any{"type": "m.login.token", "token": loginToken, "device_id": "NEWCLIENT"})).expect(t, 200, "")
	if in.str("user_id") != "@owner:example.org" || in.str("device_id") != "NEWCLIENT" {
		t.Fatal(in.Raw)
	}
	env.do("GET", whoamiURL, "", bearer(in.str("access_token"))...).expect(t, 200, "")
	env.do("POST", loginURL, jsonBody(map[string]any{"type": "m.login.token", "token": loginToken})).expect(t, 403, "M_FORBIDDEN")
	env.do("POST", loginURL, `{"type":"m.login.token"}`).expect(t, 400, "M_MISSING_PARAM")

	third := env.do("POST", getTokenURL, `{}`, bearer(tok)...).expect(t, 401, "").str("session")
	expiring := env.do("POST", getTokenURL, jsonBody(map[string]any{"auth": passwordAuth("owner", "pw-owner-1", third)}), bearer(tok)...).expect(t, 200, "").str("login_token")
	env.clock.Advance(5*time.Minute + time.Second)
	env.do("POST", loginURL, jsonBody(map[string]any{"type": "m.login.token", "token": expiring})).expect(t, 403, "M_FORBIDDEN")
}

func TestLoginTokenWithoutUIA(t *testing.T) {
	env := newEnv(t, loginTokenEnabled, func(c *config.Config) {
		c.LoginViaExistingSession.RequireUIAuth = false
		c.LoginViaExistingSession.TokenTimeout = config.Duration{Duration: time.Minute}
	})
	tok := env.register("quick", "pw-quick-1").str("access_token")
	got := env.do("POST", getTokenURL, `{}`, bearer(tok)...).expect(t, 200, "")
	if got.Body["expires_in_ms"] != float64(60000) {
		t.Fatal(got.Raw)
	}
	guest := env.do("POST", registerURL+"?kind=guest", `{}`).str("access_token")
	env.do("POST", getTokenURL, `{}`, bearer(guest)...).expect(t, 403, "M_GUEST_ACCESS_FORBIDDEN")
}
