package impl_test

import (
	"net/http"
	"strings"
	"testing"

	"registrar/impl/config"
)

const (
	v1RegisterURL      = "/_matrix/client/api/v1/register"
	v2AlphaRegisterURL = "/_matrix/client/api/v2_alpha/register"
)

func legacyAPIs(c *config.Config) { c.LegacyClientAPIs = true }

func TestLegacyRegistrationAPIsAreOffByDefault(t *testing.T) {
	env := newEnv(t)
	for _, r := range []struct{ method, path, body string }{
		{"GET", v1RegisterURL, ""},
		{"POST", v1RegisterURL, `{"type": "m.login.password", "user": "a", "password": "b"}`},
		{"POST", v2AlphaRegisterURL, `{"username": "a", "password": "b"}`},
		{"POST", v2AlphaRegisterURL + "?kind=guest", `{}`},
	} {
		env.do(r.method, r.path, r.body).expect(t, http.StatusNotFound, "M_UNRECOGNIZED")
	}
	if strings.Contains(env.do("GET", "/_matrix/client/versions", "").Raw, "alpha") {
		t.Error("/versions advertises v2_alpha")
	}
}

func TestV1RegistersInOneStepAndTheAccountLogsInOnV3(t *testing.T) {
	env := newEnv(t, legacyAPIs)
	flows := env.do("GET", v1RegisterURL, "").expect(t, 200, "")
	if got := jsonBody(flows.Body["flows"]); got != `[{"type":"m.login.password"}]` {
		t.Fatalf("flows %s", got)
	}
	env.do("POST", v1RegisterURL, `{"type": "m.login.password", "user": "vera"}`).expect(t, 400, "M_MISSING_PARAM")
	env.do("POST", v1RegisterURL, `{"type": "m.login.oauth2"}`).expect(t, 400, "M_UNKNOWN")
	env.do("POST", v1RegisterURL, `{"user": "vera"}`).expect(t, 400, "M_MISSING_PARAM")
	env.do("POST", v1RegisterURL, `{"type": 7}`).expect(t, 400, "M_BAD_JSON")
	r := env.do("POST", v1RegisterURL, `{"type": "m.login.password", "user": "Vera", "password": "v1 password"}`).expect(t, 200, "")
	if r.str("user_id") != "@vera:example.org" || r.str("access_token") == "" {
		t.Fatalf("registered %s", r.Raw)
	}
	env.do("GET", "/_matrix/client/v3/account/whoami", "", bearer(r.str("access_token"))...).expect(t, 200, "")
	env.do("POST", "/_matrix/client/v3/login", loginBody("vera", "v1 password")).expect(t, 200, "")
}

func TestV1MultiStageFlowWithARegistrationToken(t *testing.T) {
	env := newEnv(t, legacyAPIs, tokenRequired)
	admin := env.adminToken("root")
	token := env.newToken(admin, `{"uses_allowed": 1}`)
	flows := env.do("GET", v1RegisterURL, "").expect(t, 200, "")
	if got := jsonBody(flows.Body["flows"]); got != `[{"stages":["m.login.registration_token","m.login.password"],"type":"m.login.registration_token"}]` {
		t.Fatalf("flows %s", got)
	}
	// The password stage first: the token stage is missing.
	env.do("POST", v1RegisterURL, `{"type": "m.login.password", "user": "tess", "password": "pw"}`).expect(t, 400, "M_UNKNOWN")
	env.do("POST", v1RegisterURL, `{"type": "m.login.registration_token", "token": "wrong"}`).expect(t, 401, "M_UNAUTHORIZED")
	env.do("POST", v1RegisterURL, `{"type": "m.login.registration_token"}`).expect(t, 400, "M_MISSING_PARAM")
	step := env.do("POST", v1RegisterURL, jsonBody(map[string]any{"type": "m.login.registration_token", "token": token})).expect(t, 200, "")
	if step.str("next") != "m.login.password" || step.str("session") == "" || step.Body["user_id"] != nil {
		t.Fatalf("token stage %s", step.Raw)
	}
	done := env.do("POST", v1RegisterURL, jsonBody(map[string]any{"type": "m.login.password", "user": "tess", "password": "pw-tess",
		"session": step.str("session")})).expect(t, 200, "")
	if done.str("user_id") != "@tess:example.org" || done.str("access_token") == "" {
		t.Fatalf("registered %s", done.Raw)
	}
	if state := env.tokenState(admin, token).expect(t, 200, ""); state.Body["completed"] != float64(1) {
		t.Fatalf("token %s", state.Raw)
	}
	// The token is spent: a second registration cannot pass its stage.
	env.do("POST", v1RegisterURL, jsonBody(map[string]any{"type": "m.login.registration_token", "token": token})).expect(t, 401, "M_UNAUTHORIZED")
}

func TestV2AlphaRegistersWithEmailAndBindsIt(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, legacyAPIs, emailConfig(sink), func(c *config.Config) {
		c.RegistrationsRequire3PID = []string{"email"}
		c.EnableRegistrationWithoutVerification = false
	})
	first := env.do("POST", v2AlphaRegisterURL, `{"username": "wen", "password": "pw-wen", "bind_email": true}`).expect(t, 401, "")
	if jsonBody(first.Body["flows"]) != `[{"stages":["m.login.email.identity"]}]` {
		t.Fatalf("flows %s", first.Raw)
	}
	sid := requestEmailToken(env, registerEmailURL, "secret-w", "wen@example.org", 1).expect(t, 200, "").str("sid")
	validateLink(t, env, sink.last(t).link(t))
	r := env.do("POST", v2AlphaRegisterURL, jsonBody(map[string]any{"bind_email": true,
		"auth": threepidAuth("m.login.email.identity", sid, "secret-w", first.str("session"))})).expect(t, 200, "")
	if r.str("user_id") != "@wen:example.org" || r.str("access_token") == "" || r.str("home_server") != "example.org" || r.str("refresh_token") == "" {
		t.Fatalf("registered %s", r.Raw)
	}
	list := env.do("GET", "/_matrix/client/v3/account/3pid", "", bearer(r.str("access_token"))...).expect(t, 200, "")
	if !strings.Contains(list.Raw, `"address":"wen@example.org"`) {
		t.Fatalf("3pids %s", list.Raw)
	}
	env.do("POST", "/_matrix/client/v3/refresh", jsonBody(map[string]any{"refresh_token": r.str("refresh_token")})).expect(t, 200, "")
}

func TestV2AlphaRegistersGuestsAndUsers(t *testing.T) {
	env := newEnv(t, legacyAPIs, func(c *config.Config) { c.RefreshableAccessTokenLifetime = nil })
	guest := env.do("POST", v2AlphaRegisterURL+"?kind=guest", `{}`).expect(t, 200, "")
	if !strings.HasPrefix(guest.str("user_id"), "@") || guest.str("access_token") == "" {
		t.Fatalf("guest %s", guest.Raw)
	}
	who := env.do("GET", "/_matrix/client/v3/account/whoami", "", bearer(guest.str("access_token"))...).expect(t, 200, "")
	if who.Body["is_guest"] != true {
		t.Fatalf("whoami %s", who.Raw)
	}
	env.do("POST", v2AlphaRegisterURL+"?kind=admin", `{"password": "x"}`).expect(t, 400, "M_INVALID_PARAM")
	env.do("POST", v2AlphaRegisterURL, `{"username": "ula"}`).expect(t, 400, "M_MISSING_PARAM")
	user := env.do("POST", v2AlphaRegisterURL, `{"username": "ula", "password": "pw-ula", "auth": {"type": "m.login.dummy"}}`).expect(t, 200, "")
	if user.str("user_id") != "@ula:example.org" || user.Body["refresh_token"] != nil {
		t.Fatalf("user %s", user.Raw)
	}
}

func TestOneUsernameIsOneAccountAcrossV1V2AlphaAndV3(t *testing.T) {
	env := newEnv(t, legacyAPIs)
	env.do("POST", v1RegisterURL, `{"type": "m.login.password", "user": "zed", "password": "pw-zed"}`).expect(t, 200, "")
	env.do("POST", v2AlphaRegisterURL, `{"username": "zed", "password": "pw-2", "auth": {"type": "m.login.dummy"}}`).expect(t, 400, "M_USER_IN_USE")
	env.register("zed", "pw-3").expect(t, 400, "M_USER_IN_USE")
	env.register("yan", "pw-yan").expect(t, 200, "")
	env.do("POST", v1RegisterURL, `{"type": "m.login.password", "user": "yan", "password": "pw-1"}`).expect(t, 400, "M_USER_IN_USE")
	env.do("POST", v2AlphaRegisterURL, `{"username": "yan", "password": "pw-2"}`).expect(t, 400, "M_USER_IN_USE")

	// Two registrations of one name at once through the three APIs: one wins.
	bodies := []struct{ path, body string }{
		{v1RegisterURL, `{"type": "m.login.password", "user": "race", "password": "pw"}`},
		{v2AlphaRegisterURL, `{"username": "race", "password": "pw", "auth": {"type": "m.login.dummy"}}`},
		{registerURL, `{"username": "race", "password": "pw", "auth": {"type": "m.login.dummy"}}`},
	}
	results := concurrently(9, func(i int) response {
		b := bodies[i%3]
		return env.doQuiet("POST", b.path, b.body)
	})
	won := 0
	for _, r := range results {
		switch {
		case r.Status == 200:
			won++
		case r.Status == 400 && r.Body["errcode"] == "M_USER_IN_USE":
		default:
			t.Errorf("%d %s", r.Status, r.Raw)
		}
	}
	if won != 1 {
		t.Fatalf("%d registrations of one name", won)
	}
}

// TestV1EmailStageThenPassword: v1's camelCase threepidCreds, and a flow
// whose only v3 stage is the email, so the password stage ends a session
// already complete.
func TestV1EmailStageThenPassword(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, legacyAPIs, emailConfig(sink), func(c *config.Config) {
		c.RegistrationsRequire3PID = []string{"email"}
		c.EnableRegistrationWithoutVerification = false
	})
	flows := env.do("GET", v1RegisterURL, "").expect(t, 200, "")
	if got := jsonBody(flows.Body["flows"]); got != `[{"stages":["m.login.email.identity","m.login.password"],"type":"m.login.email.identity"}]` {
		t.Fatalf("flows %s", got)
	}
	sid := requestEmailToken(env, registerEmailURL, "secret-x", "xia@example.org", 1).expect(t, 200, "").str("sid")
	creds := map[string]any{"type": "m.login.email.identity", "threepidCreds": []any{map[string]any{"sid": sid, "clientSecret": "secret-x", "idServer": "id.example.org"}}}
	env.do("POST", v1RegisterURL, jsonBody(creds)).expect(t, 401, "M_UNAUTHORIZED") // not validated yet
	validateLink(t, env, sink.last(t).link(t))
	step := env.do("POST", v1RegisterURL, jsonBody(creds)).expect(t, 200, "")
	if step.str("next") != "m.login.password" || step.str("session") == "" {
		t.Fatalf("email stage %s", step.Raw)
	}
	done := env.do("POST", v1RegisterURL, jsonBody(map[string]any{"type": "m.login.password", "user": "xia", "password": "pw-xia",
		"session": step.str("session")})).expect(t, 200, "")
	if done.str("user_id") != "@xia:example.org" || done.str("access_token") == "" {
		t.Fatalf("registered %s", done.Raw)
	}
	list := env.do("GET", "/_matrix/client/v3/account/3pid", "", bearer(done.str("access_token"))...).expect(t, 200, "")
	if !strings.Contains(list.Raw, `"address":"xia@example.org"`) {
		t.Fatalf("3pids %s", list.Raw)
	}
}

// TestV1RecaptchaStage: v1's recaptcha stage sends challenge and response;
// the provider sees the response, and a refusal is the stage's error.
func TestV1RecaptchaStage(t *testing.T) {
	sv := newSiteverify(t)
	env := newEnv(t, legacyAPIs, captchaConfig(sv))
	flows := env.do("GET", v1RegisterURL, "").expect(t, 200, "")
	if got := jsonBody(flows.Body["flows"]); got != `[{"stages":["m.login.recaptcha","m.login.password"],"type":"m.login.recaptcha"}]` {
		t.Fatalf("flows %s", got)
	}
	env.do("POST", v1RegisterURL, `{"type": "m.login.recaptcha", "challenge": "c"}`).expect(t, 400, "M_MISSING_PARAM")
	env.do("POST", v1RegisterURL, `{"type": "m.login.recaptcha", "challenge": "c", "response": "bad"}`).expect(t, 401, "M_UNAUTHORIZED")
	step := env.do("POST", v1RegisterURL, `{"type": "m.login.recaptcha", "challenge": "c", "response": "good"}`).expect(t, 200, "")
	if step.str("next") != "m.login.password" {
		t.Fatalf("captcha stage %s", step.Raw)
	}
	done := env.do("POST", v1RegisterURL, jsonBody(map[string]any{"type": "m.login.password", "user": "cap", "password": "pw-cap",
		"session": step.str("session")})).expect(t, 200, "")
	if done.str("user_id") != "@cap:example.org" {
		t.Fatalf("registered %s", done.Raw)
	}
}
