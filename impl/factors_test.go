package impl_test

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"registrar/db"
	"registrar/impl/config"
	"registrar/impl/ratelimit"
)

// factorsConfig offers authenticator apps and passkeys, and counts three
// wrong codes at most.
func factorsConfig(c *config.Config) {
	on := true
	c.SecondFactors = config.SecondFactors{TOTP: &on, WebAuthn: &on}
	c.RcLogin.FailedAttempts = ratelimit.Rate{PerSecond: 0.001, BurstCount: 3}
}

var (
	totpSecretRE = regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`)
	totpIDRE     = regexp.MustCompile(`name="id" value="([^"]+)"`)
	recoveryRE   = regexp.MustCompile(`<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>`)
	loginTokenRE = regexp.MustCompile(`loginToken=([A-Za-z0-9_]+)`)
)

// TestTOTPAndRecoveryCodes: an authenticator app is enrolled with a first
// code (computed here from the enrolled secret), then asked for after the
// password; a code works once, wrong ones are limited per account,
// recovery codes work once each; a password alone logs in no legacy
// client (the documented error, m.login.sso offered instead), and a UIA
// re-authentication needs the factor on its fallback page; an admin's
// reset, audited, lets the password alone sign in again.
func TestTOTPAndRecoveryCodes(t *testing.T) {
	env := newOAuthEnv(t, factorsConfig)
	env.register("tess", "pw-tess-1").expect(t, 200, "")
	env.register("plain", "pw-plain-1").expect(t, 200, "")
	admin := env.adminToken("factoradmin")
	var enrolled string
	code := func() string {
		t.Helper()
		c, err := totp.GenerateCode(enrolled, env.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	b := env.browser(t)
	p := b.signIn(b.get(env.base+"/_registrar/login"), "tess", "pw-tess-1")
	p = b.get(env.base + "/_registrar/account?action=security")
	if !strings.Contains(p.body, `id="add-totp"`) || !strings.Contains(p.body, `id="factors"`) {
		t.Fatalf("security page %d %s", p.status, p.body)
	}
	p = b.post(env.base+"/_registrar/account/factors/totp", url.Values{"csrf": {p.csrf(t)}})
	m := totpSecretRE.FindStringSubmatch(p.body)
	if m == nil || !strings.Contains(p.body, `src="data:image/png;base64,`) {
		t.Fatalf("enrolment page %d %s", p.status, p.body)
	}
	enrolled = m[1]
	id := totpIDRE.FindStringSubmatch(p.body)[1]
	wrong := b.post(env.base+"/_registrar/account/factors/totp/confirm", url.Values{"csrf": {p.csrf(t)}, "id": {id}, "code": {"000000"}})
	if wrong.status != 400 || !strings.Contains(wrong.body, `id="code-error"`) || !strings.Contains(wrong.body, "totp-secret") {
		t.Fatalf("a wrong first code %d %s", wrong.status, wrong.body)
	}
	p = b.post(env.base+"/_registrar/account/factors/totp/confirm", url.Values{"csrf": {p.csrf(t)}, "id": {id}, "code": {code()},
		"name": {"My phone"}})
	codes := recoveryRE.FindAllStringSubmatch(p.body, -1)
	if len(codes) != 10 {
		t.Fatalf("recovery codes page %d %s", p.status, p.body)
	}
	if audit := env.do("GET", "/_registrar/admin/v1/users/@tess:example.org/second_factors", "", bearer(admin)...).expect(t, 200, ""); !strings.Contains(audit.Raw, `"kind":"totp"`) ||
		!strings.Contains(audit.Raw, `"name":"My phone"`) || !strings.Contains(audit.Raw, `"recovery_codes_left":10`) || strings.Contains(audit.Raw, enrolled) {
		t.Fatalf("the admin API shows %s", audit.Raw)
	}

	// The legacy API: no token for the password alone.
	refused := env.do("POST", loginURL, loginBody("tess", "pw-tess-1")).expect(t, 403, "ORG.REGISTRAR.SECOND_FACTOR_REQUIRED")
	if !strings.Contains(refused.str("error"), "browser") {
		t.Fatalf("the refusal says %s", refused.Raw)
	}
	if flows := env.do("GET", loginURL, "").expect(t, 200, ""); !strings.Contains(flows.Raw, `"m.login.sso"`) {
		t.Fatalf("flows %s", flows.Raw)
	}
	env.do("POST", loginURL, loginBody("plain", "pw-plain-1")).expect(t, 200, "")

	// Sign in: the password, then the code. The code the enrolment used
	// is spent; the next step's works once.
	signOut := func(b *browser) {
		p := b.get(env.base + "/_registrar/account")
		b.post(env.base+"/_registrar/logout", url.Values{"csrf": {p.csrf(t)}})
	}
	signOut(b)
	factorPage := b.signIn(b.get(env.base+"/_registrar/login"), "tess", "pw-tess-1")
	if !strings.Contains(factorPage.url, "/_registrar/login/factor") || !strings.Contains(factorPage.body, `id="code"`) {
		t.Fatalf("after the password %s %s", factorPage.url, factorPage.body)
	}
	used := b.post(env.base+"/_registrar/login/factor", url.Values{"csrf": {factorPage.csrf(t)}, "code": {code()}})
	if used.status != 400 || !strings.Contains(used.body, `id="code-error"`) {
		t.Fatalf("a spent code %d %s", used.status, used.body)
	}
	env.clock.Advance(30 * time.Second)
	fresh := code()
	in := b.post(env.base+"/_registrar/login/factor", url.Values{"csrf": {factorPage.csrf(t)}, "code": {fresh}})
	if !strings.Contains(in.body, `id="user">@tess:example.org`) {
		t.Fatalf("with the code %d %s", in.status, in.body)
	}

	// A second browser: the same code again is refused; wrong codes are
	// limited per account; a recovery code works once.
	other := env.browser(t)
	fp := other.signIn(other.get(env.base+"/_registrar/login"), "tess", "pw-tess-1")
	if r := other.post(env.base+"/_registrar/login/factor", url.Values{"csrf": {fp.csrf(t)}, "code": {fresh}}); r.status != 400 {
		t.Fatalf("a code twice %d", r.status)
	}
	for i := 0; i < 2; i++ {
		other.post(env.base+"/_registrar/login/factor", url.Values{"csrf": {fp.csrf(t)}, "code": {"123456"}})
	}
	if r := other.post(env.base+"/_registrar/login/factor", url.Values{"csrf": {fp.csrf(t)}, "code": {codes[0][1]}}); r.status != 429 {
		t.Fatalf("after wrong codes %d %s", r.status, r.body)
	}
	env.clock.Advance(time.Hour) // the limit refills (and the sign-in expired)
	fp = other.signIn(other.get(env.base+"/_registrar/login"), "tess", "pw-tess-1")
	if r := other.post(env.base+"/_registrar/login/factor", url.Values{"csrf": {fp.csrf(t)}, "code": {strings.ToUpper(codes[0][1])}}); !strings.Contains(r.body, `id="user"`) {
		t.Fatalf("a recovery code %d %s", r.status, r.body)
	}
	third := env.browser(t)
	tp := third.signIn(third.get(env.base+"/_registrar/login"), "tess", "pw-tess-1")
	if r := third.post(env.base+"/_registrar/login/factor", url.Values{"csrf": {tp.csrf(t)}, "code": {codes[0][1]}}); r.status != 400 {
		t.Fatalf("a spent recovery code %d", r.status)
	}

	// A sensitive action asks for the factor again once it is stale.
	if r := b.get(env.base + "/_registrar/account?action=password"); !strings.Contains(r.url, "/_registrar/login/factor") {
		t.Fatalf("the password page after an hour: %s", r.url)
	}

	// A legacy client through the pages: m.login.sso, then m.login.token.
	env.clock.Advance(30 * time.Second)
	b.post(env.base+"/_registrar/login/factor", url.Values{"csrf": {factorPage.csrf(t)}, "code": {code()}})
	confirm := b.get(env.base + "/_registrar/sso/complete?redirectUrl=" + url.QueryEscape("https://app.example.org/done"))
	token := loginTokenRE.FindStringSubmatch(confirm.body)
	if token == nil {
		t.Fatalf("the confirmation %d %s", confirm.status, confirm.body)
	}
	access := env.do("POST", loginURL, `{"type":"m.login.token","token":"`+token[1]+`"}`).expect(t, 200, "").str("access_token")

	// UIA: the password and the second factor (on its fallback page).
	challenge := env.do("POST", "/_matrix/client/v3/delete_devices", `{"devices":["NONE"]}`, bearer(access)...).expect(t, 401, "")
	if !strings.Contains(challenge.Raw, `"stages":["m.login.password","org.registrar.login.second_factor"]`) {
		t.Fatalf("flows %s", challenge.Raw)
	}
	session := challenge.str("session")
	env.do("POST", "/_matrix/client/v3/delete_devices", jsonBody(map[string]any{"devices": []string{"NONE"},
		"auth": passwordAuth("tess", "pw-tess-1", session)}), bearer(access)...).expect(t, 401, "")
	fallback := "/_matrix/client/v3/auth/org.registrar.login.second_factor/fallback/web?session=" + url.QueryEscape(session)
	if code, page := env.page("GET", fallback, ""); code != 200 || !strings.Contains(page, `id="code"`) {
		t.Fatalf("fallback page %d %s", code, page)
	}
	env.clock.Advance(30 * time.Second)
	if code, page := env.page("POST", fallback, "code="+code()); code != 200 || !strings.Contains(page, "authDone") {
		t.Fatalf("fallback answer %d %s", code, page)
	}
	env.do("POST", "/_matrix/client/v3/delete_devices", jsonBody(map[string]any{"devices": []string{"NONE"},
		"auth": map[string]any{"session": session}}), bearer(access)...).expect(t, 200, "")

	// An admin's reset: audited; the password alone logs in again.
	env.do("DELETE", "/_registrar/admin/v1/users/@tess:example.org/second_factors", "", bearer(admin)...).expect(t, 200, "")
	if records, _ := env.store.AuditLog(context.Background(), "@tess:example.org", 10); len(records) == 0 || records[0].Action != "reset_second_factors" {
		t.Fatalf("audit %+v", records)
	}
	env.do("POST", loginURL, loginBody("tess", "pw-tess-1")).expect(t, 200, "")
}

// TestPasskeysInChromium: with the DevTools protocol's virtual
// authenticator, a passkey is added on the security page, then signs in
// alone (no username), serves as the second factor after the password,
// and is removed.
func TestPasskeysInChromium(t *testing.T) {
	env := newOAuthEnvAt(t, "localhost", factorsConfig)
	env.register("pat", "pw-pat-1").expect(t, 200, "")
	ctx := browserCtx(t)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
			Options: &cdpwebauthn.VirtualAuthenticatorOptions{Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
				Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true, IsUserVerified: true,
				AutomaticPresenceSimulation: true}})
		return err
	})); err != nil {
		t.Fatalf("virtual authenticator: %v", err)
	}
	run := browserSteps(t, ctx)
	id := func(s string) chromedp.ID { return chromedp.ID(s) }
	signOut := func() {
		run("sign out", chromedp.Navigate(env.base+"/_registrar/account"), chromedp.WaitVisible(id("signout")), chromedp.Click(id("signout")),
			chromedp.WaitVisible(id("username")))
	}
	run("sign in", chromedp.Navigate(env.base+"/_registrar/login"), chromedp.WaitVisible(id("username")),
		chromedp.SendKeys(id("username"), "pat"), chromedp.SendKeys(id("password"), "pw-pat-1"), chromedp.Click(id("submit")),
		chromedp.WaitVisible(id("user")))
	run("add a passkey", chromedp.Navigate(env.base+"/_registrar/account?action=security"), chromedp.WaitVisible(id("add-passkey")),
		chromedp.Click(id("add-passkey")), chromedp.WaitVisible(id("new-recovery")))
	if text, _ := chromedp.Run(ctx, chromedp.Text(id("factors"))); !strings.Contains(text, "Passkey") {
		t.Fatalf("factors %q", text)
	}
	signOut()
	run("sign in with the passkey alone", chromedp.WaitVisible(id("passkey-signin")), chromedp.Click(id("passkey-signin")),
		chromedp.WaitVisible(id("user")))
	if text, _ := chromedp.Run(ctx, chromedp.Text(id("user"))); text != "@pat:example.org" {
		t.Fatalf("signed in as %q", text)
	}
	signOut()
	run("the password, then the key", chromedp.SendKeys(id("username"), "pat"), chromedp.SendKeys(id("password"), "pw-pat-1"),
		chromedp.Click(id("submit")), chromedp.WaitVisible(id("use-key")), chromedp.Click(id("use-key")), chromedp.WaitVisible(id("user")))
	run("remove it", chromedp.Navigate(env.base+"/_registrar/account?action=security"), chromedp.WaitVisible(chromedp.CSS(`button[id^="remove-"]`)),
		chromedp.Click(chromedp.CSS(`button[id^="remove-"]`)), chromedp.WaitVisible(id("notice")))
	if text, _ := chromedp.Run(ctx, chromedp.Text(id("factors"))); strings.Contains(text, "Passkey") {
		t.Fatalf("still listed: %q", text)
	}
	env.do("POST", loginURL, loginBody("pat", "pw-pat-1")).expect(t, 200, "")
}

// TestRequiredSecondFactorAndNotices: where a second factor is required,
// a sign-in without one lands on the security page, and an authorisation
// waits there until one is enrolled; enrolling mails the account's
// verified address.
func TestRequiredSecondFactorAndNotices(t *testing.T) {
	sink := newSMTPSink(t)
	env := newOAuthEnv(t, factorsConfig, emailConfig(sink), func(c *config.Config) { c.SecondFactors.RequiredFor = []string{"all"} })
	env.register("rue", "pw-rue-1").expect(t, 200, "")
	if err := env.store.AddThreepid(context.Background(), "@rue:example.org", db.NewThreepid{Medium: "email", Address: "rue@example.org",
		ValidatedAt: 1}); err != nil {
		t.Fatal(err)
	}
	clientID := env.registerClient(t, nil)
	b := env.browser(t)
	p := b.signIn(b.get(env.base+"/_registrar/login"), "rue", "pw-rue-1")
	if !strings.Contains(p.url, "action=security") || !strings.Contains(p.body, `id="required"`) {
		t.Fatalf("after signing in %s %s", p.url, p.body)
	}
	cfg := env.oauthConfig(clientID, 41010, "RUEDEVICE")
	if q := b.get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); !strings.Contains(q.url, "action=security") {
		t.Fatalf("an authorisation without a factor went to %s", q.url)
	}
	p = b.post(env.base+"/_registrar/account/factors/totp", url.Values{"csrf": {p.csrf(t)}})
	secret := totpSecretRE.FindStringSubmatch(p.body)[1]
	code, _ := totp.GenerateCode(secret, env.clock.Now())
	b.post(env.base+"/_registrar/account/factors/totp/confirm", url.Values{"csrf": {p.csrf(t)}, "id": {totpIDRE.FindStringSubmatch(p.body)[1]},
		"code": {code}})
	if q := b.get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); !strings.Contains(q.body, `id="allow"`) {
		t.Fatalf("with a factor the authorisation asks: %s %s", q.url, q.body)
	}
	notice := sink.wait(t, func(m sentMail) bool { return strings.Contains(m.Text, "authenticator app was added") })
	if notice.To != "rue@example.org" {
		t.Fatalf("the notice went to %q", notice.To)
	}
}

// enrolTOTP signs user in on the pages and enrols an authenticator app;
// it returns the secret.
func enrolTOTP(t *testing.T, env *oauthEnv, user, password string) string {
	t.Helper()
	b := env.browser(t)
	p := b.signIn(b.get(env.base+"/_registrar/login"), user, password)
	p = b.post(env.base+"/_registrar/account/factors/totp", url.Values{"csrf": {p.csrf(t)}})
	secret := totpSecretRE.FindStringSubmatch(p.body)[1]
	code, _ := totp.GenerateCode(secret, env.clock.Now())
	if r := b.post(env.base+"/_registrar/account/factors/totp/confirm", url.Values{"csrf": {p.csrf(t)}, "id": {totpIDRE.FindStringSubmatch(p.body)[1]},
		"code": {code}}); len(recoveryRE.FindAllString(r.body, -1)) != 10 {
		t.Fatalf("enrolling %s: %d %s", user, r.status, r.body)
	}
	return secret
}

// TestLegacyPasswordLoginWithSecondFactorInMatrixJSSDK: matrix-js-sdk's
// password login of an account with a factor gets the documented errcode
// and message (no token), and the flows offer m.login.sso, whose URL goes
// to registrar's own sign-in page.
func TestLegacyPasswordLoginWithSecondFactorInMatrixJSSDK(t *testing.T) {
	env := newOAuthEnv(t, factorsConfig)
	env.register("jess", "pw-jess-1").expect(t, 200, "")
	enrolTOTP(t, env, "jess", "pw-jess-1")
	out := runJSFlow(t, "second-factor", env.base, "jess", "pw-jess-1")
	if !strings.Contains(out["message"].(string), "browser") {
		t.Fatalf("the SDK got %v", out)
	}
	b := env.browser(t)
	if p := b.get(out["sso"].(string)); !strings.Contains(p.url, "/_registrar/login?next=") || !strings.Contains(p.body, `id="password"`) {
		t.Fatalf("the SSO URL leads to %s", p.url)
	}
	if devs, _ := env.store.Devices(context.Background(), "@jess:example.org"); len(devs) != 1 {
		t.Fatalf("devices %+v (only the registration's)", devs)
	}
}
