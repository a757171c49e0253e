package impl_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"registrar/db"
	"registrar/impl"
	"registrar/impl/accounts"
	"registrar/impl/config"
	"registrar/impl/passwords"
	"registrar/impl/ratelimit"
	"registrar/impl/uia"
)

// signUpAttempt is what a person brings to a registration.
type signUpAttempt struct {
	username, password, token, captcha, email string
	acceptTerms                               bool
}

// outcome is how a registration ended: "ok", "approval", or the errcode
// of the refusal.
type outcome string

var signUpCodeRE = regexp.MustCompile(`code on the sign-up page: ([A-Z0-9]+)`)
var tokenParamRE = regexp.MustCompile(`[?&]token=([A-Za-z0-9]+)`)
var sidParamRE = regexp.MustCompile(`[?&]sid=([A-Za-z0-9]+)`)

// viaAPI registers with /register as a Matrix client: it answers each
// stage of the first flow in turn.
func viaAPI(t *testing.T, env *oauthEnv, sink *smtpSink, a signUpAttempt) outcome {
	t.Helper()
	body := map[string]any{"username": a.username, "password": a.password, "inhibit_login": true}
	r := env.do("POST", registerURL, jsonBody(body))
	for i := 0; i < 10; i++ {
		switch {
		case r.Status == 200:
			return "ok"
		case r.str("errcode") == "M_USER_AWAITING_APPROVAL":
			return "approval"
		case r.Status != 401:
			return outcome(r.str("errcode"))
		case r.str("errcode") != "":
			return outcome(r.str("errcode")) // a stage failed
		}
		session := r.str("session")
		flow := r.Body["flows"].([]any)[0].(map[string]any)["stages"].([]any)
		completed, _ := r.Body["completed"].([]any)
		var next string
		for _, st := range flow {
			if !slices.Contains(completed, st) {
				next = st.(string)
				break
			}
		}
		auth := map[string]any{"type": next, "session": session}
		switch next {
		case uia.TypeRegistrationToken:
			auth["token"] = a.token
		case uia.TypeRecaptcha:
			auth["response"] = a.captcha
		case uia.TypeTerms:
			if !a.acceptTerms {
				return "terms not accepted"
			}
		case uia.TypeEmail:
			req := env.do("POST", "/_matrix/client/v3/register/email/requestToken",
				jsonBody(map[string]any{"client_secret": "api-secret", "email": a.email, "send_attempt": 1}))
			if req.Status != 200 {
				return outcome(req.str("errcode"))
			}
			text := sink.last(t).Text
			token, sid := tokenParamRE.FindStringSubmatch(text), sidParamRE.FindStringSubmatch(text)
			code, page := env.page("POST", "/"+strings.SplitN(strings.TrimPrefix(text[strings.Index(text, "http"):], env.base+"/"), "?", 2)[0],
				url.Values{"sid": {sid[1]}, "client_secret": {"api-secret"}, "token": {token[1]}}.Encode())
			if code != 200 {
				t.Fatalf("validation %d %s", code, page)
			}
			auth["threepid_creds"] = map[string]any{"sid": sid[1], "client_secret": "api-secret"}
		}
		r = env.do("POST", registerURL, jsonBody(map[string]any{"auth": auth}))
	}
	t.Fatal("registration did not end")
	return ""
}

var errcodeAttr = regexp.MustCompile(`data-errcode="([A-Z_]+)"`)

// viaPage registers on the sign-up page as a person in a browser.
func viaPage(t *testing.T, env *oauthEnv, sink *smtpSink, a signUpAttempt) outcome {
	t.Helper()
	b := env.browser(t)
	p := b.get(env.base + "/_registrar/signup")
	form := url.Values{"step": {"form"}, "username": {a.username}, "password": {a.password}, "password_confirm": {a.password},
		"registration_token": {a.token}, "g-recaptcha-response": {a.captcha}, "email": {a.email}, "csrf": {p.csrf(t)}}
	if a.acceptTerms {
		form.Set("accept_terms", "yes")
	}
	p = b.post(env.base+"/_registrar/signup", form)
	if strings.Contains(p.body, `name="code"`) {
		code := signUpCodeRE.FindStringSubmatch(sink.last(t).Text)
		if code == nil {
			t.Fatalf("no code in %q", sink.last(t).Text)
		}
		hidden := func(name string) string {
			return regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(p.body)[1]
		}
		p = b.post(env.base+"/_registrar/signup", url.Values{"step": {"code"}, "session": {hidden("session")}, "sid": {hidden("sid")},
			"client_secret": {hidden("client_secret")}, "email": {hidden("email")}, "code": {strings.ToLower(code[1])},
			"csrf": {p.csrf(t)}})
	}
	switch {
	case p.status == 200 && strings.Contains(p.body, "awaits a server administrator"):
		return "approval"
	case p.status == 200 && strings.Contains(p.url, "/_registrar/account"):
		return "ok"
	}
	if m := errcodeAttr.FindStringSubmatch(p.body); m != nil {
		return outcome(m[1])
	}
	t.Fatalf("the sign-up page ended at %s (%d): %s", p.url, p.status, p.body)
	return ""
}

// TestSignUpPageAppliesTheRegistrationPolicy: for each configuration,
// /register and the sign-up page accept and refuse the same attempts for
// the same reasons (each side on a fresh server of that configuration).
func TestSignUpPageAppliesTheRegistrationPolicy(t *testing.T) {
	sv := newSiteverify(t)
	terms := func(c *config.Config) {
		c.RegistrationTerms = map[string]uia.TermsPolicy{"tos": {Version: "2",
			Translations: map[string]uia.TermsDocument{"en": {Name: "Terms", URL: "https://example.org/tos"}}}}
	}
	good := signUpAttempt{username: "newbie", password: "pw-newbie-long-1", token: "invite-1", captcha: "good", email: "newbie@example.org",
		acceptTerms: true}
	with := func(change func(*signUpAttempt)) signUpAttempt {
		a := good
		change(&a)
		return a
	}
	cases := []struct {
		name     string
		config   func(*config.Config, *smtpSink)
		prepare  func(t *testing.T, env *oauthEnv)
		attempts map[string]signUpAttempt
		want     map[string]outcome
	}{
		{"open", nil, nil, map[string]signUpAttempt{"valid": good, "taken": with(func(a *signUpAttempt) { a.username = "taken" }),
			"bad name": with(func(a *signUpAttempt) { a.username = "Bad Name" }), "numeric": with(func(a *signUpAttempt) { a.username = "123" })},
			map[string]outcome{"valid": "ok", "taken": "M_USER_IN_USE", "bad name": "M_INVALID_USERNAME", "numeric": "M_INVALID_USERNAME"}},
		{"token required", func(c *config.Config, _ *smtpSink) { tokenRequired(c) }, createToken,
			map[string]signUpAttempt{"valid": good, "wrong token": with(func(a *signUpAttempt) { a.token = "nope" })},
			map[string]outcome{"valid": "ok", "wrong token": "M_UNAUTHORIZED"}},
		{"captcha", func(c *config.Config, _ *smtpSink) { captchaConfig(sv)(c) }, nil,
			map[string]signUpAttempt{"valid": good, "bad captcha": with(func(a *signUpAttempt) { a.captcha = "bad" })},
			map[string]outcome{"valid": "ok", "bad captcha": "M_UNAUTHORIZED"}},
		{"email required", func(c *config.Config, sink *smtpSink) {
			emailConfig(sink)(c)
			c.RegistrationsRequire3PID = []string{"email"}
			c.EnableRegistrationWithoutVerification = false
		}, nil, map[string]signUpAttempt{"valid": good}, map[string]outcome{"valid": "ok"}},
		{"terms", func(c *config.Config, _ *smtpSink) { terms(c) }, nil,
			map[string]signUpAttempt{"valid": good}, map[string]outcome{"valid": "ok"}},
		{"approval", func(c *config.Config, _ *smtpSink) { c.RequireApprovalForNewAccounts = true }, nil,
			map[string]signUpAttempt{"valid": good}, map[string]outcome{"valid": "approval"}},
		{"forbidden name", func(c *config.Config, _ *smtpSink) {
			c.ForbiddenUsernames = []config.ForbiddenUsername{{Pattern: "^admin"}, {Pattern: "^support", Exclusive: true}}
		}, nil, map[string]signUpAttempt{"forbidden": with(func(a *signUpAttempt) { a.username = "administrator" }),
			"reserved": with(func(a *signUpAttempt) { a.username = "support1" })},
			map[string]outcome{"forbidden": "M_INVALID_USERNAME", "reserved": "M_EXCLUSIVE"}},
		{"weak password", func(c *config.Config, _ *smtpSink) {
			c.PasswordConfig.Policy = passwords.Policy{Enabled: true, MinimumLength: 20}
		}, nil, map[string]signUpAttempt{"weak": good}, map[string]outcome{"weak": "M_WEAK_PASSWORD"}},
		{"rate limited", func(c *config.Config, _ *smtpSink) {
			c.RcRegistration = ratelimit.Rate{PerSecond: 0.0001, BurstCount: 1}
		}, func(t *testing.T, env *oauthEnv) {
			// One registration from each address the two sides come from
			// (the test requests' and the browser's).
			env.register("first", "pw-first-1").expect(t, 200, "")
			resp, err := http.Post(env.base+registerURL, "application/json",
				strings.NewReader(`{"username":"first2","password":"pw-first-2","auth":{"type":"m.login.dummy"}}`))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("registration from the loopback address: %v %v", resp, err)
			}
			resp.Body.Close()
		}, map[string]signUpAttempt{"second": good}, map[string]outcome{"second": "M_LIMIT_EXCEEDED"}},
	}
	for _, tc := range cases {
		for name, attempt := range tc.attempts {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				results := map[string]outcome{}
				for _, side := range []string{"api", "page"} {
					sink := newSMTPSink(t)
					env := newOAuthEnv(t, func(c *config.Config) {
						if tc.config != nil {
							tc.config(c, sink)
						}
					})
					operatorAccount(t, env.testEnv, "taken")
					if tc.prepare != nil {
						tc.prepare(t, env)
					}
					if side == "api" {
						results[side] = viaAPI(t, env, sink, attempt)
					} else {
						results[side] = viaPage(t, env, sink, attempt)
					}
					created, err := env.store.Account(context.Background(), strings.ToLower(attempt.username))
					made := err == nil && attempt.username != "taken"
					if made != (results[side] == "ok" || results[side] == "approval") {
						t.Fatalf("%s: outcome %s but account made: %v (%+v)", side, results[side], made, created)
					}
					if made && tc.name == "terms" && !strings.Contains(created.ConsentVersion, `"tos":"2"`) {
						t.Fatalf("%s: terms not recorded: %+v", side, created)
					}
					if made && tc.name == "email required" {
						if tps, _ := env.store.Threepids(context.Background(), created.UserID); len(tps) != 1 || tps[0].Address != attempt.email {
							t.Fatalf("%s: address not bound: %+v", side, tps)
						}
					}
				}
				if results["api"] != results["page"] || results["api"] != tc.want[name] {
					t.Fatalf("/register %s, sign-up page %s, want %s", results["api"], results["page"], tc.want[name])
				}
			})
		}
	}
}

func createToken(t *testing.T, env *oauthEnv) {
	t.Helper()
	if err := env.store.CreateRegistrationToken(context.Background(), db.RegistrationToken{Token: "invite-1"}); err != nil {
		t.Fatal(err)
	}
}

// operatorAccount makes an account as the operator does, outside the
// registration policy.
func operatorAccount(t *testing.T, env *testEnv, name string) {
	t.Helper()
	a, err := impl.NewAdmin(env.cfg, env.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Accounts.Create(context.Background(), accounts.NewAccount{Source: accounts.SourceOperator, Localpart: name,
		Password: ptr("pw-" + name + "-long-enough-for-any-policy-1")}); err != nil {
		t.Fatal(err)
	}
}
