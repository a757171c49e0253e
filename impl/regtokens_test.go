package impl_test

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"registrar/impl"
	"registrar/impl/config"
)

func TestRegistrationTokenAdminAPI(t *testing.T) {
	env := newEnv(t, tokenRequired)
	admin := env.adminToken("root")
	user := env.register("plain", "pw-plain-1").str("access_token") // the dummy flow needs the token stage now
	if user != "" {
		t.Fatal("registered without a token")
	}
	env.do("GET", tokensURL, "").expect(t, 401, "M_MISSING_TOKEN")
	guest := env.do("POST", registerURL+"?kind=guest", `{}`).str("access_token")
	env.do("GET", tokensURL, "", bearer(guest)...).expect(t, 403, "M_FORBIDDEN")

	created := env.do("POST", tokensURL+"/new", `{"token":"abc.DEF_~-1","uses_allowed":3,"expiry_time":4102444800000}`, bearer(admin)...).expect(t, 200, "")
	if jsonBody(created.Body) != `{"completed":0,"expiry_time":4102444800000,"pending":0,"token":"abc.DEF_~-1","uses_allowed":3}` {
		t.Fatalf("created %s", created.Raw)
	}
	random := env.do("POST", tokensURL+"/new", `{"length":24}`, bearer(admin)...).expect(t, 200, "")
	if len(random.str("token")) != 24 || random.Body["uses_allowed"] != nil || random.Body["expiry_time"] != nil {
		t.Fatalf("random %s", random.Raw)
	}
	def := env.do("POST", tokensURL+"/new", `{}`, bearer(admin)...).expect(t, 200, "")
	if len(def.str("token")) != 16 {
		t.Fatalf("default length %s", def.Raw)
	}
	for _, bad := range []string{
		`{"token":"abc.DEF_~-1"}`, `{"token":"has space"}`, `{"token":""}`, `{"length":0}`, `{"length":65}`,
		`{"uses_allowed":-1}`, `{"expiry_time":1000}`,
	} {
		env.do("POST", tokensURL+"/new", bad, bearer(admin)...).expect(t, 400, "M_INVALID_PARAM")
	}
	env.do("GET", tokensURL+"/abc.DEF_~-1", "", bearer(admin)...).expect(t, 200, "")
	env.do("GET", tokensURL+"/missing", "", bearer(admin)...).expect(t, 404, "M_NOT_FOUND")
	// PUT: an absent field is kept, null removes the limit.
	up := env.do("PUT", tokensURL+"/abc.DEF_~-1", `{"uses_allowed":null}`, bearer(admin)...).expect(t, 200, "")
	if up.Body["uses_allowed"] != nil || up.Body["expiry_time"] != float64(4102444800000) {
		t.Fatalf("update %s", up.Raw)
	}
	up = env.do("PUT", tokensURL+"/abc.DEF_~-1", `{"uses_allowed":0}`, bearer(admin)...).expect(t, 200, "")
	if up.Body["uses_allowed"] != float64(0) {
		t.Fatalf("update %s", up.Raw)
	}
	list := env.do("GET", tokensURL, "", bearer(admin)...).expect(t, 200, "")
	if n := len(list.Body["registration_tokens"].([]any)); n != 3 {
		t.Fatalf("list %s", list.Raw)
	}
	invalid := env.do("GET", tokensURL+"?valid=false", "", bearer(admin)...).expect(t, 200, "")
	if jsonBody(invalid.Body["registration_tokens"]) != `[{"completed":0,"expiry_time":4102444800000,"pending":0,"token":"abc.DEF_~-1","uses_allowed":0}]` {
		t.Fatalf("invalid list %s", invalid.Raw)
	}
	env.do("DELETE", tokensURL+"/abc.DEF_~-1", "", bearer(admin)...).expect(t, 200, "")
	env.do("DELETE", tokensURL+"/abc.DEF_~-1", "", bearer(admin)...).expect(t, 404, "M_NOT_FOUND")
}

func TestRegistrationTokenLifecycle(t *testing.T) {
	env := newEnv(t, tokenRequired)
	admin := env.adminToken("root")
	token := env.newToken(admin, `{"uses_allowed":1}`)

	first := env.do("POST", registerURL, `{"username":"tina","password":"pw-tina-1"}`).expect(t, 401, "")
	if jsonBody(first.Body["flows"]) != `[{"stages":["m.login.registration_token","m.login.dummy"]}]` {
		t.Fatalf("flows %s", first.Raw)
	}
	session := first.str("session")
	env.do("POST", registerURL, stage("m.login.registration_token", session, map[string]any{"token": "wrong"})).expect(t, 401, "M_UNAUTHORIZED")
	env.do("POST", registerURL, stage("m.login.registration_token", session)).expect(t, 401, "M_MISSING_PARAM")
	ok := env.do("POST", registerURL, stage("m.login.registration_token", session, map[string]any{"token": token})).expect(t, 401, "")
	if jsonBody(ok.Body["completed"]) != `["m.login.registration_token"]` {
		t.Fatalf("completed %s", ok.Raw)
	}
	if st := env.tokenState(admin, token); st.Body["pending"] != float64(1) {
		t.Fatalf("pending %s", st.Raw)
	}
	// Validity is point in time: the reserved last use makes it invalid.
	v := env.do("GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token="+token, "").expect(t, 200, "")
	if v.Body["valid"] != false {
		t.Fatalf("validity %s", v.Raw)
	}
	other := env.newToken(admin, `{}`)
	env.do("POST", registerURL, stage("m.login.registration_token", session, map[string]any{"token": other})).expect(t, 400, "M_INVALID_PARAM")
	env.do("POST", registerURL, stage("m.login.dummy", session)).expect(t, 200, "")
	if st := env.tokenState(admin, token); st.Body["pending"] != float64(0) || st.Body["completed"] != float64(1) {
		t.Fatalf("after registration %s", st.Raw)
	}
	// Exhausted.
	s2 := env.do("POST", registerURL, `{"username":"uwe","password":"pw-uwe-1"}`).str("session")
	env.do("POST", registerURL, stage("m.login.registration_token", s2, map[string]any{"token": token})).expect(t, 401, "M_UNAUTHORIZED")
}

func TestRegistrationTokenExpiryAndDisabled(t *testing.T) {
	env := newEnv(t, tokenRequired)
	admin := env.adminToken("root")
	soon := env.clock.Now().Add(time.Hour).UnixMilli()
	expiring := env.newToken(admin, jsonBody(map[string]any{"expiry_time": soon}))
	disabled := env.newToken(admin, `{"uses_allowed":0}`)
	validity := func(tok string) any {
		return env.do("GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token="+tok, "").expect(t, 200, "").Body["valid"]
	}
	if validity(expiring) != true || validity(disabled) != false || validity("unknown") != false {
		t.Fatal("validity before expiry")
	}
	env.clock.Advance(2 * time.Hour)
	if validity(expiring) != false {
		t.Fatal("expired token still valid")
	}
	s := env.do("POST", registerURL, `{"username":"vic","password":"pw-vic-1"}`).str("session")
	env.do("POST", registerURL, stage("m.login.registration_token", s, map[string]any{"token": expiring})).expect(t, 401, "M_UNAUTHORIZED")
	env.do("POST", registerURL, stage("m.login.registration_token", s, map[string]any{"token": disabled})).expect(t, 401, "M_UNAUTHORIZED")

	closed := newEnv(t, tokenRequired, func(c *config.Config) { c.EnableRegistration = false })
	closed.do("GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=x", "").expect(t, 403, "M_FORBIDDEN")
}

func TestRegistrationTokenReleasedWhenSessionExpires(t *testing.T) {
	env := newEnv(t, tokenRequired)
	admin := env.adminToken("root")
	token := env.newToken(admin, `{"uses_allowed":1}`)
	s := env.do("POST", registerURL, `{"username":"wes","password":"pw-wes-1"}`).str("session")
	env.do("POST", registerURL, stage("m.login.registration_token", s, map[string]any{"token": token})).expect(t, 401, "")
	env.server.Sweep(context.Background())
	if st := env.tokenState(admin, token); st.Body["pending"] != float64(1) {
		t.Fatalf("a live session's reservation was released: %s", st.Raw)
	}
	env.clock.Advance(49 * time.Hour)
	env.server.Sweep(context.Background())
	st := env.tokenState(admin, token)
	if st.Body["pending"] != float64(0) || st.Body["completed"] != float64(0) {
		t.Fatalf("after expiry %s", st.Raw)
	}
	// The use is available again.
	s2 := env.do("POST", registerURL, `{"username":"xia","password":"pw-xia-1"}`).str("session")
	env.do("POST", registerURL, stage("m.login.registration_token", s2, map[string]any{"token": token})).expect(t, 401, "")
	env.do("POST", registerURL, stage("m.login.dummy", s2)).expect(t, 200, "")
}

// TestRegistrationTokenLastUseRace has many sessions submit a one-use token
// at once: exactly one reserves it.
func TestRegistrationTokenLastUseRace(t *testing.T) {
	env := newEnv(t, tokenRequired)
	admin := env.adminToken("root")
	token := env.newToken(admin, `{"uses_allowed":1}`)
	const n = 10
	sessions := make([]string, n)
	for i := range sessions {
		sessions[i] = env.do("POST", registerURL, jsonBody(map[string]any{"username": "racer" + string(rune('a'+i)), "password": "pw-racer-1"})).str("session")
	}
	results := concurrently(n, func(i int) response {
		return env.do("POST", registerURL, stage("m.login.registration_token", sessions[i], map[string]any{"token": token}))
	})
	won := 0
	for _, r := range results {
		switch r.str("errcode") {
		case "":
			won++
		case "M_UNAUTHORIZED":
		default:
			t.Errorf("unexpected %s", r.Raw)
		}
	}
	if won != 1 {
		t.Fatalf("%d sessions reserved the last use", won)
	}
	if st := env.tokenState(admin, token); st.Body["pending"] != float64(1) {
		t.Fatalf("pending %s", st.Raw)
	}
}

func TestSharedSecretRegistration(t *testing.T) {
	secret := "shared-secret-for-tests"
	env := newEnv(t, func(c *config.Config) {
		c.RegistrationSharedSecret = secret
		c.EnableRegistration = false
	})
	nonce := func() string {
		return env.do("GET", "/_synapse/admin/v1/register", "").expect(t, 200, "").str("nonce")
	}
	body := func(n, user, pw string, admin bool, mac string) string {
		if mac == "" {
			mac = impl.SharedSecretMAC([]byte(secret), n, user, pw, admin)
		}
		return jsonBody(map[string]any{"nonce": n, "username": user, "password": pw, "admin": admin, "mac": mac})
	}
	n1 := nonce()
	env.do("POST", "/_synapse/admin/v1/register", body(n1, "boss", "pw-boss-1", true, hex.EncodeToString(make([]byte, 20))), "").expect(t, 403, "M_FORBIDDEN")
	// The nonce was used up by the failed attempt.
	env.do("POST", "/_synapse/admin/v1/register", body(n1, "boss", "pw-boss-1", true, ""), "").expect(t, 400, "M_UNKNOWN")
	n2 := nonce()
	r := env.do("POST", "/_synapse/admin/v1/register", body(n2, "Boss", "pw-boss-1", true, "")).expect(t, 200, "")
	if r.str("user_id") != "@boss:example.org" || r.str("access_token") == "" {
		t.Fatalf("shared-secret registration %s", r.Raw)
	}
	env.do("POST", "/_synapse/admin/v1/register", body(n2, "boss2", "pw-boss-1", false, "")).expect(t, 400, "M_UNKNOWN")
	env.do("GET", tokensURL, "", bearer(r.str("access_token"))...).expect(t, 200, "")
	n3 := nonce()
	env.clock.Advance(61 * time.Second)
	env.do("POST", "/_synapse/admin/v1/register", body(n3, "late", "pw-late-1", false, "")).expect(t, 400, "M_UNKNOWN")

	off := newEnv(t)
	off.do("GET", "/_synapse/admin/v1/register", "").expect(t, 400, "M_UNKNOWN")
}

func TestApplicationServices(t *testing.T) {
	dir := t.TempDir()
	bridge := writeAppService(t, dir, "irc", "as-token-irc", `@_irc_.*:example\.org`)
	other := writeAppService(t, dir, "slack", "as-token-slack", `@_slack_.*`)
	env := newEnv(t, func(c *config.Config) { c.AppServiceConfigFiles = []string{bridge, other} })

	env.register("_irc_alice", "pw-1").expect(t, 400, "M_INVALID_USERNAME") // leading _ first, as Synapse
	env.do("GET", "/_matrix/client/v3/register/available?username=_irc_alice", "").expect(t, 400, "M_INVALID_USERNAME")
	open := newEnv(t, func(c *config.Config) {
		c.AppServiceConfigFiles = []string{bridge}
		c.AllowUnderscorePrefixedLocalpart = true
	})
	open.register("_irc_alice", "pw-1").expect(t, 400, "M_EXCLUSIVE")
	open.do("GET", "/_matrix/client/v3/register/available?username=_irc_alice", "").expect(t, 400, "M_EXCLUSIVE")
	open.register("_ircfan", "pw-1").expect(t, 200, "")

	as := `{"type":"m.login.application_service","username":"_irc_Alice"}`
	env.do("POST", registerURL, as).expect(t, 401, "M_MISSING_TOKEN")
	user := env.register("someone", "pw-someone-1").str("access_token")
	env.do("POST", registerURL, as, bearer(user)...).expect(t, 403, "M_FORBIDDEN")
	env.do("POST", registerURL, as, bearer("nonsense")...).expect(t, 401, "M_UNKNOWN_TOKEN")
	r := env.do("POST", registerURL, as, bearer("as-token-irc")...).expect(t, 200, "")
	if r.str("user_id") != "@_irc_Alice:example.org" || r.str("access_token") == "" {
		t.Fatalf("AS registration %s", r.Raw)
	}
	env.do("POST", registerURL, `{"type":"m.login.application_service","username":"bob"}`, bearer("as-token-irc")...).expect(t, 400, "M_EXCLUSIVE")
	env.do("POST", registerURL, `{"type":"m.login.application_service","username":"_slack_x"}`, bearer("as-token-irc")...).expect(t, 400, "M_EXCLUSIVE")
	env.do("POST", registerURL, as, bearer("as-token-irc")...).expect(t, 400, "M_USER_IN_USE")

	flows := env.do("GET", loginURL, "").expect(t, 200, "")
	if jsonBody(flows.Body["flows"]) != `[{"type":"m.login.password"},{"type":"m.login.application_service"}]` {
		t.Fatalf("login flows %s", flows.Raw)
	}
	login := `{"type":"m.login.application_service","identifier":{"type":"m.id.user","user":"_irc_Alice"}}`
	env.do("POST", loginURL, login).expect(t, 401, "M_MISSING_TOKEN")
	env.do("POST", loginURL, login, bearer("as-token-slack")...).expect(t, 400, "M_EXCLUSIVE")
	l := env.do("POST", loginURL, login, bearer("as-token-irc")...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(l.str("access_token"))...).expect(t, 200, "")

	who := env.do("GET", whoamiURL, "", bearer("as-token-irc")...).expect(t, 200, "")
	if who.str("user_id") != "@ircbot:example.org" || who.Body["device_id"] != nil {
		t.Fatalf("AS whoami %s", who.Raw)
	}
	masq := env.do("GET", whoamiURL+"?user_id=@_irc_Alice:example.org", "", bearer("as-token-irc")...).expect(t, 200, "")
	if masq.str("user_id") != "@_irc_Alice:example.org" {
		t.Fatalf("masquerade %s", masq.Raw)
	}
	env.do("GET", whoamiURL+"?user_id=@someone:example.org", "", bearer("as-token-irc")...).expect(t, 403, "M_FORBIDDEN")
}

func TestApplicationServiceConfigErrors(t *testing.T) {
	dir := t.TempDir()
	a := writeAppService(t, dir, "one", "same-token", `@_a_.*`)
	b := writeAppService(t, dir, "two", "same-token", `@_b_.*`)
	bad := writeAppService(t, dir, "three", "t3", `@_(`)
	for name, files := range map[string][]string{"shared token": {a, b}, "bad regex": {bad}, "missing": {filepath.Join(dir, "nope.yaml")}} {
		cfg := testConfig()
		cfg.DataDirectory = t.TempDir()
		cfg.MacaroonSecretKey = ""
		cfg.AppServiceConfigFiles = files
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte("app_service_config_files: ["+files[0]+"]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		getenv := func(k string) string {
			if k == "REGISTRAR_DATA_DIRECTORY" {
				return cfg.DataDirectory
			}
			return ""
		}
		if name == "shared token" {
			os.WriteFile(path, []byte("app_service_config_files: ["+a+", "+b+"]\n"), 0o600)
		}
		if _, err := config.Load(path, getenv); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
