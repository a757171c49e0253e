package impl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"registrar/impl/config"
	"registrar/impl/passwords"
	"registrar/impl/uia"
	"registrar/impl/web"
)

// axeSource is axe-core, pinned in the test packages' package-lock.json
// (make jsclient installs it).
func axeSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "cmd", "registrar", "testdata", "jsclient", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("axe-core is not installed (make jsclient): %v", err)
		}
		t.Skipf("axe-core is not installed (make jsclient): %v", err)
	}
	return string(b)
}

// screenshotDir is where the page tests leave their screenshots for people
// to look at: REGISTRAR_SCREENSHOT_DIR, or registrar-screenshots in the
// system's temporary directory.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("REGISTRAR_SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "registrar-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// layout is one way a page is looked at.
type layout struct {
	name  string
	width int64
	dark  bool
}

var layouts = []layout{{"390-light", 390, false}, {"390-dark", 390, true}, {"1280-light", 1280, false}, {"1280-dark", 1280, true}}

// axeViolation is a violated axe rule and where.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// checkPage looks at the page the browser is on in every layout: axe-core
// finds no violation of WCAG 2.1 A and AA, nothing is wider than the
// screen, and a screenshot of each is kept.
func checkPage(t *testing.T, ctx context.Context, axe, dir, name string) {
	t.Helper()
	for _, l := range layouts {
		scheme := "light"
		if l.dark {
			scheme = "dark"
		}
		err := chromedp.Do(ctx, chromedp.EmulateViewport(l.width, 800, chromedp.EmulateScale(1)),
			chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
				return err
			}))
		if err != nil {
			t.Fatalf("%s %s: %v", name, l.name, err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("typeof axe === 'object' || (function(){"+axe+"; return true})()")); err != nil {
			t.Fatalf("%s: injecting axe-core: %v", name, err)
		}
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: "tag",
			values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}, resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations))`,
			chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s %s: axe: %v", name, l.name, err)
		}
		var violations []axeViolation
		if err := json.Unmarshal([]byte(raw), &violations); err != nil {
			t.Fatalf("%s %s: axe answered %s", name, l.name, raw)
		}
		for _, v := range violations {
			var where []string
			for _, n := range v.Nodes {
				where = append(where, fmt.Sprint(n.Target)+" "+n.Summary)
			}
			t.Errorf("%s at %s: %s (%s, %s): %s", name, l.name, v.ID, v.Impact, v.Help, strings.Join(where, "; "))
		}
		wider, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
		if err != nil || wider {
			t.Errorf("%s at %s: the page is wider than the screen (%v)", name, l.name, err)
		}
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("%s %s: screenshot: %v", name, l.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-"+l.name+".png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pagesConfig is a server whose pages show every part: branding, a
// password policy, terms, an emailed code at sign-up, and address changes.
func pagesConfig(sink *smtpSink) func(*config.Config) {
	return func(c *config.Config) {
		emailConfig(sink)(c)
		c.RegistrationsRequire3PID = []string{"email"}
		c.EnableRegistrationWithoutVerification = false
		c.RegistrationTerms = map[string]uia.TermsPolicy{"tos": {Version: "2",
			Translations: map[string]uia.TermsDocument{"en": {Name: "Terms of use", URL: "https://example.org/tos"}}}}
		c.PasswordConfig.Policy = passwords.Policy{Enabled: true, MinimumLength: 10, RequireDigit: true}
		on := true
		c.SecondFactors = config.SecondFactors{TOTP: &on}
		c.Branding = web.Branding{ServiceName: "Example Chat", PrimaryColor: "#7b2cbf", PolicyURI: "https://example.org/privacy",
			TOSURI: "https://example.org/terms", Imprint: "Example Ltd, 1 Example Street, Exampleton"}
	}
}

var (
	sentCodeRE  = regexp.MustCompile(`code on the sign-up page: ([A-Z0-9]{8})`)
	emailLinkRE = regexp.MustCompile(`https?://\S+submit_token\S+`)
)

// TestPagesInChromium walks every page and each of its states in headless
// Chromium, checking each at 390 and 1280 px, light and dark, with
// axe-core; the screenshots go to screenshotDir for people to look at.
func TestPagesInChromium(t *testing.T) {
	axe := axeSource(t)
	sink := newSMTPSink(t)
	env := newOAuthEnv(t, pagesConfig(sink))
	operatorAccount(t, env.testEnv, "taken")
	clientID := env.registerClient(t, nil)
	ctx := browserCtx(t)
	run := browserSteps(t, ctx)
	dir := screenshotDir(t)
	t.Logf("screenshots in %s", dir)
	at := func(name string) { t.Helper(); checkPage(t, ctx, axe, dir, name) }
	id := func(s string) chromedp.ID { return chromedp.ID(s) }

	// Signed out.
	run("sign-in", chromedp.Navigate(env.base+"/_registrar/login"), chromedp.WaitVisible(id("username")))
	at("signin")
	run("sign-in refused", chromedp.SendKeys(id("username"), "nobody"), chromedp.SendKeys(id("password"), "wrong-password-1"),
		chromedp.Click(id("submit")), chromedp.WaitVisible(id("password-error")))
	at("signin-error")
	run("sign-up", chromedp.Navigate(env.base+"/_registrar/signup"), chromedp.WaitVisible(id("username")))
	at("signup")
	fill := func(username string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(chromedp.SendKeys(id("username"), username), chromedp.SendKeys(id("password"), "pw-long-enough-1"),
			chromedp.SendKeys(id("password_confirm"), "pw-long-enough-1"), chromedp.SendKeys(id("email"), username+"@example.org"),
			chromedp.Click(id("accept_terms")), chromedp.Click(id("submit")))
	}
	run("sign-up refused", fill("taken"), chromedp.WaitVisible(id("username-error")))
	at("signup-error")
	run("sign-up", chromedp.Navigate(env.base+"/_registrar/signup"), chromedp.WaitVisible(id("username")), fill("walker"),
		chromedp.WaitVisible(id("code")))
	at("signup-code")
	run("wrong code", chromedp.SendKeys(id("code"), "WRONG123"), chromedp.Click(id("submit")), chromedp.WaitVisible(id("code-error")))
	at("signup-code-error")
	code := sentCodeRE.FindStringSubmatch(sink.last(t).Text)
	if code == nil {
		t.Fatalf("no code in %q", sink.last(t).Text)
	}
	run("right code", chromedp.SendKeys(id("code"), code[1]), chromedp.Click(id("submit")), chromedp.WaitVisible(id("user")))

	// Sessions of each kind: a legacy login with a user agent and one
	// through the OAuth API.
	env.do("POST", loginURL, loginBody("walker", "pw-long-enough-1", map[string]any{"device_id": "LEGACYPHONE"}),
		"User-Agent", "Element X/1.9.4 (iPhone; iOS 18.1; Scale/3.00)").expect(t, 200, "")
	if err := env.server.FlushDeviceUses(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Signed in.
	at("profile")
	run("add a taken address", chromedp.SendKeys(id("address"), "walker@example.org"), chromedp.Click(id("add-email")),
		chromedp.WaitVisible(id("address-error")))
	at("profile-error")
	run("add an address", chromedp.Clear(id("address")), chromedp.SendKeys(id("address"), "walker2@example.org"), chromedp.Click(id("add-email")),
		chromedp.WaitVisible(id("code")))
	at("verify")
	run("wrong code", chromedp.SendKeys(id("code"), "WRONG123"), chromedp.Click(id("verify")), chromedp.WaitVisible(id("code-error")))
	at("verify-error")
	run("sessions", chromedp.Navigate(env.base+"/_registrar/account?action=org.matrix.devices_list"), chromedp.WaitVisible(id("sessions")))
	at("sessions")
	run("a session", chromedp.Navigate(env.base+"/_registrar/account?action=org.matrix.device_view&device_id=LEGACYPHONE"),
		chromedp.WaitVisible(id("end-session")))
	at("session")
	run("password", chromedp.Navigate(env.base+"/_registrar/account?action=password"), chromedp.WaitVisible(id("current_password")))
	at("password")
	run("wrong password", chromedp.SendKeys(id("current_password"), "not-my-password-1"), chromedp.SendKeys(id("new_password"), "pw-new-enough-2"),
		chromedp.SendKeys(id("new_password_confirm"), "pw-new-enough-2"), chromedp.Click(id("change-password")),
		chromedp.WaitVisible(id("current_password-error")))
	at("password-error")
	run("deactivate", chromedp.Navigate(env.base+"/_registrar/account?action=org.matrix.account_deactivate"), chromedp.WaitVisible(id("password")))
	at("deactivate")

	// Second factors: the security page, an authenticator app's
	// enrolment, the recovery codes, and the sign-in's second step.
	run("security", chromedp.Navigate(env.base+"/_registrar/account?action=security"), chromedp.WaitVisible(id("add-totp")))
	at("security")
	run("add an app", chromedp.Click(id("add-totp")), chromedp.WaitVisible(id("totp-secret")))
	at("security-totp")
	secret, err := chromedp.Run(ctx, chromedp.Text(id("totp-secret")))
	if err != nil {
		t.Fatal(err)
	}
	totpCode := func() string {
		c, err := totp.GenerateCode(secret, env.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	run("confirm it", chromedp.SendKeys(id("code"), totpCode()), chromedp.Click(id("confirm-totp")), chromedp.WaitVisible(id("recovery-codes")))
	at("security-recovery")
	run("sign out", chromedp.Click(id("signout")), chromedp.WaitVisible(id("username")))
	run("sign in", chromedp.SendKeys(id("username"), "walker"), chromedp.SendKeys(id("password"), "pw-long-enough-1"),
		chromedp.Click(id("submit")), chromedp.WaitVisible(id("code")))
	at("factor")
	run("a wrong code", chromedp.SendKeys(id("code"), "000000"), chromedp.Click(id("submit")), chromedp.WaitVisible(id("code-error")))
	at("factor-error")
	env.clock.Advance(30 * time.Second)
	run("the right code", chromedp.SendKeys(id("code"), totpCode()), chromedp.Click(id("submit")), chromedp.WaitVisible(id("user")))

	// An app asks.
	cfg := env.oauthConfig(clientID, 41002, "PAGESDEVICE")
	run("consent", chromedp.Navigate(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))), chromedp.WaitVisible(id("allow")))
	at("consent")
	run("device", chromedp.Navigate(env.base+"/_registrar/device"), chromedp.WaitVisible(id("user_code")))
	at("device")
	run("wrong device code", chromedp.SendKeys(id("user_code"), "ABCD-EFGH"), chromedp.Click(id("submit")),
		chromedp.WaitVisible(id("user_code-error")))
	at("device-error")
	run("unknown client", chromedp.Navigate(env.base+"/_registrar/oauth2/authorize?response_type=code&client_id=nobody&"+
		"redirect_uri="+url.QueryEscape("http://127.0.0.1/callback")), chromedp.WaitVisible(id("message")))
	at("authorize-error")
	run("expired request", chromedp.Navigate(env.base+"/_registrar/consent/gone"), chromedp.WaitVisible(id("message")))
	at("message")

	// The emailed link, and a stage's fallback page.
	requestEmailToken(env.testEnv, registerEmailURL, "pages", "linked@example.org", 1).expect(t, 200, "")
	link := emailLinkRE.FindString(sink.last(t).Text)
	run("emailed link", chromedp.Navigate(link), chromedp.WaitVisible(id("confirm")))
	at("email-confirm")
	run("confirm", chromedp.Click(id("confirm")), chromedp.WaitVisible(id("result")))
	at("email-result")
	session := env.do("POST", registerURL, `{"username":"fallback","password":"pw-long-enough-3"}`).expect(t, 401, "").str("session")
	run("fallback", chromedp.Navigate(env.base+"/_matrix/client/v3/auth/m.login.terms/fallback/web?session="+session),
		chromedp.WaitVisible(id("accept")))
	at("fallback-terms")
	run("fallback refused", chromedp.Click(id("submit")))
}

// TestKeyboardOnlySignUpAndSignIn: a person with a keyboard alone (Tab to
// move, typing, Space to tick, Enter to submit) creates an account and
// signs in again.
func TestKeyboardOnlySignUpAndSignIn(t *testing.T) {
	env := newOAuthEnv(t, func(c *config.Config) {
		c.RegistrationTerms = map[string]uia.TermsPolicy{"tos": {Version: "1",
			Translations: map[string]uia.TermsDocument{"en": {Name: "Terms", URL: "https://example.org/tos"}}}}
	})
	ctx := browserCtx(t)
	focused := func() string {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// tabTo presses Tab until the element of id has the focus (a few
	// presses at most: the page's order is the reading order).
	tabTo := func(id string) {
		t.Helper()
		for range 12 {
			if focused() == id {
				return
			}
			if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
				t.Fatal(err)
			}
		}
		t.Fatalf("Tab never reached #%s (stuck at #%s)", id, focused())
	}
	typeKeys := func(keys string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.KeyEvent(keys)); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(env.base+"/_registrar/signup"), chromedp.WaitVisible(chromedp.ID("username"))); err != nil {
		t.Fatal(err)
	}
	if got := focused(); got != "username" {
		t.Fatalf("the sign-up page opens with #%s focused, not the username", got)
	}
	typeKeys("keys")
	tabTo("password")
	typeKeys("pw-keyboard-1")
	tabTo("password_confirm")
	typeKeys("pw-keyboard-1")
	tabTo("accept_terms")
	typeKeys(" ")
	tabTo("submit")
	typeKeys(kb.Enter)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("user"))); err != nil {
		t.Fatal(err)
	}
	if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("user"))); text != "@keys:example.org" {
		t.Fatalf("signed up as %q", text)
	}

	// Sign out and in again, by keyboard.
	tabTo("signout")
	typeKeys(kb.Enter)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("username"))); err != nil {
		t.Fatal(err)
	}
	if got := focused(); got != "username" {
		t.Fatalf("the sign-in page opens with #%s focused", got)
	}
	typeKeys("keys")
	tabTo("password")
	typeKeys("pw-keyboard-1" + kb.Enter)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("user"))); err != nil {
		t.Fatal(err)
	}
}
