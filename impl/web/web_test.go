package web

import (
	"net/http"
	"strings"
	"testing"
)

func TestPolicyAllowsOnlyWhatIsNamed(t *testing.T) {
	p := Policy{Scripts: []string{"alert(1)"}, ScriptOrigins: []string{"https://captcha.example"}, FrameOrigins: []string{"https://captcha.example"}}.String()
	for _, want := range []string{"default-src 'none'", "style-src 'self'", "script-src 'self' https://captcha.example " + Hash("alert(1)"),
		"frame-src https://captcha.example", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(p, want) {
			t.Errorf("policy %q lacks %q", p, want)
		}
	}
	if strings.Contains(p, "unsafe") || !strings.Contains(Policy{}.String(), "script-src 'self';") {
		t.Errorf("policy %q", p)
	}
	h := http.Header{}
	SetHeaders(h, Policy{})
	if h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", h)
	}
}

func TestSafeRedirect(t *testing.T) {
	for raw, want := range map[string]bool{
		"https://app.example/done": true, "http://localhost:8080/x": true, "javascript:alert(1)": false,
		"file:///etc/passwd": false, "//evil.example/": false, "/relative": false, "data:text/html,x": false,
	} {
		if SafeRedirect(raw) != want {
			t.Errorf("%q: %v", raw, !want)
		}
	}
	if Origin("https://www.recaptcha.net/recaptcha/api.js") != "https://www.recaptcha.net" || Origin("nonsense") != "" {
		t.Error("origin")
	}
}
