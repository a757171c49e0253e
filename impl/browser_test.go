package impl_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConfirmationPageInChromium has a person's browser open the emailed
// link and press the button.
func TestConfirmationPageInChromium(t *testing.T) {
	exe := chromium(t)
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink))
	ts := httptest.NewServer(env.server)
	defer ts.Close()
	requestEmailToken(env, registerEmailURL, "browser", "person@example.org", 1).expect(t, 200, "")
	link := sink.last(t).link(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-dev-shm-usage", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+link),
		chromedp.WaitVisible(chromedp.ID("confirm")),
	)
	if err != nil {
		t.Fatal(err)
	}
	before, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		t.Fatal(err)
	}
	// The served style sheet is allowed by the Content-Security-Policy.
	font, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).fontFamily`))
	if err != nil || !strings.HasPrefix(font, "system-ui") {
		t.Fatalf("the page's style was not applied (font %q): %v", font, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("result"))); err != nil {
		t.Fatal(err)
	}
	after, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("result")))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if before != "Confirm your email address" || !strings.Contains(after, "has been validated") {
		t.Fatalf("page said %q then %q", before, after)
	}
	if dir := os.Getenv("REGISTRAR_SCREENSHOT_DIR"); dir != "" {
		_ = os.WriteFile(dir+"/confirmation.png", shot, 0o644)
	}
	// The session is validated: the UIA stage passes.
	u, _ := url.Parse(link)
	env.do("POST", registerURL, jsonBody(map[string]any{"username": "person", "password": "pw-person-1",
		"auth": threepidAuth("m.login.email.identity", u.Query().Get("sid"), "browser", "")})).expect(t, 200, "")
}
