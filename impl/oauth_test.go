package impl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"registrar/impl"
	"registrar/impl/accounts"
	"registrar/impl/config"
	"registrar/impl/ratelimit"
)

// oauthEnv is a server on a real listener whose public_baseurl is its
// address, for OAuth clients and browsers.
type oauthEnv struct {
	*testEnv
	base string
	ts   *httptest.Server
}

func newOAuthEnv(t *testing.T, mutate ...func(*config.Config)) *oauthEnv {
	t.Helper()
	return newOAuthEnvAt(t, "127.0.0.1", mutate...)
}

// newOAuthEnvAt is newOAuthEnv whose public address names host (localhost
// for WebAuthn, which takes no IP address).
func newOAuthEnvAt(t *testing.T, host string, mutate ...func(*config.Config)) *oauthEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	base := "http://" + net.JoinHostPort(host, port)
	env := newEnv(t, append([]func(*config.Config){func(c *config.Config) {
		c.PublicBaseURL = base + "/"
		c.OAuth.Issuer = base + "/"
		c.OAuth.DevicePollInterval = config.Duration{Duration: time.Second}
	}}, mutate...)...)
	ts := httptest.NewUnstartedServer(env.server)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	return &oauthEnv{testEnv: env, base: base, ts: ts}
}

// registerClient registers a native client with a loopback redirect URI.
func (e *oauthEnv) registerClient(t *testing.T, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"client_name": "Test client", "client_name#fr": "Client de test", "client_uri": "https://client.example.org/",
		"tos_uri": "https://client.example.org/tos", "policy_uri": "https://client.example.org/privacy",
		"redirect_uris": []string{"http://127.0.0.1/callback"}, "application_type": "native", "token_endpoint_auth_method": "none",
		"grant_types":    []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
		"response_types": []string{"code"}}
	for k, v := range extra {
		body[k] = v
	}
	r := e.do("POST", "/_registrar/oauth2/register", jsonBody(body)).expect(t, 201, "")
	if r.str("client_id") == "" || r.str("client_name#fr") != "Client de test" {
		t.Fatalf("registration %s", r.Raw)
	}
	return r.str("client_id")
}

func (e *oauthEnv) oauthConfig(clientID string, port int, deviceID string) *oauth2.Config {
	return &oauth2.Config{ClientID: clientID, RedirectURL: fmt.Sprintf("http://127.0.0.1:%d/callback", port),
		Endpoint: oauth2.Endpoint{AuthURL: e.base + "/_registrar/oauth2/authorize", TokenURL: e.base + "/_registrar/oauth2/token",
			DeviceAuthURL: e.base + "/_registrar/oauth2/device_authorization", AuthStyle: oauth2.AuthStyleInParams},
		Scopes: []string{"urn:matrix:client:api:*", "urn:matrix:client:device:" + deviceID}}
}

// browser is a person's browser: cookies, following the server's own
// redirects and stopping at anyone else's.
type browser struct {
	t      *testing.T
	client *http.Client
	host   string
}

func (e *oauthEnv) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(e.base)
	b := &browser{t: t, host: u.Host}
	b.client = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != b.host {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

type page struct {
	status   int
	body     string
	location string
	url      string
	header   http.Header
}

func (b *browser) get(raw string) page {
	b.t.Helper()
	resp, err := b.client.Get(raw)
	if err != nil {
		b.t.Fatal(err)
	}
	return readPage(b.t, resp)
}

func (b *browser) post(raw string, form url.Values) page {
	b.t.Helper()
	resp, err := b.client.PostForm(raw, form)
	if err != nil {
		b.t.Fatal(err)
	}
	return readPage(b.t, resp)
}

func readPage(t *testing.T, resp *http.Response) page {
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location"), url: resp.Request.URL.String(),
		header: resp.Header}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (p page) csrf(t *testing.T) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF token on %s (%d): %s", p.url, p.status, p.body)
	}
	return m[1]
}

// signIn signs the browser in on the page it is on.
func (b *browser) signIn(p page, user, password string) page {
	b.t.Helper()
	if !strings.Contains(p.body, `id="password"`) {
		b.t.Fatalf("not the sign-in page: %s %s", p.url, p.body)
	}
	next := ""
	if m := regexp.MustCompile(`name="next" value="([^"]*)"`).FindStringSubmatch(p.body); m != nil {
		next = strings.ReplaceAll(m[1], "&amp;", "&")
	}
	return b.post(strings.Split(p.url, "?")[0], url.Values{"username": {user}, "password": {password}, "csrf": {p.csrf(b.t)},
		"next": {next}})
}

// authorize runs the code flow in the browser up to the redirect back to
// the client, and returns the callback's parameters.
func (b *browser) authorize(authURL, user, password string) url.Values {
	b.t.Helper()
	p := b.get(authURL)
	if strings.Contains(p.body, `id="password"`) {
		p = b.signIn(p, user, password)
	}
	if p.location != "" {
		return callbackParams(b.t, p.location)
	}
	if !strings.Contains(p.body, `id="allow"`) {
		b.t.Fatalf("not the consent page: %d %s", p.status, p.body)
	}
	p = b.post(p.url, url.Values{"action": {"allow"}, "csrf": {p.csrf(b.t)}})
	if p.status != http.StatusSeeOther {
		b.t.Fatalf("consent answered %d %s", p.status, p.body)
	}
	return callbackParams(b.t, p.location)
}

func callbackParams(t *testing.T, location string) url.Values {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil || !strings.HasPrefix(location, "http://127.0.0.1:") {
		t.Fatalf("redirect to %q", location)
	}
	q := u.Query()
	if u.Fragment != "" {
		q, _ = url.ParseQuery(u.Fragment)
	}
	return q
}

func tokenError(err error) string {
	var re *oauth2.RetrieveError
	if ok := asRetrieve(err, &re); ok {
		return re.ErrorCode
	}
	return ""
}

func asRetrieve(err error, target **oauth2.RetrieveError) bool {
	re, ok := err.(*oauth2.RetrieveError)
	if ok {
		*target = re
	}
	return ok
}

func TestOAuthCodeGrantWithPKCE(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("alice", "pw-alice-1")
	clientID := env.registerClient(t, nil)
	cfg := env.oauthConfig(clientID, 40123, "ALICEPHONE")
	ctx := context.Background()

	meta := env.do("GET", "/_matrix/client/v1/auth_metadata", "").expect(t, 200, "")
	if meta.str("issuer") != env.base+"/" || meta.str("token_endpoint") != cfg.Endpoint.TokenURL ||
		!strings.Contains(meta.Raw, `"code_challenge_methods_supported":["S256"]`) || !strings.Contains(meta.Raw, `"prompt_values_supported":["create"]`) ||
		meta.str("account_management_uri") != env.base+"/_registrar/account" ||
		!strings.Contains(meta.Raw, `"org.matrix.device_delete"`) {
		t.Fatalf("metadata %s", meta.Raw)
	}
	if oidc := env.do("GET", "/.well-known/openid-configuration", "").expect(t, 200, ""); oidc.str("jwks_uri") == "" {
		t.Fatalf("openid configuration %s", oidc.Raw)
	}

	verifier := oauth2.GenerateVerifier()
	b := env.browser(t)
	params := b.authorize(cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier)), "alice", "pw-alice-1")
	if params.Get("state") != "state-1" || params.Get("code") == "" {
		t.Fatalf("callback %v", params)
	}
	tok, err := cfg.Exchange(ctx, params.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.Extra("scope") != "urn:matrix:client:api:* urn:matrix:client:device:ALICEPHONE" ||
		tok.Expiry.IsZero() {
		t.Fatalf("token %+v scope %v", tok, tok.Extra("scope"))
	}
	who := env.do("GET", whoamiURL, "", bearer(tok.AccessToken)...).expect(t, 200, "")
	if who.str("user_id") != "@alice:example.org" || who.str("device_id") != "ALICEPHONE" {
		t.Fatalf("whoami %s", who.Raw)
	}

	// The code works once; a replay revokes what it gave.
	_, err = cfg.Exchange(ctx, params.Get("code"), oauth2.VerifierOption(verifier))
	if tokenError(err) != "invalid_grant" {
		t.Fatalf("replay: %v", err)
	}
	env.do("GET", whoamiURL, "", bearer(tok.AccessToken)...).expect(t, 401, "M_UNKNOWN_TOKEN")

	// The consent is remembered: a second login goes straight back.
	cfg2 := env.oauthConfig(clientID, 40124, "ALICELAPTOP")
	params = b.authorize(cfg2.AuthCodeURL("state-2", oauth2.S256ChallengeOption(verifier)), "alice", "pw-alice-1")
	tok, err = cfg2.Exchange(ctx, params.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}

	// Refresh rotates; the old refresh token is reuse once the new pair is used.
	old := tok.RefreshToken
	refreshed, err := cfg2.TokenSource(ctx, &oauth2.Token{RefreshToken: old}).Token()
	if err != nil || refreshed.RefreshToken == old {
		t.Fatalf("refresh %+v %v", refreshed, err)
	}
	env.do("GET", whoamiURL, "", bearer(refreshed.AccessToken)...).expect(t, 200, "")
	if _, err := cfg2.TokenSource(ctx, &oauth2.Token{RefreshToken: old}).Token(); tokenError(err) != "invalid_grant" {
		t.Fatalf("reuse: %v", err)
	}
	env.do("GET", whoamiURL, "", bearer(refreshed.AccessToken)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	// Another client cannot use a refresh token.
	params = b.authorize(cfg2.AuthCodeURL("state-3", oauth2.S256ChallengeOption(verifier)), "alice", "pw-alice-1")
	tok, _ = cfg2.Exchange(ctx, params.Get("code"), oauth2.VerifierOption(verifier))
	other := env.oauthConfig(env.registerClient(t, map[string]any{"client_name": "Other"}), 1, "X")
	if _, err := other.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); tokenError(err) != "invalid_grant" {
		t.Fatalf("another client's refresh token: %v", err)
	}

	// Revocation logs the device out; revoking again is fine.
	for i := 0; i < 2; i++ {
		resp, err := http.PostForm(env.base+"/_registrar/oauth2/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {clientID}})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("revoke: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	env.do("GET", whoamiURL, "", bearer(tok.AccessToken)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	if _, err := cfg2.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); tokenError(err) != "invalid_grant" {
		t.Fatalf("refresh after revocation: %v", err)
	}
}

func TestOAuthDeviceGrant(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("dee", "pw-dee-1")
	clientID := env.registerClient(t, nil)
	cfg := env.oauthConfig(clientID, 0, "TVSET")
	ctx := context.Background()

	auth, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if auth.UserCode == "" || !strings.HasPrefix(auth.VerificationURIComplete, env.base+"/_registrar/device?user_code=") {
		t.Fatalf("device authorization %+v", auth)
	}
	// Polling before the user acts: pending.
	resp, err := http.PostForm(cfg.Endpoint.TokenURL, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {auth.DeviceCode}, "client_id": {clientID}})
	if err != nil {
		t.Fatal(err)
	}
	var pending map[string]any
	json.NewDecoder(resp.Body).Decode(&pending)
	resp.Body.Close()
	if pending["error"] != "authorization_pending" {
		t.Fatalf("first poll %v", pending)
	}

	b := env.browser(t)
	p := b.get(auth.VerificationURIComplete)
	p = b.post(env.base+"/_registrar/device", url.Values{"user_code": {strings.ToLower(auth.UserCode)}, "csrf": {p.csrf(t)}})
	p = b.signIn(p, "dee", "pw-dee-1")
	if !strings.Contains(p.body, "Allow this device?") || !strings.Contains(p.body, "TVSET") {
		t.Fatalf("device consent %d %s", p.status, p.body)
	}
	p = b.post(p.url, url.Values{"action": {"allow"}, "csrf": {p.csrf(t)}})
	if !strings.Contains(p.body, "Device allowed") {
		t.Fatalf("after allow %d %s", p.status, p.body)
	}
	tok, err := cfg.DeviceAccessToken(ctx, auth)
	if err != nil {
		t.Fatal(err)
	}
	who := env.do("GET", whoamiURL, "", bearer(tok.AccessToken)...).expect(t, 200, "")
	if who.str("user_id") != "@dee:example.org" || who.str("device_id") != "TVSET" || tok.RefreshToken == "" {
		t.Fatalf("whoami %s", who.Raw)
	}
	// The device code is spent.
	if _, err := cfg.DeviceAccessToken(ctx, auth); err == nil {
		t.Fatal("a device code worked twice")
	}
}

func TestOAuthClientRegistrationRules(t *testing.T) {
	env := newOAuthEnv(t)
	valid := map[string]any{"client_uri": "https://example.com/", "redirect_uris": []string{"https://app.example.com/callback"}}
	with := func(changes map[string]any) string {
		m := map[string]any{}
		for k, v := range valid {
			m[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return jsonBody(m)
	}
	cases := []struct {
		name    string
		body    string
		status  int
		errCode string
	}{
		{"valid web client", with(nil), 201, ""},
		{"no client_uri", with(map[string]any{"client_uri": nil}), 400, "invalid_client_metadata"},
		{"http client_uri", with(map[string]any{"client_uri": "http://example.com/"}), 400, "invalid_client_metadata"},
		{"client_uri with user info", with(map[string]any{"client_uri": "https://u:p@example.com/"}), 400, "invalid_client_metadata"},
		{"web client with http redirect", with(map[string]any{"redirect_uris": []string{"http://example.com/callback"}}), 400, "invalid_redirect_uri"},
		{"web redirect on another host", with(map[string]any{"redirect_uris": []string{"https://evil.example.net/cb"}}), 400, "invalid_redirect_uri"},
		{"redirect with a fragment", with(map[string]any{"redirect_uris": []string{"https://example.com/cb#x"}}), 400, "invalid_redirect_uri"},
		{"web redirect on a subdomain with a port and query", with(map[string]any{"redirect_uris": []string{"https://example.com:5173/?query=value"}}), 201, ""},
		{"native private-use scheme", with(map[string]any{"application_type": "native", "redirect_uris": []string{"com.example.app:/callback", "com.example:callback"}}), 201, ""},
		{"native loopback", with(map[string]any{"application_type": "native", "redirect_uris": []string{"http://localhost/callback", "http://[::1]/callback"}}), 201, ""},
		{"native scheme not matching client_uri", with(map[string]any{"application_type": "native", "redirect_uris": []string{"example:/callback"}}), 400, "invalid_redirect_uri"},
		{"native scheme with an authority", with(map[string]any{"application_type": "native", "redirect_uris": []string{"com.example.app://callback"}}), 400, "invalid_redirect_uri"},
		{"native https localhost", with(map[string]any{"application_type": "native", "redirect_uris": []string{"https://localhost/callback"}}), 400, "invalid_redirect_uri"},
		{"native loopback with a port", with(map[string]any{"application_type": "native", "redirect_uris": []string{"http://localhost:1234/callback"}}), 400, "invalid_redirect_uri"},
		{"no redirect uris for the code grant", with(map[string]any{"redirect_uris": nil}), 400, "invalid_redirect_uri"},
		{"device-only client needs none", with(map[string]any{"redirect_uris": nil, "grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"}}), 201, ""},
		{"confidential client", with(map[string]any{"token_endpoint_auth_method": "client_secret_basic"}), 400, "invalid_client_metadata"},
		{"unknown application type", with(map[string]any{"application_type": "desktop"}), 400, "invalid_client_metadata"},
		{"implicit response type", with(map[string]any{"response_types": []string{"token"}}), 400, "invalid_client_metadata"},
		{"logo on another host", with(map[string]any{"logo_uri": "https://cdn.example.net/logo.png"}), 400, "invalid_client_metadata"},
		{"localized policy on another host", with(map[string]any{"policy_uri#fr": "https://evil.example.net/"}), 400, "invalid_client_metadata"},
		{"redirect_uris not an array", with(map[string]any{"redirect_uris": "https://example.com/cb"}), 400, "invalid_client_metadata"},
		{"not JSON", `{client_uri`, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.do("POST", "/_registrar/oauth2/register", tc.body)
			if r.Status != tc.status || r.str("error") != tc.errCode {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, tc.status, tc.errCode)
			}
			if tc.status == 400 && r.str("error_description") == "" {
				t.Fatalf("no error_description: %s", r.Raw)
			}
		})
	}
	// Unsupported grant types are left out of the registration; identical
	// metadata shares a client.
	a := env.do("POST", "/_registrar/oauth2/register", with(map[string]any{"grant_types": []string{"authorization_code",
		"urn:ietf:params:oauth:grant-type:token-exchange"}})).expect(t, 201, "")
	b := env.do("POST", "/_registrar/oauth2/register", with(map[string]any{"grant_types": []string{"authorization_code"}})).expect(t, 201, "")
	if strings.Contains(a.Raw, "token-exchange") || a.str("client_id") != b.str("client_id") {
		t.Fatalf("registrations %s %s", a.Raw, b.Raw)
	}
}

func TestOAuthAuthorizationRefusals(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("ann", "pw-ann-1")
	clientID := env.registerClient(t, nil)
	cfg := env.oauthConfig(clientID, 50000, "ANNDEVICE")
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	challenge := oauth2.S256ChallengeOption(verifier)
	b := env.browser(t)

	// Errors before the redirect URI is known to be the client's are not
	// redirected.
	unregistered := *cfg
	unregistered.RedirectURL = "http://127.0.0.1:50000/elsewhere"
	if p := b.get(unregistered.AuthCodeURL("s", challenge)); p.status != 400 || p.location != "" || !strings.Contains(p.body, "invalid_request") {
		t.Fatalf("unregistered redirect URI: %d %q %s", p.status, p.location, p.body)
	}
	unknown := *cfg
	unknown.ClientID = "NOSUCHCLIENT"
	if p := b.get(unknown.AuthCodeURL("s", challenge)); p.location != "" || !strings.Contains(p.body, "invalid_client") {
		t.Fatalf("unknown client: %d %q %s", p.status, p.location, p.body)
	}
	// Errors after it go back to the client with the state.
	redirected := []struct {
		name, url, errCode string
	}{
		{"no PKCE", cfg.AuthCodeURL("s1"), "invalid_request"},
		{"plain PKCE", cfg.AuthCodeURL("s2", oauth2.SetAuthURLParam("code_challenge", verifier),
			oauth2.SetAuthURLParam("code_challenge_method", "plain")), "invalid_request"},
		{"no device scope", strings.Replace(cfg.AuthCodeURL("s3", challenge), "+urn%3Amatrix%3Aclient%3Adevice%3AANNDEVICE", "", 1), "invalid_scope"},
		{"two device scopes", cfg.AuthCodeURL("s4", challenge, oauth2.SetAuthURLParam("scope",
			"urn:matrix:client:api:* urn:matrix:client:device:A urn:matrix:client:device:B")), "invalid_scope"},
		{"no api scope", cfg.AuthCodeURL("s5", challenge, oauth2.SetAuthURLParam("scope", "urn:matrix:client:device:A")), "invalid_scope"},
		{"token response type", cfg.AuthCodeURL("s6", challenge, oauth2.SetAuthURLParam("response_type", "token")), "unauthorized_client"},
	}
	for _, tc := range redirected {
		p := b.get(tc.url)
		params := callbackParams(t, p.location)
		if p.status != 302 || params.Get("error") != tc.errCode || params.Get("state") == "" {
			t.Fatalf("%s: %d %q", tc.name, p.status, p.location)
		}
	}

	// Wrong and missing verifiers, then an expired code.
	params := b.authorize(cfg.AuthCodeURL("ok", challenge), "ann", "pw-ann-1")
	if _, err := cfg.Exchange(ctx, params.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); tokenError(err) != "invalid_grant" {
		t.Fatalf("wrong verifier: %v", err)
	}
	if _, err := cfg.Exchange(ctx, params.Get("code")); tokenError(err) != "invalid_request" {
		t.Fatalf("missing verifier: %v", err)
	}
	other := *cfg
	other.RedirectURL = "http://127.0.0.1:50001/callback"
	if _, err := other.Exchange(ctx, params.Get("code"), oauth2.VerifierOption(verifier)); tokenError(err) != "invalid_grant" {
		t.Fatalf("another redirect_uri: %v", err)
	}
	env.clock.Advance(11 * time.Minute)
	if _, err := cfg.Exchange(ctx, params.Get("code"), oauth2.VerifierOption(verifier)); tokenError(err) != "invalid_grant" {
		t.Fatalf("expired code: %v", err)
	}

	// A device ID another user holds is refused.
	env.register("bob", "pw-bob-1", map[string]any{"device_id": "BOBSDEVICE"})
	bobs := env.oauthConfig(clientID, 50000, "BOBSDEVICE")
	params = env.browser(t).authorize(bobs.AuthCodeURL("taken", challenge), "ann", "pw-ann-1")
	if params.Get("error") != "invalid_scope" || params.Get("state") != "taken" {
		t.Fatalf("another user's device: %v", params)
	}

	// Denying goes back with access_denied (another client: ann's consent
	// to the first one is remembered).
	second := env.registerClient(t, map[string]any{"client_name": "Second"})
	b2 := env.browser(t)
	p := b2.signIn(b2.get(env.oauthConfig(second, 50000, "DENIED").AuthCodeURL("d", challenge)), "ann", "pw-ann-1")
	p = b2.post(p.url, url.Values{"action": {"deny"}, "csrf": {p.csrf(t)}})
	if params := callbackParams(t, p.location); params.Get("error") != "access_denied" || params.Get("state") != "d" {
		t.Fatalf("deny: %q", p.location)
	}
	// The fragment response mode.
	p = b2.get(env.oauthConfig(second, 50000, "FRAG").AuthCodeURL("f", challenge, oauth2.SetAuthURLParam("response_mode", "fragment")))
	p = b2.post(p.url, url.Values{"action": {"allow"}, "csrf": {p.csrf(t)}})
	if u, _ := url.Parse(p.location); u == nil || u.RawQuery != "" || !strings.Contains(u.Fragment, "code=") {
		t.Fatalf("fragment mode: %q", p.location)
	}
}

func TestOAuthSignInRules(t *testing.T) {
	env := newOAuthEnv(t, func(c *config.Config) { c.RequireApprovalForNewAccounts = true })
	admin := env.adminToken("root")
	for _, name := range []string{"locked", "gone", "fine"} {
		env.do("PUT", adminV2Users+"@"+name+":example.org", `{"password":"pw-`+name+`-1"}`, bearer(admin)...).expect(t, 201, "")
	}
	env.register("waiting", "pw-waiting-1").expect(t, 403, "M_USER_AWAITING_APPROVAL")
	env.do("PUT", lockURL+"@locked:example.org", `{"locked":true}`, bearer(admin)...).expect(t, 200, "")
	env.do("POST", "/_synapse/admin/v1/deactivate/@gone:example.org", `{}`, bearer(admin)...).expect(t, 200, "")
	cases := []struct{ user, password, want string }{
		{"locked", "pw-locked-1", "This account has been locked."},
		{"gone", "pw-gone-1", "This account has been deactivated."},
		{"waiting", "pw-waiting-1", "waiting for a server administrator"},
		{"fine", "wrong", "Wrong username or password."},
		{"nobody", "pw", "Wrong username or password."},
		{"<script>alert(1)</script>", "pw", "Wrong username or password."},
	}
	for _, tc := range cases {
		b := env.browser(t)
		p := b.signIn(b.get(env.base+"/_registrar/login"), tc.user, tc.password)
		if p.status < 400 || !strings.Contains(p.body, tc.want) {
			t.Fatalf("%s: %d %s", tc.user, p.status, p.body)
		}
		if strings.Contains(p.body, "<script>") {
			t.Fatalf("an echoed value is not escaped: %s", p.body)
		}
		if b.client.Jar.Cookies(mustURL(env.base + "/_registrar/"))[0].Name == "registrar_session" {
			t.Fatalf("%s got a session", tc.user)
		}
	}
	b := env.browser(t)
	p := b.signIn(b.get(env.base+"/_registrar/login"), "fine", "pw-fine-1")
	if p.status != 200 || !strings.Contains(p.body, `id="user">@fine:example.org`) {
		t.Fatalf("signed in: %d %s", p.status, p.body)
	}
	// Every page sends the security headers; the policy allows no inline
	// script or style but by hash.
	csp := p.header.Get("Content-Security-Policy")
	if strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") ||
		p.header.Get("X-Frame-Options") != "DENY" || p.header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("headers %v", p.header)
	}
	for _, c := range b.client.Jar.Cookies(mustURL(env.base + "/_registrar/")) {
		if c.Name == "registrar_session" && c.Value != "" {
			goto signedIn
		}
	}
	t.Fatal("no session cookie")
signedIn:
	// Locking the account ends what its browser session may do.
	env.do("PUT", lockURL+"@fine:example.org", `{"locked":true}`, bearer(admin)...).expect(t, 200, "")
	if p := b.get(env.base + "/_registrar/login"); !strings.Contains(p.body, `id="password"`) {
		t.Fatalf("a locked account's session still counts: %s", p.body)
	}
}

func mustURL(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	return u
}

func TestOAuthFormsNeedTheirCSRFToken(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("cat", "pw-cat-1")
	clientID := env.registerClient(t, nil)
	b := env.browser(t)
	verifier := oauth2.GenerateVerifier()
	consent := b.signIn(b.get(env.oauthConfig(clientID, 1, "CATDEVICE").AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))), "cat", "pw-cat-1")
	if !strings.Contains(consent.body, `id="allow"`) {
		t.Fatalf("consent %s", consent.body)
	}
	forms := []struct {
		path string
		form url.Values
	}{
		{"/_registrar/login", url.Values{"username": {"cat"}, "password": {"pw-cat-1"}}},
		{"/_registrar/logout", url.Values{}},
		{strings.TrimPrefix(consent.url, env.base), url.Values{"action": {"allow"}}},
		{"/_registrar/device", url.Values{"user_code": {"BCDF-GHJK"}}},
		{"/_registrar/signup", url.Values{"step": {"form"}, "username": {"someone"}, "password": {"pw-1"}, "password_confirm": {"pw-1"}}},
		{"/_registrar/account/password", url.Values{"current_password": {"pw-cat-1"}, "new_password": {"x"}, "new_password_confirm": {"x"}}},
		{"/_registrar/account/threepid/add", url.Values{"medium": {"email"}, "address": {"cat@example.org"}}},
		{"/_registrar/account/threepid/verify", url.Values{"medium": {"email"}, "sid": {"x"}, "client_secret": {"y"}, "code": {"z"}}},
		{"/_registrar/account/threepid/remove", url.Values{"medium": {"email"}, "address": {"cat@example.org"}}},
		{"/_registrar/account/device/delete", url.Values{"device_id": {"CATDEVICE"}}},
		{"/_registrar/account/deactivate", url.Values{"password": {"pw-cat-1"}, "confirm": {"yes"}}},
	}
	for _, f := range forms {
		for _, token := range []string{"", "forged"} {
			form := url.Values{}
			for k, v := range f.form {
				form[k] = v
			}
			if token != "" {
				form.Set("csrf", token)
			}
			if p := b.post(env.base+f.path, form); p.status != 403 || !strings.Contains(p.body, "Please try again") {
				t.Fatalf("%s without a valid CSRF token: %d %s", f.path, p.status, p.body)
			}
		}
	}
	// Another browser's token does not fit this browser's cookie.
	other := env.browser(t)
	foreign := other.get(env.base + "/_registrar/login").csrf(t)
	if p := b.post(consent.url, url.Values{"action": {"allow"}, "csrf": {foreign}}); p.status != 403 {
		t.Fatalf("a foreign CSRF token: %d", p.status)
	}
	// Nothing was decided: the consent page is still there; the account
	// and its sessions are as they were.
	if p := b.get(consent.url); !strings.Contains(p.body, `id="allow"`) {
		t.Fatalf("consent after refused forms: %s", p.body)
	}
	env.do("POST", loginURL, loginBody("cat", "pw-cat-1")).expect(t, 200, "")
}

func TestOAuthTokensWorkEverywhereAndLogOut(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("eve", "pw-eve-1")
	clientID := env.registerClient(t, nil)
	cfg := env.oauthConfig(clientID, 1, "EVEDEVICE")
	verifier := oauth2.GenerateVerifier()
	params := env.browser(t).authorize(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "eve", "pw-eve-1")
	tok, err := cfg.Exchange(context.Background(), params.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	devices := env.do("GET", "/_matrix/client/v3/devices", "", bearer(tok.AccessToken)...).expect(t, 200, "")
	if !strings.Contains(devices.Raw, `"EVEDEVICE"`) {
		t.Fatalf("devices %s", devices.Raw)
	}
	env.do("GET", "/_matrix/client/v3/account/3pid", "", bearer(tok.AccessToken)...).expect(t, 200, "")
	env.do("POST", "/_matrix/client/v3/logout", "", bearer(tok.AccessToken)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(tok.AccessToken)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	if _, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); tokenError(err) != "invalid_grant" {
		t.Fatalf("refresh after logout: %v", err)
	}
}

func TestOAuthOff(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.OAuth.Enabled = false })
	for _, req := range []struct{ method, path string }{
		{"GET", "/_matrix/client/v1/auth_metadata"}, {"GET", "/.well-known/openid-configuration"},
		{"GET", "/_registrar/oauth2/keys"}, {"GET", "/_registrar/login"}, {"GET", "/_registrar/oauth2/authorize?client_id=x"},
	} {
		env.do(req.method, req.path, "").expect(t, 404, "M_UNRECOGNIZED")
	}
}

func TestLegacyAuthOff(t *testing.T) {
	dir := t.TempDir()
	reg := writeAppService(t, dir, "bridge", "as-token-1", "@bridge_.*:example.org")
	env := newOAuthEnv(t, func(c *config.Config) {
		c.OAuth.LegacyAPI = false
		c.AppServiceConfigFiles = []string{reg}
	})
	a, err := impl.NewAdmin(env.cfg, env.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Accounts.Create(context.Background(), accounts.NewAccount{Source: accounts.SourceOperator, Localpart: "root",
		Password: ptr("pw-root-admin")}); err != nil {
		t.Fatal(err)
	}
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/_matrix/client/v3/login", ""},
		{"POST", "/_matrix/client/v3/login", loginBody("root", "pw-root-admin")},
		{"POST", "/_matrix/client/r0/login", loginBody("root", "pw-root-admin")},
		{"POST", "/_matrix/client/v3/register", `{"username":"x","password":"pw-x-1","auth":{"type":"m.login.dummy"}}`},
		{"POST", "/_matrix/client/v3/register?kind=guest", `{}`},
		{"POST", "/_matrix/client/v3/refresh", `{"refresh_token":"x"}`},
		{"POST", "/_matrix/client/v3/account/password", `{"new_password":"x"}`},
		{"POST", "/_matrix/client/v3/account/deactivate", `{}`},
		{"POST", "/_matrix/client/v3/register/email/requestToken", `{"client_secret":"s","email":"a@example.org","send_attempt":1}`},
		{"POST", "/_matrix/client/v3/delete_devices", `{"devices":[]}`},
	} {
		env.do(req.method, req.path, req.body).expect(t, 404, "M_UNRECOGNIZED")
	}
	// Application services still register their users; the OAuth 2.0 API works.
	env.do("POST", registerURL, `{"type":"m.login.application_service","username":"bridge_a","inhibit_login":true}`,
		bearer("as-token-1")...).expect(t, 200, "")
	token := env.oauthToken(t, "root", "pw-root-admin")
	r := env.do("GET", "/_matrix/client/v3/capabilities", "", bearer(token)...).expect(t, 200, "")
	if caps := r.Body["capabilities"].(map[string]any); caps["m.change_password"].(map[string]any)["enabled"] != false {
		t.Fatalf("capabilities %s", r.Raw)
	}
}

// oauthToken signs the user in through the code grant and returns the
// access token.
func (e *oauthEnv) oauthToken(t *testing.T, user, password string) string {
	t.Helper()
	cfg := e.oauthConfig(e.registerClient(t, nil), 1, "DEV"+strings.ToUpper(user))
	verifier := oauth2.GenerateVerifier()
	params := e.browser(t).authorize(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), user, password)
	tok, err := cfg.Exchange(context.Background(), params.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func TestOAuthDeviceGrantPollingAnswers(t *testing.T) {
	env := newOAuthEnv(t, func(c *config.Config) {
		c.OAuth.RcDeviceAuthorization = ratelimit.Rate{PerSecond: 0.0001, BurstCount: 3}
		c.OAuth.RcUserCode = ratelimit.Rate{PerSecond: 0.001, BurstCount: 2}
	})
	env.register("pol", "pw-pol-1")
	clientID := env.registerClient(t, nil)
	poll := func(deviceCode string) string {
		t.Helper()
		resp, err := http.PostForm(env.base+"/_registrar/oauth2/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {deviceCode}, "client_id": {clientID}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		if e, ok := body["error"].(string); ok {
			return e
		}
		return "tokens"
	}
	start := func() map[string]any {
		t.Helper()
		resp, err := http.PostForm(env.base+"/_registrar/oauth2/device_authorization", url.Values{"client_id": {clientID},
			"scope": {"urn:matrix:client:api:* urn:matrix:client:device:POLLED"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return body
	}
	a := start()
	if got := poll(a["device_code"].(string)); got != "authorization_pending" {
		t.Fatalf("first poll %s", got)
	}
	if got := poll(a["device_code"].(string)); got != "slow_down" {
		t.Fatalf("an immediate second poll %s", got)
	}
	env.clock.Advance(31 * time.Minute)
	if got := poll(a["device_code"].(string)); got != "expired_token" {
		t.Fatalf("after expiry %s", got)
	}
	// Denied.
	b := start()
	br := env.browser(t)
	p := br.get(b["verification_uri_complete"].(string))
	p = br.post(env.base+"/_registrar/device", url.Values{"user_code": {b["user_code"].(string)}, "csrf": {p.csrf(t)}})
	p = br.signIn(p, "pol", "pw-pol-1")
	br.post(p.url, url.Values{"action": {"deny"}, "csrf": {p.csrf(t)}})
	if got := poll(b["device_code"].(string)); got != "access_denied" {
		t.Fatalf("after deny %s", got)
	}
	if got := poll("not-a-device-code"); got != "invalid_grant" {
		t.Fatalf("unknown device code %s", got)
	}
	// Device authorisations and wrong user codes are rate limited.
	start()
	if r := start(); r["error"] != "slow_down" {
		t.Fatalf("fourth device authorisation %v", r)
	}
	for i, want := range []int{400, 400, 429} {
		p := br.get(env.base + "/_registrar/device")
		if got := br.post(env.base+"/_registrar/device", url.Values{"user_code": {"ZZZZ-ZZZZ"}, "csrf": {p.csrf(t)}}); got.status != want {
			t.Fatalf("wrong code %d: %d", i, got.status)
		}
	}
}
