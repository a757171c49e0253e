package impl_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"registrar/db"
	"registrar/impl"
	"registrar/impl/config"
	"registrar/impl/passwords"
	"registrar/impl/secrets"
	"registrar/impl/uia"
)

func TestRegisterDummyFlowInTwoSteps(t *testing.T) {
	env := newEnv(t)
	first := env.do("POST", registerURL, `{"username":"alice","password":"pw-alice-1","initial_device_display_name":"Phone","device_id":"PHONE"}`)
	first.expect(t, http.StatusUnauthorized, "")
	flows, _ := first.Body["flows"].([]any)
	if len(flows) != 1 || jsonBody(flows[0]) != `{"stages":["m.login.dummy"]}` {
		t.Fatalf("flows: %s", first.Raw)
	}
	session := first.str("session")
	if len(session) < 20 {
		t.Fatalf("session id %q is too short to be unguessable", session)
	}
	if _, ok := first.Body["params"].(map[string]any); !ok {
		t.Fatalf("params missing: %s", first.Raw)
	}
	if c, ok := first.Body["completed"].([]any); !ok || len(c) != 0 {
		t.Fatalf("completed must be an empty list: %s", first.Raw)
	}
	// The ID carries no password: the session keeps it stored, sealed.
	if strings.Contains(session, "pw-alice-1") || strings.Contains(string(openSessionID(t, env, session)), "pw-alice-1") {
		t.Fatalf("the session ID carries the password")
	}
	if dump := env.tableDump("uia_sessions"); strings.Contains(dump, "pw-alice-1") || !strings.Contains(dump, "kept:password") {
		t.Fatalf("stored %q", dump)
	}

	// The follow-up carries only auth: the session supplies the rest.
	done := env.do("POST", registerURL, jsonBody(map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": session}}))
	done.expect(t, http.StatusOK, "")
	if done.str("user_id") != "@alice:example.org" || done.str("device_id") != "PHONE" || done.str("access_token") == "" || done.str("home_server") != "example.org" {
		t.Fatalf("response: %s", done.Raw)
	}
	env.do("GET", "/_matrix/client/v3/account/whoami", "", bearer(done.str("access_token"))...).expect(t, 200, "")
	env.do("POST", "/_matrix/client/v3/login", `{"type":"m.login.password","user":"alice","password":"pw-alice-1"}`).expect(t, 200, "")
	// Made, the account's session no longer keeps the password; a repeat
	// of the last request still answers with the account.
	if dump := env.tableDump("uia_sessions"); strings.Contains(dump, "kept:password") || !strings.Contains(dump, "@alice:example.org") {
		t.Fatalf("stored after the registration: %q", dump)
	}
	again := env.do("POST", registerURL, jsonBody(map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": session}}))
	if again.expect(t, http.StatusOK, "").str("user_id") != "@alice:example.org" {
		t.Fatalf("repeat: %s", again.Raw)
	}
}

// openSessionID unseals a UIA session ID with the server's key: what
// travels in it, and in fallback page URLs.
func openSessionID(t *testing.T, env *testEnv, id string) []byte {
	t.Helper()
	cfg := env.cfg
	if err := cfg.Prepare(); err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.NewSealer(cfg.SecretKey(), "uia session")
	if err != nil {
		t.Fatal(err)
	}
	plain, _, err := sealer.Open(id, "session v1")
	if err != nil {
		t.Fatalf("opening the session ID: %v", err)
	}
	return plain
}

func TestRegisterInOneStepWithoutSession(t *testing.T) {
	env := newEnv(t)
	r := env.register("bob", "pw-bob-1").expect(t, http.StatusOK, "")
	if r.str("user_id") != "@bob:example.org" || r.str("access_token") == "" || r.str("device_id") == "" {
		t.Fatalf("response: %s", r.Raw)
	}
	if _, ok := r.Body["refresh_token"]; ok {
		t.Fatalf("refresh token without asking: %s", r.Raw)
	}
}

func TestRegisterTermsFlow(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.RegistrationTerms = map[string]uia.TermsPolicy{"privacy_policy": {Version: "1.0",
			Translations: map[string]uia.TermsDocument{"en": {Name: "Privacy Policy", URL: "https://example.org/privacy"}}}}
	})
	first := env.do("POST", registerURL, `{"username":"carol","password":"pw-carol-1"}`).expect(t, 401, "")
	if got := jsonBody(first.Body["flows"]); got != `[{"stages":["m.login.terms","m.login.dummy"]}]` {
		t.Fatalf("flows %s", got)
	}
	params := jsonBody(first.Body["params"])
	if !strings.Contains(params, `"m.login.terms":{"policies":{"privacy_policy":{"en":{"name":"Privacy Policy","url":"https://example.org/privacy"},"version":"1.0"}}}`) {
		t.Fatalf("params %s", params)
	}
	session := first.str("session")
	// Dummy alone does not complete the flow.
	second := env.do("POST", registerURL, jsonBody(map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": session}})).expect(t, 401, "")
	if jsonBody(second.Body["completed"]) != `["m.login.dummy"]` {
		t.Fatalf("completed %s", second.Raw)
	}
	env.do("POST", registerURL, jsonBody(map[string]any{"auth": map[string]any{"type": "m.login.terms", "session": session}})).expect(t, 200, "")
}

func TestRegisterUsernameRules(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.ForbiddenUsernames = []config.ForbiddenUsername{{Pattern: "^admin"}, {Pattern: "^support$", Exclusive: true}}
		c.ServerNotices.SystemMXIDLocalpart = "notices"
	})
	env.register("taken", "pw-taken-1").expect(t, 200, "")
	long := strings.Repeat("a", 255-len("@:example.org")+1)
	cases := []struct {
		username string
		errcode  string
		message  string
	}{
		{"", "M_INVALID_USERNAME", "User ID cannot be empty"},
		{"alice!", "M_INVALID_USERNAME", "User ID can only contain characters a-z, 0-9, or '=_-./+'"},
		{"al ice", "M_INVALID_USERNAME", "User ID can only contain characters a-z, 0-9, or '=_-./+'"},
		{"ålice", "M_INVALID_USERNAME", "User ID can only contain characters a-z, 0-9, or '=_-./+'"},
		{"_bridge", "M_INVALID_USERNAME", "User ID may not begin with _"},
		{"12345", "M_INVALID_USERNAME", "Numeric user IDs are reserved for guest users."},
		{long, "M_INVALID_USERNAME", "User ID may not be longer than 255 characters"},
		{"administrator", "M_INVALID_USERNAME", "This user ID is not allowed on this server."},
		{"support", "M_EXCLUSIVE", "This user ID is reserved."},
		{"Notices", "M_EXCLUSIVE", "This user ID is reserved."},
		{"taken", "M_USER_IN_USE", "User ID already taken."},
		{"TAKEN", "M_USER_IN_USE", "User ID already taken."},
	}
	for _, tc := range cases {
		t.Run(tc.username, func(t *testing.T) {
			r := env.register(tc.username, "pw-some-1").expect(t, http.StatusBadRequest, tc.errcode)
			if r.str("error") != tc.message {
				t.Errorf("message %q, want %q", r.str("error"), tc.message)
			}
			// The same rules answer /register/available, before any UIA.
			a := env.do("GET", "/_matrix/client/v3/register/available?username="+url.QueryEscape(tc.username), "")
			if tc.username == "" {
				a.expect(t, http.StatusBadRequest, "M_INVALID_USERNAME")
			} else {
				a.expect(t, http.StatusBadRequest, tc.errcode)
			}
		})
	}
	ok := env.register("Mixed.Case_=-/+1", "pw-mixed-1").expect(t, 200, "")
	if ok.str("user_id") != "@mixed.case_=-/+1:example.org" {
		t.Fatalf("user_id %s, want the lower-cased name", ok.str("user_id"))
	}
	longest := strings.Repeat("b", 255-len("@:example.org"))
	env.register(longest, "pw-long-1").expect(t, 200, "")
	// A bad name fails before UIA: no session is started.
	r := env.do("POST", registerURL, `{"username":"_x","password":"pw"}`).expect(t, 400, "M_INVALID_USERNAME")
	if _, ok := r.Body["session"]; ok {
		t.Fatal("UIA session started for an invalid name")
	}
}

func TestRegisterGeneratesUsername(t *testing.T) {
	env := newEnv(t)
	r := env.do("POST", registerURL, `{"password":"pw-gen-1","auth":{"type":"m.login.dummy"}}`).expect(t, 200, "")
	id := r.str("user_id")
	lp := strings.TrimSuffix(strings.TrimPrefix(id, "@"), ":example.org")
	if len(lp) < 8 || lp[0] < 'a' || lp[0] > 'z' {
		t.Fatalf("generated user ID %q", id)
	}
}

func TestRegisterPasswordRules(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.PasswordConfig.Policy = passwords.Policy{Enabled: true, MinimumLength: 10, RequireDigit: true,
			RequireSymbol: true, RequireLowercase: true, RequireUppercase: true}
	})
	cases := []struct{ password, errcode, message string }{
		{"Sh0rt!", "M_WEAK_PASSWORD", "Password too short (minimum 10 characters)"},
		{"NoDigitsHere!", "M_WEAK_PASSWORD", "Password must contain at least one digit"},
		{"NoSymbols123", "M_WEAK_PASSWORD", "Password must contain at least one symbol"},
		{"UPPER-ONLY-123", "M_WEAK_PASSWORD", "Password must contain at least one lowercase letter"},
		{"lower-only-123", "M_WEAK_PASSWORD", "Password must contain at least one uppercase letter"},
		{strings.Repeat("Aa1!", 129), "M_INVALID_PARAM", "Invalid password"},
	}
	for i, tc := range cases {
		r := env.register("weak"+string(rune('a'+i)), tc.password).expect(t, 400, tc.errcode)
		if r.str("error") != tc.message {
			t.Errorf("%q: message %q, want %q", tc.password, r.str("error"), tc.message)
		}
		if strings.Contains(r.Raw, tc.password) {
			t.Errorf("the password was echoed: %s", r.Raw)
		}
	}
	env.register("strong", "Str0ng-enough").expect(t, 200, "")
	open := newEnv(t) // no policy: still no empty passwords
	open.register("empty", "").expect(t, 400, "M_WEAK_PASSWORD")
	// No password at all: the flow completes, then the password is missing.
	env.do("POST", registerURL, `{"username":"nopw","auth":{"type":"m.login.dummy"}}`).expect(t, 400, "M_MISSING_PARAM")
}

func TestRegisterInhibitLoginAndDevices(t *testing.T) {
	env := newEnv(t)
	r := env.register("quiet", "pw-quiet-1", map[string]any{"inhibit_login": true}).expect(t, 200, "")
	if _, ok := r.Body["access_token"]; ok || r.Body["device_id"] != nil {
		t.Fatalf("inhibit_login returned a login: %s", r.Raw)
	}
	if ds, _ := env.store.Devices(context.Background(), "@quiet:example.org"); len(ds) != 0 {
		t.Fatalf("inhibit_login created devices: %v", ds)
	}
	// A client-chosen device; logging in again on it replaces its token.
	r = env.register("dev", "pw-dev-1", map[string]any{"device_id": "MYDEVICE", "initial_device_display_name": "Laptop"}).expect(t, 200, "")
	if r.str("device_id") != "MYDEVICE" {
		t.Fatalf("device_id %s", r.Raw)
	}
	old := r.str("access_token")
	l := env.do("POST", "/_matrix/client/v3/login", `{"type":"m.login.password","user":"dev","password":"pw-dev-1","device_id":"MYDEVICE"}`).expect(t, 200, "")
	env.do("GET", "/_matrix/client/v3/account/whoami", "", bearer(old)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("GET", "/_matrix/client/v3/account/whoami", "", bearer(l.str("access_token"))...).expect(t, 200, "")
	ds, _ := env.store.Devices(context.Background(), "@dev:example.org")
	if len(ds) != 1 || ds[0].DisplayName != "Laptop" {
		t.Fatalf("devices %+v", ds)
	}
	// Refresh tokens only on request.
	rt := env.register("fresh", "pw-fresh-1", map[string]any{"refresh_token": true}).expect(t, 200, "")
	if rt.str("refresh_token") == "" || rt.Body["expires_in_ms"] != float64(300000) {
		t.Fatalf("refresh: %s", rt.Raw)
	}
}

func TestRegisterGuestAndUpgrade(t *testing.T) {
	env := newEnv(t)
	g1 := env.do("POST", registerURL+"?kind=guest", `{"username":"ignored","initial_device_display_name":"Guest phone","device_id":"IGNORED"}`).expect(t, 200, "")
	g2 := env.do("POST", registerURL+"?kind=guest", `{}`).expect(t, 200, "")
	if g1.str("user_id") != "@1:example.org" || g2.str("user_id") != "@2:example.org" || g1.str("device_id") == "IGNORED" {
		t.Fatalf("guests: %s %s", g1.Raw, g2.Raw)
	}
	who := env.do("GET", "/_matrix/client/v3/account/whoami", "", bearer(g1.str("access_token"))...).expect(t, 200, "")
	if who.Body["is_guest"] != true {
		t.Fatalf("whoami: %s", who.Raw)
	}
	// Upgrading needs the guest's own token and localpart.
	env.register("2", "pw-up-1", map[string]any{"guest_access_token": g1.str("access_token")}).expect(t, 403, "M_FORBIDDEN")
	env.register("1", "pw-up-1", map[string]any{"guest_access_token": "nonsense"}).expect(t, 403, "M_FORBIDDEN")
	up := env.register("1", "pw-up-1", map[string]any{"guest_access_token": g1.str("access_token")}).expect(t, 200, "")
	if up.str("user_id") != "@1:example.org" {
		t.Fatalf("upgrade: %s", up.Raw)
	}
	who = env.do("GET", "/_matrix/client/v3/account/whoami", "", bearer(up.str("access_token"))...).expect(t, 200, "")
	if who.Body["is_guest"] != false {
		t.Fatalf("upgraded account is still a guest: %s", who.Raw)
	}
	env.do("POST", "/_matrix/client/v3/login", `{"type":"m.login.password","user":"1","password":"pw-up-1"}`).expect(t, 200, "")

	off := newEnv(t, func(c *config.Config) { c.AllowGuestAccess = false })
	off.do("POST", registerURL+"?kind=guest", `{}`).expect(t, 403, "M_FORBIDDEN")
}

func TestRegisterSessionRules(t *testing.T) {
	env := newEnv(t)
	session := env.do("POST", registerURL, `{"username":"sess","password":"pw-sess-1"}`).expect(t, 401, "").str("session")
	user := env.register("other", "pw-other-1").str("access_token")

	// A session is bound to the endpoint that started it.
	env.do("POST", "/_matrix/client/v3/account/password",
		jsonBody(map[string]any{"new_password": "x", "auth": map[string]any{"type": "m.login.dummy", "session": session}}),
		bearer(user)...).expect(t, 403, "M_FORBIDDEN")
	// Unknown sessions are an error, not a new session.
	r := env.do("POST", registerURL, `{"auth":{"type":"m.login.dummy","session":"doesnotexist"}}`).expect(t, 400, "M_UNKNOWN")
	if _, ok := r.Body["flows"]; ok {
		t.Fatal("unknown session answered with a new challenge")
	}
	// The legacy r0 path continues a v3 session.
	r0 := env.do("POST", "/_matrix/client/r0/register", jsonBody(map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": session}})).expect(t, 200, "")
	// Repeating the final request returns the same account with a new login.
	again := env.do("POST", registerURL, jsonBody(map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": session}})).expect(t, 200, "")
	if r0.str("user_id") != "@sess:example.org" || again.str("user_id") != r0.str("user_id") || again.str("access_token") == r0.str("access_token") {
		t.Fatalf("retry: %s then %s", r0.Raw, again.Raw)
	}
	// An unrecognised stage type is refused.
	env.do("POST", registerURL, `{"username":"zed","password":"pw","auth":{"type":"m.login.fancy"}}`).expect(t, 400, "M_UNRECOGNIZED")
}

func TestRegisterSessionExpiresAndIsSwept(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.RegistrationTerms = map[string]uia.TermsPolicy{"tos": {Version: "1",
			Translations: map[string]uia.TermsDocument{"en": {Name: "Terms", URL: "https://example.org/tos"}}}}
	})
	start := func(name string) string {
		return env.do("POST", registerURL, `{"username":"`+name+`","password":"pw-late-1"}`).expect(t, 401, "").str("session")
	}
	early, late := start("early"), start("late")
	// late has progressed, so its state is stored.
	env.do("POST", registerURL, stage("m.login.terms", late)).expect(t, 401, "")
	env.clock.Advance(47 * time.Hour)
	env.do("POST", registerURL, stage("m.login.terms", early)).expect(t, 401, "")
	env.do("POST", registerURL, stage("m.login.dummy", early)).expect(t, 200, "")
	env.clock.Advance(2 * time.Hour)
	env.do("POST", registerURL, stage("m.login.dummy", late)).expect(t, 400, "M_UNKNOWN")
	// Both stored states expire with their sessions, 48 h after the start.
	n, err := env.store.DeleteExpiredUIASessions(context.Background())
	if err != nil || n != 2 || env.tableDump("uia_sessions") != "" {
		t.Fatalf("swept %d, %v", n, err)
	}
}

func TestRegisterSurvivesRestartMidFlow(t *testing.T) {
	env := newEnv(t)
	session := env.do("POST", registerURL, `{"username":"phoenix","password":"pw-phoenix-1"}`).expect(t, 401, "").str("session")
	env.restart()
	r := env.do("POST", registerURL, jsonBody(map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": session}})).expect(t, 200, "")
	if r.str("user_id") != "@phoenix:example.org" {
		t.Fatal(r.Raw)
	}
	env.do("POST", "/_matrix/client/v3/login", `{"type":"m.login.password","user":"phoenix","password":"pw-phoenix-1"}`).expect(t, 200, "")
}

// TestRegisterRaceForOneName has many clients register one name at once:
// exactly one wins, the rest get M_USER_IN_USE, and nothing half-made
// remains.
func TestRegisterRaceForOneName(t *testing.T) {
	env := newEnv(t)
	results := concurrently(12, func(i int) response {
		return env.register("contested", "pw-contested-1", map[string]any{"device_id": "DEV" + string(rune('A'+i))})
	})
	wins := 0
	for _, r := range results {
		switch {
		case r.Status == 200:
			wins++
		case r.Status == 400 && r.str("errcode") == "M_USER_IN_USE":
		default:
			t.Errorf("unexpected %d %s", r.Status, r.Raw)
		}
	}
	if wins != 1 {
		t.Fatalf("%d registrations won", wins)
	}
	ds, err := env.store.Devices(context.Background(), "@contested:example.org")
	if err != nil || len(ds) != 1 {
		t.Fatalf("devices after the race: %v %v", ds, err)
	}
}

func TestRegistrationDisabled(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.EnableRegistration = false })
	env.register("nobody", "pw-nobody-1").expect(t, 403, "M_FORBIDDEN")
	env.do("GET", "/_matrix/client/v3/register/available?username=nobody", "").expect(t, 403, "M_FORBIDDEN")
	if _, err := env.store.Account(context.Background(), "nobody"); err != db.ErrNotFound {
		t.Fatalf("account exists: %v", err)
	}
}

func TestAvailable(t *testing.T) {
	env := newEnv(t)
	r := env.do("GET", "/_matrix/client/v3/register/available?username=Free", "").expect(t, 200, "")
	if r.Body["available"] != true || len(r.Body) != 1 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%v %s", r.Header, r.Raw)
	}
	env.register("free", "pw-free-1").expect(t, 200, "")
	env.do("GET", "/_matrix/client/r0/register/available?username=FREE", "").expect(t, 400, "M_USER_IN_USE")
}

// TestUIASessionSharedBetweenProcesses starts a flow on one server and
// finishes it on another over the same database file.
func TestUIASessionSharedBetweenProcesses(t *testing.T) {
	a := newEnv(t)
	b := a.twin()
	session := a.do("POST", registerURL, `{"username":"roamer","password":"pw-roamer-1"}`).expect(t, 401, "").str("session")
	r := b.do("POST", registerURL, stage("m.login.dummy", session)).expect(t, 200, "")
	a.do("GET", whoamiURL, "", bearer(r.str("access_token"))...).expect(t, 200, "")
}

// TestUnexpectedFailureIsGeneric500 breaks the database under the server:
// the client gets a generic M_UNKNOWN, the log gets the cause and the
// request ID.
func TestUnexpectedFailureIsGeneric500(t *testing.T) {
	var logs bytes.Buffer
	env := newEnv(t)
	srv, err := impl.NewServer(env.cfg, env.store, impl.Options{Now: env.clock.Now, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	env.server = srv
	env.store.Close()
	r := env.do("GET", "/_matrix/client/v3/register/available?username=anyone", "").expect(t, 500, "M_UNKNOWN")
	if r.str("error") != "Internal server error" || strings.Contains(r.Raw, "sql") {
		t.Fatalf("body %s", r.Raw)
	}
	id := r.Header.Get("X-Request-Id")
	if id == "" || !strings.Contains(logs.String(), `"request_id":"`+id+`"`) || !strings.Contains(logs.String(), "database is closed") {
		t.Fatalf("log %s (request id %q)", logs.String(), id)
	}
}

// TestConcurrentFinalRequestsOfOneSession double-submits the last stage:
// one account, every answer either that account or a retryable 409.
func TestConcurrentFinalRequestsOfOneSession(t *testing.T) {
	env := newEnv(t)
	session := env.do("POST", registerURL, `{"username":"twice","password":"pw-twice-1"}`).expect(t, 401, "").str("session")
	results := concurrently(6, func(int) response { return env.do("POST", registerURL, stage("m.login.dummy", session)) })
	ok := 0
	for _, r := range results {
		switch {
		case r.Status == 200 && r.str("user_id") == "@twice:example.org":
			ok++
		case r.Status == 409 && r.str("errcode") == "M_UNKNOWN":
		default:
			t.Errorf("unexpected %d %s", r.Status, r.Raw)
		}
	}
	if ok == 0 {
		t.Fatal("no request succeeded")
	}
	// A retry after a 409 gets the same account.
	env.do("POST", registerURL, stage("m.login.dummy", session)).expect(t, 200, "")
	if _, err := env.store.Account(context.Background(), "twice"); err != nil {
		t.Fatal(err)
	}
}

// TestACompletedSessionWaitsForThePassword: a flow completed without a
// password is M_MISSING_PARAM, and the session's stages stay done for the
// request that brings it (v1's password stage relies on it).
func TestACompletedSessionWaitsForThePassword(t *testing.T) {
	env := newEnv(t)
	session := env.do("POST", registerURL, `{"username": "kip"}`).expect(t, 401, "").str("session")
	env.do("POST", registerURL, jsonBody(map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": session}})).
		expect(t, 400, "M_MISSING_PARAM")
	r := env.do("POST", registerURL, jsonBody(map[string]any{"password": "pw-kip", "auth": map[string]any{"session": session}})).expect(t, 200, "")
	if r.str("user_id") != "@kip:example.org" {
		t.Fatalf("registered %s", r.Raw)
	}
}
