package impl_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"registrar/impl/config"
)

var accountCodeRE = regexp.MustCompile(`code on your account page: ([A-Z0-9]{8})`)

// browserCtx starts headless Chromium.
func browserCtx(t *testing.T) context.Context {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-dev-shm-usage", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// A bound for a test that hangs, not a measure of speed.
	ctx, cancelTimeout := context.WithTimeout(ctx, 10*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// TestInviteLinkAndAccountPagesInChromium: an invite link prefills the
// registration token; the new account then adds and verifies an email
// address, ends another session (its token is refused at once), changes
// its password and deactivates, all in the browser.
func TestInviteLinkAndAccountPagesInChromium(t *testing.T) {
	sink := newSMTPSink(t)
	env := newOAuthEnv(t, tokenRequired, emailConfig(sink), func(c *config.Config) {
		c.EnableRegistrationWithoutVerification = false
	})
	createToken(t, env)
	ctx := browserCtx(t)
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel chromedp.ID) string {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %v: %v", sel, err)
		}
		return got
	}

	// The invite link.
	run("open the invite link", chromedp.Navigate(env.base+"/_registrar/signup?registration_token=invite-1"),
		chromedp.WaitVisible(chromedp.ID("registration_token")))
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("registration_token"))); err != nil || v != "invite-1" {
		t.Fatalf("token field %q: %v", v, err)
	}
	run("sign up", chromedp.SendKeys(chromedp.ID("username"), "zed"), chromedp.SendKeys(chromedp.ID("password"), "pw-zed-1"),
		chromedp.SendKeys(chromedp.ID("password_confirm"), "pw-zed-1"), chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("user")))
	if got := text(chromedp.ID("user")); got != "@zed:example.org" {
		t.Fatalf("signed up as %q", got)
	}

	// Add and verify an email address.
	run("add an email", chromedp.SendKeys(chromedp.ID("address"), "zed@example.org"), chromedp.Click(chromedp.ID("add-email")),
		chromedp.WaitVisible(chromedp.ID("code")))
	code := accountCodeRE.FindStringSubmatch(sink.last(t).Text)
	if code == nil {
		t.Fatalf("no code in %q", sink.last(t).Text)
	}
	run("verify it", chromedp.SendKeys(chromedp.ID("code"), code[1]), chromedp.Click(chromedp.ID("verify")),
		chromedp.WaitVisible(chromedp.ID("notice")))
	if got := text(chromedp.ID("threepids")); !strings.Contains(got, "zed@example.org") {
		t.Fatalf("addresses on the page %q", got)
	}
	if tps, _ := env.store.Threepids(context.Background(), "@zed:example.org"); len(tps) != 1 {
		t.Fatalf("addresses stored %+v", tps)
	}

	// End another session: its token is refused at once.
	other := env.do("POST", loginURL, loginBody("zed", "pw-zed-1", map[string]any{"device_id": "OTHERPHONE"})).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(other.str("access_token"))...).expect(t, 200, "")
	run("end the other session", chromedp.Navigate(env.base+"/_registrar/account?action=org.matrix.device_view&device_id=OTHERPHONE"),
		chromedp.WaitVisible(chromedp.ID("end-session")), chromedp.Click(chromedp.ID("end-session")),
		chromedp.WaitVisible(chromedp.ID("notice")))
	env.do("GET", whoamiURL, "", bearer(other.str("access_token"))...).expect(t, 401, "M_UNKNOWN_TOKEN")

	// Change the password: the old one is refused, the new one works.
	run("change the password", chromedp.Navigate(env.base+"/_registrar/account?action=password"),
		chromedp.WaitVisible(chromedp.ID("current_password")),
		chromedp.SendKeys(chromedp.ID("current_password"), "pw-zed-1"), chromedp.SendKeys(chromedp.ID("new_password"), "pw-zed-2"),
		chromedp.SendKeys(chromedp.ID("new_password_confirm"), "pw-zed-2"), chromedp.Click(chromedp.ID("change-password")),
		chromedp.WaitVisible(chromedp.ID("notice")))
	env.do("POST", loginURL, loginBody("zed", "pw-zed-1")).expect(t, 403, "M_FORBIDDEN")
	kept := env.do("POST", loginURL, loginBody("zed", "pw-zed-2")).expect(t, 200, "")

	// Deactivate: every token is refused; the username stays taken.
	run("deactivate", chromedp.Navigate(env.base+"/_registrar/account?action=org.matrix.account_deactivate"),
		chromedp.WaitVisible(chromedp.ID("deactivate")), chromedp.SendKeys(chromedp.ID("password"), "pw-zed-2"),
		chromedp.Click(chromedp.ID("confirm")), chromedp.Click(chromedp.ID("deactivate")), chromedp.WaitVisible(chromedp.ID("message")))
	if got := text(chromedp.ID("message")); !strings.Contains(got, "deactivated") {
		t.Fatalf("after deactivation %q", got)
	}
	env.do("GET", whoamiURL, "", bearer(kept.str("access_token"))...).expect(t, 401, "M_UNKNOWN_TOKEN")
	acct, err := env.store.AccountByUserID(context.Background(), "@zed:example.org")
	if err != nil || !acct.Deactivated() {
		t.Fatalf("account %+v %v", acct, err)
	}
	if _, err := env.store.Account(context.Background(), "zed"); err != nil {
		t.Fatal("the username is free again")
	}
	if tok, _ := env.store.RegistrationToken(context.Background(), "invite-1"); tok.Completed != 1 {
		t.Fatalf("token accounting %+v", tok)
	}
}

// browserSteps runs actions in the browser of ctx, each group bounded (a
// hung page fails the test instead of stalling it) and, on failure,
// reporting what the page says. The browser is started on ctx itself.
func browserSteps(t *testing.T, ctx context.Context) func(what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	return func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		step, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := chromedp.Do(step, actions...); err != nil {
			text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: %v; the page says %q", what, err, text)
		}
	}
}
