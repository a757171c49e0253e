package impl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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

	"registrar/impl/config"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
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
		!strings.Contains(meta.Raw, `"code_challenge_methods_supported":["S256"]`) {
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
