package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"maunium.net/go/mautrix"
)

// TestMatrixJSSDKSignsInWithOAuth: matrix-js-sdk discovers the OAuth 2.0
// API, registers a client and builds the authorisation URL; headless
// Chromium signs in and consents on registrar's pages; the SDK completes
// the code grant (ID token included), calls whoami, refreshes and revokes.
func TestMatrixJSSDKSignsInWithOAuth(t *testing.T) {
	nodePath := node(t)
	exe := chromium(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := serverEnv(t)
	for k, v := range map[string]string{"REGISTRAR_PUBLIC_BASEURL": base + "/", "REGISTRAR_ENABLE_REGISTRATION": "true",
		"REGISTRAR_ENABLE_REGISTRATION_WITHOUT_VERIFICATION": "true", "REGISTRAR_PASSWORD_CONFIG__ARGON2__MEMORY_KIB": "64",
		"REGISTRAR_PASSWORD_CONFIG__ARGON2__ITERATIONS": "1"} {
		env[k] = v
	}
	startServeAt(t, env, fmt.Sprintf("127.0.0.1:%d", port))
	ctx := context.Background()
	anon, _ := mautrix.NewClient(base, "", "")
	if _, err := anon.RegisterDummy(ctx, mautrixRegistration("olivia", "pw-olivia-1")); err != nil {
		t.Fatal(err)
	}

	out := oidcFlow(t, nodePath, exe, base, "", func(browse context.Context, authURL string) {
		err := chromedp.Do(browse,
			chromedp.Navigate(authURL),
			chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), "olivia"),
			chromedp.SendKeys(chromedp.ID("password"), "pw-olivia-1"),
			chromedp.Click(chromedp.ID("submit")),
			chromedp.WaitVisible(chromedp.ID("allow")),
		)
		if err != nil {
			t.Fatalf("sign-in in Chromium: %v", err)
		}
		clientName, err := chromedp.Run(browse, chromedp.Text(chromedp.ID("client")))
		if err != nil || clientName != "js-sdk test" {
			t.Fatalf("consent names %q: %v", clientName, err)
		}
		scopes, err := chromedp.Run(browse, chromedp.Evaluate[int](`document.querySelectorAll("#scopes li").length`))
		if err != nil || scopes != 2 {
			t.Fatalf("consent lists %d scopes: %v", scopes, err)
		}
		if err := chromedp.Do(browse, chromedp.Click(chromedp.ID("allow")), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
			t.Fatalf("consent in Chromium: %v", err)
		}
	})
	o, _ := out["oidc"].(map[string]any)
	if o["user"] != "@olivia:localhost" || o["sub"] != "@olivia:localhost" || o["device"] == "" {
		t.Fatalf("the SDK's result %v", out)
	}
	// The device was logged out by the revocation.
	store := openStore(t, env)
	if devs, _ := store.Devices(ctx, "@olivia:localhost"); len(devs) != 1 {
		t.Fatalf("devices %+v: want only the registration's", devs)
	}
}

// oidcFlow runs flows.mjs's oidc scenario: the SDK prints the
// authorisation URL, inBrowser takes Chromium from it to the client's
// redirect URI (a loopback listener here), and the SDK completes the
// grant with the callback; it returns what the SDK printed last.
func oidcFlow(t *testing.T, nodePath, exe, base, prompt string, inBrowser func(browse context.Context, authURL string)) map[string]any {
	t.Helper()
	callbacks := make(chan string, 1)
	cbLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cbServer := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case callbacks <- "http://" + r.Host + r.URL.RequestURI():
		default:
		}
		io.WriteString(w, "<!DOCTYPE html><title>done</title><p id=done>signed in</p>")
	})}
	go cbServer.Serve(cbLn)
	t.Cleanup(func() { cbServer.Close() })
	redirectURI := "http://" + cbLn.Addr().String() + "/callback"

	jsCtx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"flows.mjs", "oidc", base, redirectURI}
	if prompt != "" {
		args = append(args, prompt)
	}
	cmd := exec.CommandContext(jsCtx, nodePath, args...)
	cmd.Dir = jsClientDir
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("the SDK printed no authorisation URL: %s", stderr.String())
	}
	var first struct {
		AuthURL string `json:"authUrl"`
	}
	if err := json.Unmarshal(lines.Bytes(), &first); err != nil || !strings.HasPrefix(first.AuthURL, base+"/_registrar/oauth2/authorize?") {
		t.Fatalf("authorisation URL %q: %v", lines.Text(), err)
	}
	inBrowser(browserContext(t, exe), first.AuthURL)
	var callback string
	select {
	case callback = <-callbacks:
	case <-time.After(10 * time.Second):
		t.Fatal("no callback")
	}
	fmt.Fprintln(stdin, callback)
	stdin.Close()
	var out map[string]any
	for lines.Scan() {
		if err := json.Unmarshal(lines.Bytes(), &out); err != nil {
			t.Fatalf("the SDK printed %q", lines.Text())
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("matrix-js-sdk oidc: %v\n%s", err, stderr.String())
	}
	return out
}

// browserContext starts headless Chromium for the test.
func browserContext(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-dev-shm-usage", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// chromium returns Debian's Chromium, skipping the test where it is not
// installed (CI installs it, and there its absence is a failure).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed")
	}
	t.Skip("chromium is not installed")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
