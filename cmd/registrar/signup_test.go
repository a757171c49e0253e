package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-smtp"

	"registrar/db"
)

// mailSink is an SMTP server on loopback keeping each message raw.
type mailSink struct {
	mu   sync.Mutex
	raw  []string
	port int
}

type mailSession struct{ sink *mailSink }

func (s *mailSession) AuthPlain(string, string) error       { return nil }
func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *mailSession) Reset()                               {}
func (s *mailSession) Logout() error                        { return nil }
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.sink.mu.Lock()
	s.sink.raw = append(s.sink.raw, string(b))
	s.sink.mu.Unlock()
	return err
}

func newMailSink(t *testing.T) *mailSink {
	t.Helper()
	sink := &mailSink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{sink: sink}, nil }))
	srv.Domain, srv.AllowInsecureAuth = "localhost", true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink.port = ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sink
}

var mailCode = regexp.MustCompile(`enter this code on the sign-up page: ([A-Z0-9]{8})`)

// code waits for a sign-up code mail and returns its code.
func (m *mailSink) code(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		m.mu.Lock()
		for i := len(m.raw) - 1; i >= 0; i-- {
			if c := mailCode.FindStringSubmatch(m.raw[i]); c != nil {
				m.mu.Unlock()
				return c[1]
			}
		}
		m.mu.Unlock()
	}
	t.Fatal("no sign-up code mail")
	return ""
}

// TestMatrixJSSDKSignsUpWithOAuth: with a registration token and an
// email address required, matrix-js-sdk starts a prompt=create
// authorisation; headless Chromium fills the sign-up page (the token, the
// code mailed to the test SMTP server) and consents; the SDK ends with a
// working access token of the new account.
func TestMatrixJSSDKSignsUpWithOAuth(t *testing.T) {
	nodePath := node(t)
	exe := chromium(t)
	sink := newMailSink(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfgFile := filepath.Join(t.TempDir(), "registrar.yaml")
	yaml := fmt.Sprintf("email:\n  smtp_host: 127.0.0.1\n  smtp_port: %d\n  enable_tls: false\n  notif_from: 'Registrar <noreply@example.org>'\n"+
		"registrations_require_3pid: [email]\n", sink.port)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := serverEnv(t)
	for k, v := range map[string]string{"REGISTRAR_CONFIG": cfgFile, "REGISTRAR_PUBLIC_BASEURL": base + "/",
		"REGISTRAR_ENABLE_REGISTRATION": "true", "REGISTRAR_REGISTRATION_REQUIRES_TOKEN": "true",
		"REGISTRAR_PASSWORD_CONFIG__ARGON2__MEMORY_KIB": "64", "REGISTRAR_PASSWORD_CONFIG__ARGON2__ITERATIONS": "1"} {
		env[k] = v
	}
	startServeAt(t, env, fmt.Sprintf("127.0.0.1:%d", port))
	ctx := context.Background()
	store := openStore(t, env)
	if err := store.CreateRegistrationToken(ctx, db.RegistrationToken{Token: "js-invite"}); err != nil {
		t.Fatal(err)
	}

	out := oidcFlow(t, nodePath, exe, base, "create", func(browse context.Context, authURL string) {
		err := chromedp.Do(browse,
			chromedp.Navigate(authURL),
			chromedp.WaitVisible(chromedp.ID("registration_token")),
			chromedp.SendKeys(chromedp.ID("username"), "quinn"),
			chromedp.SendKeys(chromedp.ID("password"), "pw-quinn-1"),
			chromedp.SendKeys(chromedp.ID("password_confirm"), "pw-quinn-1"),
			chromedp.SendKeys(chromedp.ID("registration_token"), "js-invite"),
			chromedp.SendKeys(chromedp.ID("email"), "quinn@example.org"),
			chromedp.Click(chromedp.ID("submit")),
			chromedp.WaitVisible(chromedp.ID("code")),
		)
		if err != nil {
			t.Fatalf("the sign-up form in Chromium: %v", err)
		}
		err = chromedp.Do(browse,
			chromedp.SendKeys(chromedp.ID("code"), strings.ToLower(sink.code(t))),
			chromedp.Click(chromedp.ID("submit")),
			chromedp.WaitVisible(chromedp.ID("allow")),
			chromedp.Click(chromedp.ID("allow")),
			chromedp.WaitVisible(chromedp.ID("done")),
		)
		if err != nil {
			t.Fatalf("the code and consent in Chromium: %v", err)
		}
	})
	o, _ := out["oidc"].(map[string]any)
	if o["user"] != "@quinn:localhost" {
		t.Fatalf("the SDK's result %v", out)
	}
	if tok, _ := store.RegistrationToken(ctx, "js-invite"); tok.Completed != 1 || tok.Pending != 0 {
		t.Fatalf("token accounting %+v", tok)
	}
	if tps, _ := store.Threepids(ctx, "@quinn:localhost"); len(tps) != 1 || tps[0].Address != "quinn@example.org" {
		t.Fatalf("addresses %+v", tps)
	}
}
