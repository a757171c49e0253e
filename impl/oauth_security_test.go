package impl_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"registrar/impl/config"
	"registrar/impl/ratelimit"
)

// signedInBrowser is a browser that signed in on the OAuth sign-in page
// and allowed the client once, so that its consent is remembered.
func (e *oauthEnv) signedInBrowser(t *testing.T, clientID, user, password string) *browser {
	t.Helper()
	b := e.browser(t)
	cfg := e.oauthConfig(clientID, 41000, strings.ToUpper(user)+"FIRST")
	verifier := oauth2.GenerateVerifier()
	params := b.authorize(cfg.AuthCodeURL("first", oauth2.S256ChallengeOption(verifier)), user, password)
	if _, err := cfg.Exchange(context.Background(), params.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
	return b
}

// nextAuthorization starts another authorisation in b and returns where it
// lands.
func (e *oauthEnv) nextAuthorization(t *testing.T, b *browser, clientID, device string) page {
	t.Helper()
	cfg := e.oauthConfig(clientID, 41001, device)
	return b.get(cfg.AuthCodeURL("next", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
}

// TestSignInsEndWithThePassword: a browser that signed in with the old
// password, and whose consent is remembered, must sign in again (and is
// given no code) after each way an account's sign-ins end.
func TestSignInsEndWithThePassword(t *testing.T) {
	env := newOAuthEnv(t)
	admin := env.adminToken("root")
	clientID := env.registerClient(t, nil)
	cases := []struct {
		name string
		end  func(user, token string)
	}{
		{"password change with logout_devices", func(user, token string) {
			env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-new-1", "logout_devices": true,
				"auth": passwordAuth(user, "pw-old-1", "")}), bearer(token)...).expect(t, 200, "")
		}},
		{"logout/all", func(user, token string) {
			env.do("POST", "/_matrix/client/v3/logout/all", `{}`, bearer(token)...).expect(t, 200, "")
		}},
		{"deactivation", func(user, token string) {
			env.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth(user, "pw-old-1", "")}), bearer(token)...).expect(t, 200, "")
		}},
		{"lock", func(user, token string) {
			env.do("PUT", lockURL+"@"+user+":example.org", `{"locked":true}`, bearer(admin)...).expect(t, 200, "")
		}},
		{"admin password reset without logout_devices", func(user, token string) {
			env.do("POST", "/_synapse/admin/v1/reset_password/@"+user+":example.org", `{"new_password":"pw-new-1","logout_devices":false}`,
				bearer(admin)...).expect(t, 200, "")
		}},
		{"admin password change in PUT users", func(user, token string) {
			env.do("PUT", adminV2Users+"@"+user+":example.org", `{"password":"pw-new-1","logout_devices":false}`,
				bearer(admin)...).expect(t, 200, "")
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			user := fmt.Sprintf("user%d", i)
			token := env.register(user, "pw-old-1").str("access_token")
			b := env.signedInBrowser(t, clientID, user, "pw-old-1")
			// Before: the remembered consent needs one click, no password.
			if p := env.nextAuthorization(t, b, clientID, user+"BEFORE"); !strings.Contains(p.body, `id="allow"`) {
				t.Fatalf("before: %d %q %s", p.status, p.location, p.body)
			}
			tc.end(user, token)
			p := env.nextAuthorization(t, b, clientID, user+"AFTER")
			if p.location != "" || !strings.Contains(p.body, `id="password"`) {
				t.Fatalf("after: not the sign-in page: %d %q %s", p.status, p.location, p.body)
			}
			// The account page asks to sign in too.
			if p := b.get(env.base + "/_registrar/account"); !strings.Contains(p.body, `id="password"`) {
				t.Fatalf("account page after: %d %s", p.status, p.body)
			}
			if dump := env.tableDump("browser_sessions") + env.tableDump("oauth_consents"); strings.Contains(dump, "@"+user+":") {
				t.Fatalf("sign-ins left: %s", dump)
			}
		})
	}
}

// TestBrowserSignInRacingPasswordChange races sign-ins on the page with
// the old password against a password change with logout_devices: no
// browser signed in by them is signed in once the change has returned.
func TestBrowserSignInRacingPasswordChange(t *testing.T) {
	env := newOAuthEnv(t, func(c *config.Config) { c.PasswordConfig.Algorithm = "bcrypt"; c.BcryptRounds = 5 })
	for trial := 0; trial < raceTrials; trial++ {
		user := fmt.Sprintf("racer%d", trial)
		token := env.register(user, "pw-old-1").str("access_token")
		browsers := make([]*browser, 4)
		forms := make([]page, 4)
		for i := range browsers {
			browsers[i] = env.browser(t)
			forms[i] = browsers[i].get(env.base + "/_registrar/login")
		}
		results := concurrently(5, func(i int) response {
			if i == 0 {
				return env.doQuiet("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-new-1",
					"auth": passwordAuth(user, "pw-old-1", "")}), bearer(token)...)
			}
			browsers[i-1].signIn(forms[i-1], user, "pw-old-1")
			return response{}
		})
		if results[0].Status != 200 {
			t.Fatalf("trial %d: password change %d %s", trial, results[0].Status, results[0].Raw)
		}
		for i, b := range browsers {
			if p := b.get(env.base + "/_registrar/account"); !strings.Contains(p.body, `id="password"`) {
				t.Fatalf("trial %d: browser %d is still signed in after the password change", trial, i)
			}
		}
	}
}

// TestPublicClientsAreAskedEveryTime: a remembered consent never issues a
// code without the person: the second authorisation shows a one-click
// page naming the account, the client and the new device, and no code
// reaches the redirect URI until it is clicked.
func TestPublicClientsAreAskedEveryTime(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("nat", "pw-nat-1")
	clientID := env.registerClient(t, nil)
	b := env.signedInBrowser(t, clientID, "nat", "pw-nat-1")
	p := env.nextAuthorization(t, b, clientID, "SECONDPHONE")
	if p.status != 200 || p.location != "" {
		t.Fatalf("a remembered consent answered %d %q without the person", p.status, p.location)
	}
	for _, want := range []string{`id="confirm"`, "@nat:example.org", "Test client", "SECONDPHONE", `id="allow"`, ">Continue<"} {
		if !strings.Contains(p.body, want) {
			t.Fatalf("the confirmation page lacks %q: %s", want, p.body)
		}
	}
	if strings.Contains(p.body, `id="scopes"`) {
		t.Fatalf("the confirmation repeats the scope explanation: %s", p.body)
	}
	done := b.post(p.url, url.Values{"action": {"allow"}, "csrf": {p.csrf(t)}})
	if params := callbackParams(t, done.location); params.Get("code") == "" || params.Get("state") != "next" {
		t.Fatalf("after continuing: %q", done.location)
	}
	// Cancelling sends access_denied.
	p = env.nextAuthorization(t, b, clientID, "THIRDPHONE")
	done = b.post(p.url, url.Values{"action": {"deny"}, "csrf": {p.csrf(t)}})
	if params := callbackParams(t, done.location); params.Get("error") != "access_denied" {
		t.Fatalf("after cancelling: %q", done.location)
	}
}

// TestLoopbackRedirectURIsMatchExactly: only the port of a registered
// loopback redirect URI may vary.
func TestLoopbackRedirectURIsMatchExactly(t *testing.T) {
	env := newOAuthEnv(t)
	clientID := env.registerClient(t, map[string]any{"redirect_uris": []string{"http://127.0.0.1/callback", "http://[::1]/cb",
		"http://localhost/cb?app=1"}})
	challenge := oauth2.S256ChallengeOption(oauth2.GenerateVerifier())
	cases := []struct {
		redirect string
		ok       bool
	}{
		{"http://127.0.0.1/callback", true},
		{"http://127.0.0.1:9999/callback", true},
		{"http://[::1]:9999/cb", true},
		{"http://localhost:1234/cb?app=1", true},
		{"http://localhost:9999/callback", false},
		{"http://127.0.0.2:9999/callback", false},
		{"http://[::1]:9999/callback", false},
		{"https://127.0.0.1:9999/callback", false},
		{"http://127.0.0.1:9999/callback/", false},
		{"http://127.0.0.1:9999/callback?x=1", false},
		{"http://127.0.0.1:9999/Callback", false},
		{"http://user@127.0.0.1:9999/callback", false},
		{"http://127.0.0.1:0/callback", false},
		{"http://127.0.0.1:99999/callback", false},
		{"http://localhost:1234/cb", false},
		{"http://LOCALHOST:1234/cb?app=1", false},
		{"http://[0:0:0:0:0:0:0:1]:9999/cb", false},
	}
	for _, tc := range cases {
		cfg := &oauth2.Config{ClientID: clientID, RedirectURL: tc.redirect, Endpoint: oauth2.Endpoint{AuthURL: env.base + "/_registrar/oauth2/authorize"},
			Scopes: []string{"urn:matrix:client:api:*", "urn:matrix:client:device:LOOP"}}
		p := env.browser(t).get(cfg.AuthCodeURL("s", challenge))
		switch {
		case tc.ok && !strings.Contains(p.url, "/_registrar/login"):
			t.Errorf("%s: refused: %d %q %s", tc.redirect, p.status, p.location, p.body)
		case !tc.ok && (p.status != 400 || p.location != "" || !strings.Contains(p.body, "invalid_request")):
			t.Errorf("%s: accepted: %d %q %s", tc.redirect, p.status, p.location, p.body)
		}
	}
}

// TestPrivateUseSchemesAreTheClientsDomainReversed: a native client's
// custom scheme must be the reverse of a client_uri host with a dot, and
// schemes a browser acts on are never accepted.
func TestPrivateUseSchemesAreTheClientsDomainReversed(t *testing.T) {
	env := newOAuthEnv(t)
	cases := []struct {
		clientURI, redirect string
		ok                  bool
	}{
		{"https://app.example.org/", "org.example.app:/callback", true},
		{"https://app.example.org/", "org.example.app.dev:/callback", true},
		{"https://javascript/", "javascript:alert(1)", false},
		{"https://javascript/", "javascript:/alert(1)", false},
		{"https://data/", "data:text/html,hi", false},
		{"https://file/", "file:/etc/passwd", false},
		{"https://localhost/", "localhost:/callback", false},
		{"https://myapp/", "myapp:/callback", false},
		{"https://192.168.0.1/", "1.0.168.192:/callback", false},
		{"https://app.example.org/", "com.example.app:/callback", false},
		{"https://app.example.org/", "org.example:/callback", false},
		{"https://app.example.org/", "org.example.app://host/callback", false},
	}
	for _, tc := range cases {
		r := env.do("POST", "/_registrar/oauth2/register", jsonBody(map[string]any{"client_uri": tc.clientURI,
			"redirect_uris": []string{tc.redirect}, "application_type": "native", "token_endpoint_auth_method": "none",
			"grant_types": []string{"authorization_code"}, "response_types": []string{"code"}}))
		switch {
		case tc.ok && r.Status != 201:
			t.Errorf("%s with %s: %d %s", tc.redirect, tc.clientURI, r.Status, r.Raw)
		case !tc.ok && (r.Status != 400 || r.str("error") != "invalid_redirect_uri"):
			t.Errorf("%s with %s accepted: %d %s", tc.redirect, tc.clientURI, r.Status, r.Raw)
		}
	}
}

// TestAuthorizationRequestsAreBounded: stored parameters have length
// caps, requests per address are limited, and pending authorisations
// expire and are swept.
func TestAuthorizationRequestsAreBounded(t *testing.T) {
	env := newOAuthEnv(t, func(c *config.Config) {
		c.OAuth.RcAuthorization = ratelimit.Rate{PerSecond: 0.01, BurstCount: 8}
	})
	clientID := env.registerClient(t, nil)
	cfg := env.oauthConfig(clientID, 41002, "BOUNDED")
	challenge := oauth2.S256ChallengeOption(oauth2.GenerateVerifier())
	b := env.browser(t)
	cases := []struct {
		name   string
		url    string
		status int
	}{
		{"state of 512 bytes", cfg.AuthCodeURL(strings.Repeat("s", 512), challenge), 200},
		{"state of 513 bytes", cfg.AuthCodeURL(strings.Repeat("s", 513), challenge), 400},
		{"nonce of 512 bytes", cfg.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("nonce", strings.Repeat("n", 512))), 200},
		{"nonce of 513 bytes", cfg.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("nonce", strings.Repeat("n", 513))), 400},
		{"code_challenge of 129 bytes", cfg.AuthCodeURL("s", oauth2.SetAuthURLParam("code_challenge", strings.Repeat("c", 129)),
			oauth2.SetAuthURLParam("code_challenge_method", "S256")), 400},
	}
	for _, tc := range cases {
		p := b.get(tc.url)
		if p.status != tc.status || (tc.status == 400 && (p.location != "" || !strings.Contains(p.body, "invalid_request"))) {
			t.Fatalf("%s: %d %q %s", tc.name, p.status, p.location, p.body)
		}
		if strings.Contains(p.body, strings.Repeat("s", 100)) || strings.Contains(p.body, strings.Repeat("n", 100)) {
			t.Fatalf("%s: the answer echoes the parameter", tc.name)
		}
	}
	if n := strings.Count(env.tableDump("oauth_grants"), "\n"); n != 2 {
		t.Fatalf("%d pending authorisations stored, want the 2 within bounds", n)
	}
	// The limit: 8 requests in all from this address, then 429.
	for i := len(cases); i < 8; i++ {
		if p := b.get(cfg.AuthCodeURL("s", challenge)); p.status != 200 {
			t.Fatalf("request %d: %d %s", i, p.status, p.body)
		}
	}
	if p := b.get(cfg.AuthCodeURL("s", challenge)); p.status != 429 || !strings.Contains(p.body, "temporarily_unavailable") {
		t.Fatalf("past the limit: %d %s", p.status, p.body)
	}
	// Pending authorisations expire after 30 minutes and are swept.
	env.clock.Advance(31 * time.Minute)
	env.server.Sweep(context.Background())
	if dump := env.tableDump("oauth_grants"); dump != "" {
		t.Fatalf("expired authorisations left: %s", dump)
	}
}

// TestRevocationChecksTheClient: RFC 7009 §2.1, a token is revoked only
// by the client it was issued to.
func TestRevocationChecksTheClient(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("rev", "pw-rev-1")
	legacy := env.do("POST", loginURL, loginBody("rev", "pw-rev-1")).expect(t, 200, "").str("access_token")
	mine := env.registerClient(t, nil)
	other := env.registerClient(t, map[string]any{"client_name": "Other"})
	cfg := env.oauthConfig(mine, 41003, "REVDEVICE")
	verifier := oauth2.GenerateVerifier()
	params := env.browser(t).authorize(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "rev", "pw-rev-1")
	tok, err := cfg.Exchange(context.Background(), params.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	revoke := func(form url.Values) (int, string) {
		resp, err := http.PostForm(env.base+"/_registrar/oauth2/revoke", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := readPage(t, resp)
		if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
			t.Fatalf("revocation answer without no-store: %v", resp.Header)
		}
		return r.status, r.body
	}
	refusals := []struct {
		name string
		form url.Values
		code string
	}{
		{"another client's token", url.Values{"token": {tok.AccessToken}, "client_id": {other}}, "unauthorized_client"},
		{"another client's refresh token", url.Values{"token": {tok.RefreshToken}, "client_id": {other}}, "unauthorized_client"},
		{"a legacy token", url.Values{"token": {legacy}, "client_id": {mine}}, "unauthorized_client"},
		{"no client_id", url.Values{"token": {tok.AccessToken}}, "invalid_client"},
		{"an unknown client_id", url.Values{"token": {tok.AccessToken}, "client_id": {"NOSUCHCLIENT"}}, "invalid_client"},
	}
	for _, tc := range refusals {
		if status, body := revoke(tc.form); status != 401 || !strings.Contains(body, `"error":"`+tc.code+`"`) {
			t.Fatalf("%s: %d %s", tc.name, status, body)
		}
	}
	env.do("GET", whoamiURL, "", bearer(tok.AccessToken)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(legacy)...).expect(t, 200, "")
	if status, body := revoke(url.Values{"token": {"unknown-token"}, "client_id": {mine}}); status != 200 {
		t.Fatalf("an unknown token: %d %s", status, body)
	}
	if status, body := revoke(url.Values{"token": {tok.RefreshToken}, "client_id": {mine}}); status != 200 {
		t.Fatalf("its own client: %d %s", status, body)
	}
	env.do("GET", whoamiURL, "", bearer(tok.AccessToken)...).expect(t, 401, "M_UNKNOWN_TOKEN")
}

// TestOAuthAnswersAreNotStored: every answer of the token endpoint (a
// token, an error), the device authorisation and client registration
// carry Cache-Control: no-store and Pragma: no-cache (RFC 6749 §5.1);
// discovery stays cacheable.
func TestOAuthAnswersAreNotStored(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("ns", "pw-ns-1")
	clientID := env.registerClient(t, nil)
	cfg := env.oauthConfig(clientID, 41004, "NSDEVICE")
	verifier := oauth2.GenerateVerifier()
	params := env.browser(t).authorize(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "ns", "pw-ns-1")
	post := func(path string, form url.Values) *http.Response {
		resp, err := http.PostForm(env.base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	answers := map[string]*http.Response{
		"token": post("/_registrar/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {params.Get("code")},
			"redirect_uri": {cfg.RedirectURL}, "client_id": {clientID}, "code_verifier": {verifier}}),
		"token error": post("/_registrar/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {"nope"},
			"redirect_uri": {cfg.RedirectURL}, "client_id": {clientID}, "code_verifier": {verifier}}),
		"device authorization": post("/_registrar/oauth2/device_authorization", url.Values{"client_id": {clientID},
			"scope": {"urn:matrix:client:api:* urn:matrix:client:device:TV"}}),
	}
	reg := env.do("POST", "/_registrar/oauth2/register", jsonBody(map[string]any{"client_uri": "https://x.example.org/",
		"redirect_uris": []string{"https://x.example.org/cb"}}))
	for name, resp := range answers {
		if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
			t.Errorf("%s (%d): Cache-Control %q, Pragma %q", name, resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
		}
	}
	if reg.Header.Get("Cache-Control") != "no-store" || reg.Header.Get("Pragma") != "no-cache" {
		t.Errorf("registration: %v", reg.Header)
	}
	if meta := env.do("GET", "/_matrix/client/v1/auth_metadata", ""); meta.Header.Get("Cache-Control") == "no-store" {
		t.Errorf("discovery is not a secret: %v", meta.Header)
	}
}

// TestUnusedClientsAreBoundedAndForgotten: metadata has a size cap, an
// address may hold only so many clients that never completed an
// authorisation, and those are forgotten after
// oauth.unused_client_lifetime while used ones stay.
func TestUnusedClientsAreBoundedAndForgotten(t *testing.T) {
	env := newOAuthEnv(t, func(c *config.Config) { c.OAuth.MaxUnusedClientsPerAddress = 3 })
	env.register("cli", "pw-cli-1")
	big := env.do("POST", "/_registrar/oauth2/register", jsonBody(map[string]any{"client_uri": "https://big.example.org/",
		"redirect_uris": []string{"https://big.example.org/cb"}, "contacts": []string{strings.Repeat("a", 9000) + "@example.org"}}))
	if big.Status != 400 || big.str("error") != "invalid_client_metadata" {
		t.Fatalf("oversized metadata: %d %s", big.Status, big.Raw)
	}
	used := env.registerClient(t, nil)
	env.signedInBrowser(t, used, "cli", "pw-cli-1")
	var unused []string
	for i := 0; i < 3; i++ {
		env.clock.Advance(time.Hour)
		unused = append(unused, env.registerClient(t, map[string]any{"client_name": fmt.Sprintf("Unused %d", i)}))
	}
	// The same metadata again is the same client, not a new one.
	env.clock.Advance(time.Hour)
	again := env.do("POST", "/_registrar/oauth2/register", jsonBody(map[string]any{"client_uri": "https://client.example.org/",
		"redirect_uris": []string{"http://127.0.0.1/callback"}, "application_type": "native", "client_name": "Fourth"}))
	again.expect(t, 429, "")
	if again.str("error") != "temporarily_unavailable" || again.Header.Get("Retry-After") != fmt.Sprint(int((21*time.Hour).Seconds())) {
		t.Fatalf("past the cap: %s, Retry-After %q", again.Raw, again.Header.Get("Retry-After"))
	}
	// Another address is not held back.
	env.doFrom("198.51.100.7", "POST", "/_registrar/oauth2/register", jsonBody(map[string]any{"client_uri": "https://client.example.org/",
		"redirect_uris": []string{"http://127.0.0.1/callback"}, "application_type": "native", "client_name": "Elsewhere"})).expect(t, 201, "")
	// A day after it was registered, the first unused client is gone, with
	// its pending authorisations; the used one stays.
	env.browser(t).get(env.oauthConfig(unused[0], 41005, "PENDING").AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	env.clock.Advance(21*time.Hour + time.Minute)
	env.server.Sweep(context.Background())
	clients := env.tableDump("oauth_clients")
	if strings.Contains(clients, unused[0]) || !strings.Contains(clients, unused[1]) || !strings.Contains(clients, used) {
		t.Fatalf("clients after the sweep: %s", clients)
	}
	if grants := env.tableDump("oauth_grants"); strings.Contains(grants, unused[0]) {
		t.Fatalf("grants of a forgotten client: %s", grants)
	}
	env.registerClient(t, map[string]any{"client_name": "Now there is room"})
}

// TestLoginTokensEndWithTheSignIns: an unspent m.login.token does not
// survive /logout/all or a password change with logout_devices.
func TestLoginTokensEndWithTheSignIns(t *testing.T) {
	env := newEnv(t, loginTokenEnabled, func(c *config.Config) { c.LoginViaExistingSession.RequireUIAuth = false })
	for _, end := range []string{"logout/all", "password"} {
		user := "lt" + strings.ReplaceAll(end, "/", "")
		token := env.register(user, "pw-old-1").str("access_token")
		loginToken := env.do("POST", getTokenURL, `{}`, bearer(token)...).expect(t, 200, "").str("login_token")
		if end == "logout/all" {
			env.do("POST", "/_matrix/client/v3/logout/all", `{}`, bearer(token)...).expect(t, 200, "")
		} else {
			env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-new-1", "logout_devices": true,
				"auth": passwordAuth(user, "pw-old-1", "")}), bearer(token)...).expect(t, 200, "")
		}
		env.do("POST", loginURL, `{"type":"m.login.token","token":"`+loginToken+`"}`).expect(t, 403, "M_FORBIDDEN")
	}
}

// TestUIASessionCapIsNoLockout: sessions an attacker leaves in progress
// from a shared address hold back only unauthenticated starts from it;
// a logged-in user there still changes their password, and finished
// sessions never count.
func TestUIASessionCapIsNoLockout(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.UIAuth.MaxSessionsPerAddress = 3 })
	token := env.register("victim", "pw-victim-1").str("access_token")
	shared := "203.0.113.50"
	for i := 0; i < 3; i++ {
		env.doFrom(shared, "POST", registerURL, `{"username":"squat`+fmt.Sprint(i)+`","password":"pw-squat-1"}`).expect(t, 401, "")
	}
	env.doFrom(shared, "POST", registerURL, `{"username":"squat9","password":"pw-squat-1"}`).expect(t, 429, "M_LIMIT_EXCEEDED")
	for i := 0; i < 5; i++ {
		// Each change starts, completes and consumes a session.
		r := env.doFrom(shared, "POST", passwordURL, jsonBody(map[string]any{"new_password": fmt.Sprintf("pw-victim-%d", i+2),
			"logout_devices": false}), bearer(token)...).expect(t, 401, "")
		env.doFrom(shared, "POST", passwordURL, jsonBody(map[string]any{"new_password": fmt.Sprintf("pw-victim-%d", i+2),
			"logout_devices": false, "auth": passwordAuth("victim", fmt.Sprintf("pw-victim-%d", i+1), r.str("session"))}),
			bearer(token)...).expect(t, 200, "")
	}
}
