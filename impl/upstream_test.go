package impl_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"registrar/db"
	"registrar/impl/config"
)

// testOP is an OpenID Provider of its own, zitadel/oidc's example
// provider (its own login page, code flow with PKCE, discovery, keys,
// userinfo), running beside the server: not registrar talking to itself.
type testOP struct {
	issuer  string
	storage *storage.Storage
	clients map[string]*storage.Client
	srv     *httptest.Server
}

// opUsers are the provider's people: alice and bob verified, mallory not,
// and "taken", whose name an account here has already.
const opUsers = `{
 "alice": {"ID": "alice", "Username": "alice", "Password": "op-alice-pw", "FirstName": "Alice", "LastName": "Liddell",
  "Email": "alice@idp.example", "EmailVerified": true, "PreferredLanguage": "en"},
 "bob": {"ID": "bob", "Username": "bob", "Password": "op-bob-pw", "FirstName": "Bob", "LastName": "Builder",
  "Email": "bob@idp.example", "EmailVerified": true, "PreferredLanguage": "en"},
 "mallory": {"ID": "mallory", "Username": "mallory", "Password": "op-mallory-pw", "FirstName": "Mallory", "LastName": "M",
  "Email": "mallory@idp.example", "EmailVerified": false, "PreferredLanguage": "en"},
 "administrator": {"ID": "administrator", "Username": "administrator", "Password": "op-admin-pw", "FirstName": "Ad", "LastName": "Min",
  "Email": "admin@idp.example", "EmailVerified": true, "PreferredLanguage": "en"},
 "taken-sub": {"ID": "taken-sub", "Username": "taken", "Password": "op-taken-pw", "FirstName": "Tak", "LastName": "En",
  "Email": "taken@idp.example", "EmailVerified": true, "PreferredLanguage": "en"}
}`

func newTestOP(t *testing.T) *testOP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	path := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(path, []byte(opUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := storage.StoreFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	op := &testOP{issuer: issuer, clients: map[string]*storage.Client{}}
	op.storage = storage.NewStorageWithClients(users, op.clients)
	op.srv = httptest.NewUnstartedServer(exampleop.SetupServer(issuer, op.storage, nil, false))
	op.srv.Listener.Close()
	op.srv.Listener = ln
	op.srv.Start()
	t.Cleanup(op.srv.Close)
	return op
}

// client registers registrar at the provider under clientID.
func (o *testOP) client(clientID, callback string) {
	o.clients[clientID] = storage.WebClient(clientID, "secret-"+clientID, callback)
}

// logoutToken is a back-channel logout token the provider signs.
func (o *testOP) logoutToken(t *testing.T, clientID, subject, sid string) string {
	t.Helper()
	key, err := o.storage.SigningKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.SignatureAlgorithm(), Key: key.Key()},
		(&jose.SignerOptions{}).WithType("logout+jwt").WithHeader("kid", key.ID()))
	if err != nil {
		t.Fatal(err)
	}
	claims := oidc.NewLogoutTokenClaims(o.issuer, subject, oidc.Audience{clientID}, time.Now().Add(time.Minute), "jti-"+subject, sid, 0)
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// upstreamConfig signs in with the test provider as "test", and again as
// "linking", which links a first sign-in to the existing account of its
// name; a third provider is down.
func upstreamConfig(op *testOP) func(*config.Config) {
	return func(c *config.Config) {
		mapping := config.UserMappingProvider{Config: config.UserMapping{LocalpartTemplate: "{{ user.preferred_username }}",
			DisplayNameTemplate: "{{ user.name }}", EmailTemplate: "{{ user.email }}"}}
		c.OIDCProviders = []config.OIDCProvider{
			{IdpID: "test", IdpName: "Test ID", Issuer: op.issuer, ClientID: "registrar", ClientSecret: "secret-registrar",
				Scopes: []string{"openid", "profile", "email"}, UserProfileMethod: "userinfo_endpoint", UserMappingProvider: mapping,
				BackchannelLogoutEnabled: true,
				AttributeRequirements:    []config.AttributeRequirement{{Attribute: "email_verified", Value: "true"}}},
			{IdpID: "linking", IdpName: "Linking ID", Issuer: op.issuer, ClientID: "registrar-linking", ClientSecret: "secret-registrar-linking",
				Scopes: []string{"openid", "profile", "email"}, UserProfileMethod: "userinfo_endpoint", UserMappingProvider: mapping,
				AllowExistingUsers: true},
			{IdpID: "down", IdpName: "Down ID", Issuer: "http://127.0.0.1:1", ClientID: "x", ClientSecret: "y"},
		}
	}
}

// opSignIn signs in at the provider's own page.
func opSignIn(user, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.WaitVisible(chromedp.CSS(`form[action="/login/username"]`)),
		chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/login/username"] button[type=submit]`)))
}

// atProviderOr waits for the provider's sign-in form or registrar's
// element sel, whichever the browser comes to.
func atProviderOr(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(`form[action="/login/username"], ` + sel))
}

// TestSignInWithAnOpenIDProvider drives every flow through the pages in
// Chromium against a real provider: a first sign-in makes the account
// (with the mapped name, display name and address), the next signs into
// it; a taken name asks for another; the attribute requirements refuse;
// a provider that is down says so and writes nothing; linking to the
// existing account of a name only where allowed; linking and unlinking on
// the account page (never the last way in); back-channel logout ends
// the browser's session.
func TestSignInWithAnOpenIDProvider(t *testing.T) {
	op := newTestOP(t)
	env := newOAuthEnv(t, upstreamConfig(op))
	op.client("registrar", env.base+"/_registrar/upstream/callback")
	op.client("registrar-linking", env.base+"/_registrar/upstream/callback")
	operatorAccount(t, env.testEnv, "taken")
	ctx := browserCtx(t)
	run := browserSteps(t, ctx)
	text := func(id string) string {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("#%s: %v", id, err)
		}
		return got
	}
	signOut := func() {
		run("sign out", chromedp.Navigate(env.base+"/_registrar/account"), chromedp.WaitVisible(chromedp.ID("signout")),
			chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("username")))
	}
	store := env.store

	// A first sign-in makes the account.
	run("first sign-in", chromedp.Navigate(env.base+"/_registrar/login"), chromedp.WaitVisible(chromedp.ID("provider-oidc-test")),
		chromedp.Click(chromedp.ID("provider-oidc-test")), opSignIn("alice", "op-alice-pw"), chromedp.WaitVisible(chromedp.ID("user")))
	if got := text("user"); got != "@alice:example.org" {
		t.Fatalf("signed in as %q", got)
	}
	acct, err := store.AccountByUserID(context.Background(), "@alice:example.org")
	if err != nil || acct.DisplayName != "Alice Liddell" || acct.PasswordHash != "" {
		t.Fatalf("the account %+v %v", acct, err)
	}
	if ids, _ := store.ExternalIDs(context.Background(), acct.UserID); len(ids) != 1 || ids[0].AuthProvider != "oidc-test" || ids[0].ExternalID != "alice" {
		t.Fatalf("external IDs %+v", ids)
	}
	if tps, _ := store.Threepids(context.Background(), acct.UserID); len(tps) != 1 || tps[0].Address != "alice@idp.example" {
		t.Fatalf("addresses %+v", tps)
	}
	// The only way in cannot be unlinked.
	run("unlink the last way in", chromedp.Navigate(env.base+"/_registrar/account"), chromedp.WaitVisible(chromedp.ID("unlink-oidc-test")),
		chromedp.Click(chromedp.ID("unlink-oidc-test")), chromedp.WaitVisible(chromedp.ID("error")))
	if !strings.Contains(text("error"), "only way to sign in") {
		t.Fatalf("unlinking the last way in: %q", text("error"))
	}
	// Back-channel logout ends the browser's session.
	resp, err := http.PostForm(env.base+"/_registrar/upstream/oidc-test/backchannel_logout",
		url.Values{"logout_token": {op.logoutToken(t, "registrar", "alice", "")}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("back-channel logout: %v %v", resp, err)
	}
	resp.Body.Close()
	run("after the provider's logout", chromedp.Navigate(env.base+"/_registrar/account"), chromedp.WaitVisible(chromedp.ID("username")))
	forged := op.logoutToken(t, "someone-else", "alice", "")
	if r := env.do("POST", "/_registrar/upstream/oidc-test/backchannel_logout", "logout_token="+forged,
		"Content-Type", "application/x-www-form-urlencoded"); r.Status != 400 {
		t.Fatalf("a token for another client: %d %s", r.Status, r.Raw)
	}

	// The next sign-in signs into the same account (the provider still
	// remembers the person: no password asked).
	run("sign in again", chromedp.Navigate(env.base+"/_registrar/login"), chromedp.WaitVisible(chromedp.ID("provider-oidc-test")),
		chromedp.Click(chromedp.ID("provider-oidc-test")), atProviderOr("#user"))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.Contains(loc, "/login/username") {
		run("the provider asks again", opSignIn("alice", "op-alice-pw"))
	}
	run("signed in again", chromedp.WaitVisible(chromedp.ID("user")))
	if n, _ := store.CountAccounts(context.Background()); n != 2 {
		t.Fatalf("%d accounts, want alice and taken", n)
	}
	signOut()

	// The attribute requirements refuse mallory; nothing is written.
	run("a refused person", chromedp.Navigate(env.base+"/_registrar/upstream/oidc-test/authorize"), opSignIn("mallory", "op-mallory-pw"),
		chromedp.WaitVisible(chromedp.ID("message")))
	if !strings.Contains(text("message"), "may not sign in") {
		t.Fatalf("mallory: %q", text("message"))
	}
	if _, err := store.Account(context.Background(), "mallory"); err == nil {
		t.Fatal("mallory has an account")
	}

	// A provider that is down: a clear page, nothing written.
	run("a provider down", chromedp.Navigate(env.base+"/_registrar/login"), chromedp.Click(chromedp.ID("provider-oidc-down")),
		chromedp.WaitVisible(chromedp.ID("message")))
	if !strings.Contains(text("message"), "could not be reached") {
		t.Fatalf("down: %q", text("message"))
	}
	if code, body := env.page("GET", "/readyz", ""); code != 200 || !strings.Contains(body, "identity provider oidc-down") ||
		strings.Contains(body, "oidc-test") {
		t.Fatalf("readyz %d %s", code, body)
	}

	// A taken name: the person picks another (the linking provider would
	// take the existing account instead; this one does not).
	run("a taken name", chromedp.Navigate(env.base+"/_registrar/upstream/oidc-test/authorize"), opSignIn("taken", "op-taken-pw"),
		chromedp.WaitVisible(chromedp.ID("username-error")))
	if !strings.Contains(text("username-error"), "taken") {
		t.Fatalf("taken: %q", text("username-error"))
	}
	run("another name", chromedp.Clear(chromedp.ID("username")), chromedp.SendKeys(chromedp.ID("username"), "taken2"),
		chromedp.Click(chromedp.ID("submit")), chromedp.WaitVisible(chromedp.ID("user")))
	if got := text("user"); got != "@taken2:example.org" {
		t.Fatalf("signed up as %q", got)
	}
	// The picked name's account has the provider's address too.
	if tps, _ := store.Threepids(context.Background(), "@taken2:example.org"); len(tps) != 1 || tps[0].Address != "taken@idp.example" {
		t.Fatalf("addresses of taken2 %+v", tps)
	}
	signOut()

	// The linking provider links bob's first sign-in to the existing
	// account bob.
	operatorAccount(t, env.testEnv, "bob")
	run("link by name", chromedp.Navigate(env.base+"/_registrar/upstream/oidc-linking/authorize"), atProviderOr("#user"))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.Contains(loc, "/login/username") {
		run("at the provider", opSignIn("bob", "op-bob-pw"))
	}
	run("linked", chromedp.WaitVisible(chromedp.ID("user")))
	if got := text("user"); got != "@bob:example.org" {
		t.Fatalf("linked to %q", got)
	}
	// On the account page bob links the other provider, then unlinks one
	// (bob has a password, so either may go).
	run("link on the account page", chromedp.Navigate(env.base+"/_registrar/account"), chromedp.WaitVisible(chromedp.ID("link-oidc-test")),
		chromedp.Click(chromedp.ID("link-oidc-test")), atProviderOr("#notice"))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.Contains(loc, "/login/username") {
		run("at the provider", opSignIn("bob", "op-bob-pw"))
	}
	run("linked on the account page", chromedp.WaitVisible(chromedp.ID("notice")))
	ids, _ := store.ExternalIDs(context.Background(), "@bob:example.org")
	if len(ids) != 2 {
		t.Fatalf("bob's identities %+v", ids)
	}
	run("unlink", chromedp.Click(chromedp.ID("unlink-oidc-linking")), chromedp.WaitVisible(chromedp.ID("link-oidc-linking")))
	if ids, _ := store.ExternalIDs(context.Background(), "@bob:example.org"); len(ids) != 1 || ids[0].AuthProvider != "oidc-test" {
		t.Fatalf("after unlinking %+v", ids)
	}
	sqlDB, err := store.SQLDB()
	if err != nil {
		t.Fatal(err)
	}
	var left int64
	if err := sqlDB.QueryRow(`SELECT COUNT(*) FROM upstream_sessions WHERE status = '` + db.UpstreamReturned + `'`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d returned sign-ins left (%v)", left, err)
	}
}

// TestUpstreamCallbackRefusals: a state is spent once, in the browser that
// started it; a callback without one, or with another browser's, changes
// nothing.
func TestUpstreamCallbackRefusals(t *testing.T) {
	op := newTestOP(t)
	env := newOAuthEnv(t, upstreamConfig(op))
	op.client("registrar", env.base+"/_registrar/upstream/callback")
	b := env.browser(t)
	p := b.get(env.base + "/_registrar/upstream/oidc-test/authorize")
	if p.status != 303 || !strings.HasPrefix(p.location, op.issuer) {
		t.Fatalf("authorize %d %s", p.status, p.location)
	}
	target, _ := url.Parse(p.location)
	q := target.Query()
	if q.Get("state") == "" || q.Get("nonce") == "" || q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" {
		t.Fatalf("the authorisation request lacks state, nonce or PKCE: %s", p.location)
	}
	// Another browser brings the state back.
	other := env.browser(t)
	if r := other.get(env.base + "/_registrar/upstream/callback?code=x&state=" + url.QueryEscape(q.Get("state"))); r.status != 403 ||
		!strings.Contains(r.body, "another browser") {
		t.Fatalf("another browser: %d %s", r.status, r.body)
	}
	for _, query := range []string{"", "state=unknown&code=x", "state=" + url.QueryEscape(q.Get("state")) + "&error=access_denied"} {
		if r := b.get(env.base + "/_registrar/upstream/callback?" + query); r.status < 400 || r.status >= 500 ||
			!strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("callback ?%s: %d %s", query, r.status, r.body)
		}
	}
	// The refused one ended the sign-in: the same state is now unknown.
	if r := b.get(env.base + "/_registrar/upstream/callback?code=x&state=" + url.QueryEscape(q.Get("state"))); r.status != 404 {
		t.Fatalf("a spent state: %d", r.status)
	}
	if n, _ := env.store.CountAccounts(context.Background()); n != 0 {
		t.Fatalf("%d accounts", n)
	}
}

// newTokenCatcher is a legacy client's redirectUrl: it hands over the
// loginToken each visit brings.
func newTokenCatcher(t *testing.T) (*httptest.Server, <-chan string) {
	tokens := make(chan string, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case tokens <- r.URL.Query().Get("loginToken"):
		default:
		}
		_, _ = w.Write([]byte(`<!DOCTYPE html><title>app</title><p id="app">back in the app</p>`))
	}))
	t.Cleanup(app.Close)
	return app, tokens
}

// jsClientDir holds matrix-js-sdk, pinned (make jsclient installs it).
var jsClientDir = filepath.Join("..", "cmd", "registrar", "testdata", "jsclient")

// runJSFlow runs a scenario of flows.mjs with node and returns what it
// printed; it skips (fails under CI=1) without node or the SDK.
func runJSFlow(t *testing.T, args ...string) map[string]any {
	t.Helper()
	nodePath, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(jsClientDir, "node_modules", "matrix-js-sdk"))
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node or matrix-js-sdk missing (make jsclient): %v", err)
		}
		t.Skipf("node or matrix-js-sdk missing (make jsclient): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodePath, append([]string{"flows.mjs"}, args...)...)
	cmd.Dir = jsClientDir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("matrix-js-sdk %v: %v\n%s", args, err, stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(stdout.String()), &out); err != nil {
		t.Fatalf("matrix-js-sdk %v printed %q", args, stdout.String())
	}
	return out
}

// TestLegacySSOWithMatrixJSSDK: matrix-js-sdk finds m.login.sso and its
// provider in GET /login and builds the redirect URL; the person signs in
// at the provider in Chromium, confirms the app's address (it is not in
// sso.client_whitelist), and the app gets a loginToken, which the SDK
// spends once. The device it logs in ends with the provider's session.
func TestLegacySSOWithMatrixJSSDK(t *testing.T) {
	op := newTestOP(t)
	env := newOAuthEnv(t, upstreamConfig(op))
	op.client("registrar", env.base+"/_registrar/upstream/callback")
	app, tokens := newTokenCatcher(t)
	started := runJSFlow(t, "sso-url", env.base, app.URL+"/done", "oidc-test")
	ctx := browserCtx(t)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	step, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(step, chromedp.Navigate(started["url"].(string)), opSignIn("alice", "op-alice-pw"),
		chromedp.WaitVisible(chromedp.ID("continue"))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("to the confirmation: %v; %q", err, text)
	}
	if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("confirm-text"))); !strings.Contains(text, "@alice:example.org") ||
		!strings.Contains(text, strings.TrimPrefix(app.URL, "http://")) {
		t.Fatalf("the confirmation says %q", text)
	}
	if err := chromedp.Do(step, chromedp.Click(chromedp.ID("continue")), chromedp.WaitVisible(chromedp.ID("app"))); err != nil {
		t.Fatal(err)
	}
	var token string
	select {
	case token = <-tokens:
	case <-step.Done():
		t.Fatal("the app was not given a login token")
	}
	done := runJSFlow(t, "sso-login", env.base, token)
	if done["user"] != "@alice:example.org" {
		t.Fatalf("logged in as %v", done["user"])
	}
	device := done["device"].(string)
	if devs, _ := env.store.Devices(context.Background(), "@alice:example.org"); len(devs) != 1 || devs[0].DeviceID != device {
		t.Fatalf("devices %+v", devs)
	}
	resp, err := http.PostForm(env.base+"/_registrar/upstream/oidc-test/backchannel_logout",
		url.Values{"logout_token": {op.logoutToken(t, "registrar", "alice", "")}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("back-channel logout: %v %v", resp, err)
	}
	resp.Body.Close()
	if devs, _ := env.store.Devices(context.Background(), "@alice:example.org"); len(devs) != 0 {
		t.Fatalf("the SSO login's device outlived the provider's session: %+v", devs)
	}
}

// TestUIASSOForAccountsWithoutPassword: an account made by signing in with
// a provider has no password, so re-authentication offers m.login.sso;
// its fallback page sends the person to the provider, and the session is
// then complete for the operation. With passwords off, /register refuses.
func TestUIASSOForAccountsWithoutPassword(t *testing.T) {
	op := newTestOP(t)
	app, tokens := newTokenCatcher(t)
	env := newOAuthEnv(t, upstreamConfig(op), func(c *config.Config) {
		c.SSO.ClientWhitelist = []string{app.URL + "/"}
		c.PasswordConfig.Enabled = false
	})
	op.client("registrar", env.base+"/_registrar/upstream/callback")
	env.do("POST", registerURL, `{"username":"nopw","password":"pw-nopw-1"}`).expect(t, 403, "M_FORBIDDEN")
	ctx := browserCtx(t)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	step, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// A whitelisted app gets its token without a confirmation.
	if err := chromedp.Do(step, chromedp.Navigate(env.base+"/_matrix/client/v3/login/sso/redirect/oidc-test?redirectUrl="+
		url.QueryEscape(app.URL+"/done")), opSignIn("alice", "op-alice-pw"), chromedp.WaitVisible(chromedp.ID("app"))); err != nil {
		t.Fatal(err)
	}
	token := <-tokens
	login := env.do("POST", loginURL, jsonBody(map[string]any{"type": "m.login.token", "token": token})).expect(t, 200, "")
	access := login.str("access_token")
	flows := env.do("GET", loginURL, "").expect(t, 200, "")
	if !strings.Contains(flows.Raw, `"m.login.sso"`) || strings.Contains(flows.Raw, `"m.login.password"`) ||
		!strings.Contains(flows.Raw, `"id":"oidc-test"`) {
		t.Fatalf("login flows %s", flows.Raw)
	}

	// Deactivation asks to re-authenticate: only m.login.sso.
	challenge := env.do("POST", "/_matrix/client/v3/account/deactivate", `{}`, bearer(access)...).expect(t, 401, "")
	if !strings.Contains(challenge.Raw, `[{"stages":["m.login.sso"]}]`) {
		t.Fatalf("flows %s", challenge.Raw)
	}
	session := challenge.str("session")
	if err := chromedp.Do(step, chromedp.Navigate(env.base+"/_matrix/client/v3/auth/m.login.sso/fallback/web?session="+url.QueryEscape(session)),
		chromedp.Click(chromedp.ID("provider-oidc-test")), opSignIn("alice", "op-alice-pw"), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("the fallback page: %v; %q", err, text)
	}
	env.do("POST", "/_matrix/client/v3/account/deactivate", jsonBody(map[string]any{"auth": map[string]any{"session": session}}),
		bearer(access)...).expect(t, 200, "")
	if acct, _ := env.store.AccountByUserID(context.Background(), "@alice:example.org"); !acct.Deactivated() {
		t.Fatal("not deactivated")
	}
}
