package impl_test

import (
	"strings"
	"testing"

	"registrar/impl/config"
	"registrar/impl/uia"
)

func TestCaptchaStage(t *testing.T) {
	sv := newSiteverify(t)
	env := newEnv(t, captchaConfig(sv))
	first := env.doFrom("192.0.2.7", "POST", registerURL, `{"username":"cat","password":"pw-cat-1"}`).expect(t, 401, "")
	if jsonBody(first.Body["flows"]) != `[{"stages":["m.login.recaptcha","m.login.dummy"]}]` ||
		jsonBody(first.Body["params"]) != `{"m.login.recaptcha":{"public_key":"captcha-public"}}` {
		t.Fatalf("challenge %s", first.Raw)
	}
	s := first.str("session")
	env.doFrom("192.0.2.7", "POST", registerURL, stage("m.login.recaptcha", s)).expect(t, 401, "M_CAPTCHA_NEEDED")
	env.doFrom("192.0.2.7", "POST", registerURL, stage("m.login.recaptcha", s, map[string]any{"response": "bad"})).expect(t, 401, "M_UNAUTHORIZED")
	ok := env.doFrom("192.0.2.7", "POST", registerURL, stage("m.login.recaptcha", s, map[string]any{"response": "good"})).expect(t, 401, "")
	if jsonBody(ok.Body["completed"]) != `["m.login.recaptcha"]` {
		t.Fatalf("completed %s", ok.Raw)
	}
	env.do("POST", registerURL, stage("m.login.dummy", s)).expect(t, 200, "")
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if len(sv.remoteIP) != 2 || sv.remoteIP[1] != "192.0.2.7" {
		t.Fatalf("siteverify saw remote IPs %v", sv.remoteIP)
	}
}

func TestCaptchaProviderDown(t *testing.T) {
	sv := newSiteverify(t)
	env := newEnv(t, captchaConfig(sv))
	s := env.do("POST", registerURL, `{"username":"dog","password":"pw-dog-1"}`).str("session")
	sv.server.Close()
	r := env.do("POST", registerURL, stage("m.login.recaptcha", s, map[string]any{"response": "good"}))
	r.expect(t, 503, "M_UNKNOWN")
}

func TestFallbackPagesCompleteStages(t *testing.T) {
	sv := newSiteverify(t)
	env := newEnv(t, captchaConfig(sv), func(c *config.Config) {
		c.RegistrationTerms = map[string]uia.TermsPolicy{"tos": {Version: "2",
			Translations: map[string]uia.TermsDocument{"en": {Name: "Terms <of> Service", URL: "https://example.org/tos"}}}}
	})
	s := env.do("POST", registerURL, `{"username":"fay","password":"pw-fay-1"}`).expect(t, 401, "").str("session")
	base := "/_matrix/client/v3/auth/"

	code, body := env.page("GET", base+"m.login.recaptcha/fallback/web?session="+s, "")
	if code != 200 || !strings.Contains(body, `data-sitekey="captcha-public"`) || !strings.Contains(body, `class="g-recaptcha"`) {
		t.Fatalf("captcha page %d %s", code, body)
	}
	code, body = env.page("POST", base+"m.login.recaptcha/fallback/web?session="+s, "g-recaptcha-response=bad")
	if code != 200 || !strings.Contains(body, "not accepted") || strings.Contains(body, "authDone") {
		t.Fatalf("refused captcha page %d %s", code, body)
	}
	code, body = env.page("POST", base+"m.login.recaptcha/fallback/web?session="+s, "g-recaptcha-response=good")
	if code != 200 || !strings.Contains(body, `postMessage("authDone", "*")`) || !strings.Contains(body, "window.onAuthDone") {
		t.Fatalf("completion page %d %s", code, body)
	}

	code, body = env.page("GET", base+"m.login.terms/fallback/web?session="+s, "")
	if code != 200 || !strings.Contains(body, "Terms &lt;of&gt; Service") || !strings.Contains(body, `href="https://example.org/tos"`) {
		t.Fatalf("terms page %d %s", code, body)
	}
	if code, body = env.page("POST", base+"m.login.terms/fallback/web?session="+s, "x=1"); !strings.Contains(body, "Accept the terms") {
		t.Fatalf("terms without accepting %d %s", code, body)
	}
	if code, body = env.page("POST", base+"m.login.terms/fallback/web?session="+s, "accept=yes"); code != 200 || !strings.Contains(body, "authDone") {
		t.Fatalf("terms accepted %d %s", code, body)
	}
	// The client resubmits with the session only and gets the next stage.
	r := env.do("POST", registerURL, jsonBody(map[string]any{"auth": map[string]any{"session": s}})).expect(t, 401, "")
	if jsonBody(r.Body["completed"]) != `["m.login.recaptcha","m.login.terms"]` {
		t.Fatalf("completed %s", r.Raw)
	}
	env.do("POST", registerURL, stage("m.login.dummy", s)).expect(t, 200, "")

	env.do("GET", base+"m.login.terms/fallback/web?session=unknown", "").expect(t, 400, "M_UNKNOWN")
	env.do("GET", base+"m.login.dummy/fallback/web?session="+s, "").expect(t, 404, "M_UNRECOGNIZED")
	env.do("GET", base+"m.login.terms/fallback/web", "").expect(t, 400, "M_MISSING_PARAM")
}
