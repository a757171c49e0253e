package impl_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"registrar/impl/config"
	"registrar/impl/ratelimit"
	"strings"
	"testing"
	"time"
)

func TestRegisterWithEmail(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink), func(c *config.Config) {
		c.RegistrationsRequire3PID = []string{"email"}
		c.EnableRegistrationWithoutVerification = false
	})
	first := env.do("POST", registerURL, `{"username":"mail","password":"pw-mail-1"}`).expect(t, 401, "")
	if jsonBody(first.Body["flows"]) != `[{"stages":["m.login.email.identity"]}]` {
		t.Fatalf("flows %s", first.Raw)
	}
	session := first.str("session")

	tok := requestEmailToken(env, registerEmailURL, "secret-1", "Mail.User@EXAMPLE.org", 1).expect(t, 200, "")
	sid := tok.str("sid")
	if sid == "" || tok.Body["submit_url"] != nil {
		t.Fatalf("requestToken %s", tok.Raw)
	}
	m := sink.last(t)
	if m.To != "Mail.User@example.org" && m.To != "mail.user@example.org" || m.Subject != "[example.org] Validate your email" || !strings.Contains(m.HTML, "href=") {
		t.Fatalf("mail %+v", m)
	}
	// The same attempt again: same sid, nothing resent; a higher one resends.
	again := requestEmailToken(env, registerEmailURL, "secret-1", "mail.user@example.org", 1).expect(t, 200, "")
	if again.str("sid") != sid || sink.count() != 1 {
		t.Fatalf("retry sent again: %s, %d mails", again.Raw, sink.count())
	}
	if requestEmailToken(env, registerEmailURL, "secret-1", "mail.user@example.org", 2).expect(t, 200, "").str("sid") != sid || sink.count() != 2 {
		t.Fatal("a higher send_attempt did not resend")
	}
	m = sink.last(t)

	// Not validated yet: the stage fails.
	env.do("POST", registerURL, jsonBody(map[string]any{"auth": threepidAuth("m.login.email.identity", sid, "secret-1", session)})).expect(t, 401, "M_UNAUTHORIZED")
	if result := validateLink(t, env, m.link(t)); !strings.Contains(result, "Email address confirmed") {
		t.Fatalf("result %s", result)
	}
	// The wrong client secret does not pass.
	env.do("POST", registerURL, jsonBody(map[string]any{"auth": threepidAuth("m.login.email.identity", sid, "secret-2", session)})).expect(t, 401, "M_UNAUTHORIZED")
	r := env.do("POST", registerURL, jsonBody(map[string]any{"auth": threepidAuth("m.login.email.identity", sid, "secret-1", session)})).expect(t, 200, "")
	list := env.do("GET", "/_matrix/client/v3/account/3pid", "", bearer(r.str("access_token"))...).expect(t, 200, "")
	tp, _ := list.Body["threepids"].([]any)
	if len(tp) != 1 || tp[0].(map[string]any)["address"] != "mail.user@example.org" || tp[0].(map[string]any)["medium"] != "email" {
		t.Fatalf("3pids %s", list.Raw)
	}
	// Now the address is taken.
	requestEmailToken(env, registerEmailURL, "secret-3", "MAIL.USER@example.org", 1).expect(t, 400, "M_THREEPID_IN_USE")
	caps := env.do("GET", "/_matrix/client/v3/capabilities", "", bearer(r.str("access_token"))...)
	if jsonBody(caps.Body["capabilities"].(map[string]any)["m.3pid_changes"]) != `{"enabled":true}` {
		t.Fatalf("capabilities %s", caps.Raw)
	}
}

func TestValidationLinks(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink))
	requestEmailToken(env, registerEmailURL, "s1", "one@example.org", 1).expect(t, 200, "")
	link := sink.last(t).link(t)
	u, _ := url.Parse(link)
	q := u.Query()
	wrong := url.Values{"sid": {q.Get("sid")}, "client_secret": {"s1"}, "token": {"nottherightone"}}
	if _, page := env.page("POST", u.Path, wrong.Encode()); !strings.Contains(page, "has expired") {
		t.Fatalf("wrong token page %s", page)
	}
	validateLink(t, env, link)
	if _, page := env.page("POST", u.Path, q.Encode()); !strings.Contains(page, "already been used") {
		t.Fatalf("reused token page %s", page)
	}
	// Tokens expire after validation_token_lifetime (1h).
	requestEmailToken(env, registerEmailURL, "s2", "two@example.org", 1).expect(t, 200, "")
	late := sink.last(t).link(t)
	env.clock.Advance(61 * time.Minute)
	lu, _ := url.Parse(late)
	if _, page := env.page("POST", lu.Path, lu.Query().Encode()); !strings.Contains(page, "has expired") {
		t.Fatalf("expired token page %s", page)
	}
	// next_link redirects after validation.
	env.do("POST", registerEmailURL, `{"client_secret":"s3","email":"three@example.org","send_attempt":1,"next_link":"https://app.example.org/done"}`).expect(t, 200, "")
	nu, _ := url.Parse(sink.last(t).link(t))
	req := httptest.NewRequest("POST", nu.Path, strings.NewReader(nu.Query().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	env.server.ServeHTTP(rec, req)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "https://app.example.org/done" {
		t.Fatalf("redirect %d %q", rec.Code, rec.Header().Get("Location"))
	}
}

func TestRequestTokenRefusals(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink), func(c *config.Config) {
		c.AllowedLocal3PIDs = []config.AllowedThreepid{{Medium: "email", Pattern: `@example\.org$`}}
		c.NextLinkDomainWhitelist = &[]string{"app.example.org"}
	})
	cases := []struct {
		name, path, body string
		status           int
		errcode          string
	}{
		{"bad client_secret", registerEmailURL, `{"client_secret":"has space","email":"a@example.org","send_attempt":1}`, 400, "M_INVALID_PARAM"},
		{"client_secret over 255", registerEmailURL, `{"client_secret":"` + strings.Repeat("s", 256) + `","email":"a@example.org","send_attempt":1}`, 400, "M_INVALID_PARAM"},
		{"bad email", registerEmailURL, `{"client_secret":"s","email":"Alice <a@example.org>","send_attempt":1}`, 400, "M_INVALID_PARAM"},
		{"file next_link", registerEmailURL, `{"client_secret":"s","email":"a@example.org","send_attempt":1,"next_link":"file:///etc/passwd"}`, 400, "M_INVALID_PARAM"},
		{"next_link off whitelist", registerEmailURL, `{"client_secret":"s","email":"a@example.org","send_attempt":1,"next_link":"https://evil.example.com/"}`, 400, "M_INVALID_PARAM"},
		{"denied domain", registerEmailURL, `{"client_secret":"s","email":"a@elsewhere.org","send_attempt":1}`, 403, "M_THREEPID_DENIED"},
		{"reset of unknown address", "/_matrix/client/v3/account/password/email/requestToken", `{"client_secret":"s","email":"nobody@example.org","send_attempt":1}`, 400, "M_THREEPID_NOT_FOUND"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env.do("POST", tc.path, tc.body).expect(t, tc.status, tc.errcode)
		})
	}
	if sink.count() != 0 {
		t.Fatalf("%d mails sent for refused requests", sink.count())
	}
	env.do("POST", registerEmailURL, `{"client_secret":"s","email":"a@example.org","send_attempt":1,"next_link":"https://app.example.org/x"}`).expect(t, 200, "")
	env.do("POST", registerEmailURL, `{"client_secret":"`+strings.Repeat("s", 255)+`","email":"a@example.org","send_attempt":1}`).expect(t, 200, "")
}

func TestRequestTokenInhibitErrors(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink), func(c *config.Config) { c.RequestTokenInhibit3PIDErrors = true })
	start := time.Now()
	r := env.do("POST", "/_matrix/client/v3/account/password/email/requestToken", `{"client_secret":"s","email":"nobody@example.org","send_attempt":1}`).expect(t, 200, "")
	if r.str("sid") == "" || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("fake answer %s after %s", r.Raw, time.Since(start))
	}
	if sink.count() != 0 {
		t.Fatal("mail sent to an unknown address")
	}
}

func TestPasswordResetByEmail(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink))
	// An account with a bound email, and two logged-in devices.
	requestEmailToken(env, registerEmailURL, "reg", "reset@example.org", 1)
	regSid := sink.last(t)
	validateLink(t, env, regSid.link(t))
	sid, _ := url.Parse(regSid.link(t))
	acct := env.do("POST", registerURL, jsonBody(map[string]any{"username": "forgetful", "password": "pw-old-1",
		"auth": threepidAuth("m.login.email.identity", sid.Query().Get("sid"), "reg", "")})).expect(t, 200, "")
	other := env.do("POST", loginURL, loginBody("forgetful", "pw-old-1")).str("access_token")

	first := env.do("POST", passwordURL, `{"new_password":"pw-new-1"}`).expect(t, 401, "")
	tok := requestEmailToken(env, "/_matrix/client/v3/account/password/email/requestToken", "reset", "RESET@example.org", 1).expect(t, 200, "")
	m := sink.last(t)
	if m.Subject != "[example.org] Password reset" {
		t.Fatalf("subject %q", m.Subject)
	}
	validateLink(t, env, m.link(t))
	env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-new-1",
		"auth": threepidAuth("m.login.email.identity", tok.str("sid"), "reset", first.str("session"))})).expect(t, 200, "")
	// Whoever learns the session ID afterwards can do nothing with it.
	env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "attacker-pw",
		"auth": map[string]any{"session": first.str("session")}})).expect(t, 400, "M_UNKNOWN")
	env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "attacker-pw",
		"auth": threepidAuth("m.login.email.identity", tok.str("sid"), "reset", first.str("session"))})).expect(t, 400, "M_UNKNOWN")
	env.do("POST", loginURL, loginBody("forgetful", "attacker-pw")).expect(t, 403, "M_FORBIDDEN")
	env.do("POST", loginURL, loginBody("forgetful", "pw-old-1")).expect(t, 403, "M_FORBIDDEN")
	env.do("POST", loginURL, loginBody("forgetful", "pw-new-1")).expect(t, 200, "")
	for _, old := range []string{acct.str("access_token"), other} {
		env.do("GET", whoamiURL, "", bearer(old)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	}
}

func TestAddAndDeleteThreepid(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink))
	tok := env.register("adder", "pw-adder-1").str("access_token")
	r := requestEmailToken(env, "/_matrix/client/v3/account/3pid/email/requestToken", "add", "added@example.org", 1).expect(t, 200, "")
	body := map[string]any{"sid": r.str("sid"), "client_secret": "add"}
	body["auth"] = passwordAuth("adder", "pw-adder-1", "")
	env.do("POST", "/_matrix/client/v3/account/3pid/add", jsonBody(body), bearer(tok)...).expect(t, 400, "M_THREEPID_AUTH_FAILED")
	validateLink(t, env, sink.last(t).link(t))
	env.do("POST", "/_matrix/client/v3/account/3pid/add", jsonBody(body), bearer(tok)...).expect(t, 200, "")
	list := env.do("GET", "/_matrix/client/v3/account/3pid", "", bearer(tok)...)
	if !strings.Contains(list.Raw, "added@example.org") {
		t.Fatalf("list %s", list.Raw)
	}
	d := env.do("POST", "/_matrix/client/v3/account/3pid/delete", `{"medium":"email","address":"Added@Example.org"}`, bearer(tok)...).expect(t, 200, "")
	if d.str("id_server_unbind_result") != "success" {
		t.Fatal(d.Raw)
	}
	if list = env.do("GET", "/_matrix/client/v3/account/3pid", "", bearer(tok)...); strings.Contains(list.Raw, "added@example.org") {
		t.Fatalf("still listed %s", list.Raw)
	}
}

func TestDeactivationFreesThreepids(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink))
	requestEmailToken(env, registerEmailURL, "d", "leaver@example.org", 1)
	link := sink.last(t).link(t)
	validateLink(t, env, link)
	u, _ := url.Parse(link)
	tok := env.do("POST", registerURL, jsonBody(map[string]any{"username": "leaver", "password": "pw-leaver-1",
		"auth": threepidAuth("m.login.email.identity", u.Query().Get("sid"), "d", "")})).expect(t, 200, "").str("access_token")
	requestEmailToken(env, registerEmailURL, "d2", "leaver@example.org", 1).expect(t, 400, "M_THREEPID_IN_USE")
	env.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth("leaver", "pw-leaver-1", "")}), bearer(tok)...).expect(t, 200, "")
	requestEmailToken(env, registerEmailURL, "d3", "leaver@example.org", 1).expect(t, 200, "")
}

// TestThreepidBoundMeanwhile validates one address in two sessions; the
// second registration to finish finds it taken.
func TestThreepidBoundMeanwhile(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink))
	var sids []string
	for _, secret := range []string{"a1", "a2"} {
		requestEmailToken(env, registerEmailURL, secret, "twice@example.org", 1).expect(t, 200, "")
		link := sink.last(t).link(t)
		validateLink(t, env, link)
		u, _ := url.Parse(link)
		sids = append(sids, u.Query().Get("sid"))
	}
	env.do("POST", registerURL, jsonBody(map[string]any{"username": "first", "password": "pw-1",
		"auth": threepidAuth("m.login.email.identity", sids[0], "a1", "")})).expect(t, 200, "")
	env.do("POST", registerURL, jsonBody(map[string]any{"username": "second", "password": "pw-2",
		"auth": threepidAuth("m.login.email.identity", sids[1], "a2", "")})).expect(t, 400, "M_THREEPID_IN_USE")
	env.do("GET", "/_matrix/client/v3/register/available?username=second", "").expect(t, 200, "")
}

func TestEmailSendFailureIsClear(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink), func(c *config.Config) { c.Email.SMTPPort = 1 })
	r := requestEmailToken(env, registerEmailURL, "x", "down@example.org", 1).expect(t, 500, "M_UNKNOWN")
	if r.str("error") != "could not send email" {
		t.Fatal(r.Raw)
	}
}

func TestRegisterWithPhoneNumber(t *testing.T) {
	gw := newSMSGateway(t)
	env := newEnv(t, func(c *config.Config) {
		c.SMSGateway = &config.SMSGateway{URL: gw.url, BearerToken: "gw-secret"}
		c.RegistrationsRequire3PID = []string{"msisdn"}
		c.EnableRegistrationWithoutVerification = false
	})
	first := env.do("POST", registerURL, `{"username":"phone","password":"pw-phone-1"}`).expect(t, 401, "")
	if jsonBody(first.Body["flows"]) != `[{"stages":["m.login.msisdn"]}]` {
		t.Fatalf("flows %s", first.Raw)
	}
	r := env.do("POST", "/_matrix/client/v3/register/msisdn/requestToken",
		`{"client_secret":"p1","country":"GB","phone_number":"07400 123456","send_attempt":1}`).expect(t, 200, "")
	submit := r.str("submit_url")
	if !strings.HasPrefix(submit, "https://matrix.example.org/_matrix/client/unstable/add_threepid/msisdn/submit_token") {
		t.Fatalf("submit_url %s", r.Raw)
	}
	gw.mu.Lock()
	msg, auth := gw.sent[0], gw.auth[0]
	gw.mu.Unlock()
	if msg["to"] != "+447400123456" || auth != "Bearer gw-secret" {
		t.Fatalf("gateway got %v %q", msg, auth)
	}
	code := codeRE.FindString(msg["text"])
	path := strings.TrimPrefix(submit, "https://matrix.example.org")
	if code != "000000" {
		env.do("POST", path, jsonBody(map[string]string{"sid": r.str("sid"), "client_secret": "p1", "token": "000000"})).expect(t, 400, "M_TOKEN_INCORRECT")
	}
	ok := env.do("POST", path, jsonBody(map[string]string{"sid": r.str("sid"), "client_secret": "p1", "token": code})).expect(t, 200, "")
	if ok.Body["success"] != true {
		t.Fatalf("code refused: %s", ok.Raw)
	}
	env.do("POST", path, jsonBody(map[string]string{"sid": r.str("sid"), "client_secret": "p1", "token": code})).expect(t, 400, "M_TOKEN_INCORRECT")
	reg := env.do("POST", registerURL, jsonBody(map[string]any{"auth": threepidAuth("m.login.msisdn", r.str("sid"), "p1", first.str("session"))})).expect(t, 200, "")
	list := env.do("GET", "/_matrix/client/v3/account/3pid", "", bearer(reg.str("access_token"))...)
	if !strings.Contains(list.Raw, `"address":"447400123456"`) || !strings.Contains(list.Raw, `"medium":"msisdn"`) {
		t.Fatalf("3pids %s", list.Raw)
	}
	env.do("POST", "/_matrix/client/v3/register/msisdn/requestToken",
		`{"client_secret":"p2","country":"GB","phone_number":"not a number","send_attempt":1}`).expect(t, 400, "M_INVALID_PARAM")
}

func TestThreepidSendLimits(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink), func(c *config.Config) { c.Rc3PIDValidation = ratelimit.Rate{PerSecond: 0.003, BurstCount: 2} })
	for i := 1; i <= 2; i++ {
		requestEmailToken(env, registerEmailURL, "lim", "inbox@example.org", i).expect(t, 200, "")
	}
	requestEmailToken(env, registerEmailURL, "lim", "inbox@example.org", 3).expect(t, 429, "M_LIMIT_EXCEEDED")
	// Per address: another client address cannot spam the same inbox.
	r := env.doFrom("10.8.0.1", "POST", registerEmailURL, `{"client_secret":"lim2","email":"inbox@example.org","send_attempt":1}`)
	r.expect(t, 429, "M_LIMIT_EXCEEDED")
	if sink.count() != 2 {
		t.Fatalf("%d mails", sink.count())
	}
}

func TestOperatorEmailTemplates(t *testing.T) {
	sink := newSMTPSink(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "registration.txt"), []byte("Custom {{.AppName}} text: {{.Link}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, emailConfig(sink), func(c *config.Config) {
		c.Email.TemplateDir = dir
		c.Email.Subjects.EmailValidation = "Welcome to %(app)s"
	})
	requestEmailToken(env, registerEmailURL, "t", "templated@example.org", 1).expect(t, 200, "")
	m := sink.last(t)
	if !strings.HasPrefix(m.Text, "Custom TestApp text: https://matrix.example.org/") || m.Subject != "Welcome to TestApp" {
		t.Fatalf("mail %+v", m)
	}
	if !strings.Contains(m.HTML, "Confirm my email address") {
		t.Fatalf("the built-in HTML template should remain: %q", m.HTML)
	}
}

func TestPhoneNumberDelegatedToIdentityServer(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.AccountThreepidDelegates.Msisdn = fakeIdentityServer(t) })
	first := env.do("POST", registerURL, `{"username":"delegated","password":"pw-del-1"}`).expect(t, 401, "")
	if !strings.Contains(jsonBody(first.Body["flows"]), `"m.login.msisdn"`) {
		t.Fatalf("flows %s", first.Raw)
	}
	r := env.do("POST", "/_matrix/client/v3/register/msisdn/requestToken",
		`{"client_secret":"is-secret","country":"GB","phone_number":"07400123456","send_attempt":1}`).expect(t, 200, "")
	if r.str("sid") != "is-sid-1" {
		t.Fatalf("requestToken %s", r.Raw)
	}
	path := strings.TrimPrefix(r.str("submit_url"), "https://matrix.example.org")
	env.do("POST", registerURL, jsonBody(map[string]any{"auth": threepidAuth("m.login.msisdn", "is-sid-1", "is-secret", first.str("session"))})).expect(t, 401, "M_UNAUTHORIZED")
	env.do("POST", path, `{"sid":"is-sid-1","client_secret":"is-secret","token":"000000"}`).expect(t, 400, "M_TOKEN_INCORRECT")
	if env.do("POST", path, `{"sid":"is-sid-1","client_secret":"is-secret","token":"246810"}`).Body["success"] != true {
		t.Fatal("right token refused")
	}
	reg := env.do("POST", registerURL, jsonBody(map[string]any{"auth": threepidAuth("m.login.msisdn", "is-sid-1", "is-secret", first.str("session"))})).expect(t, 200, "")
	list := env.do("GET", "/_matrix/client/v3/account/3pid", "", bearer(reg.str("access_token"))...)
	if !strings.Contains(list.Raw, `"address":"447400123456"`) {
		t.Fatalf("3pids %s", list.Raw)
	}
}

// TestDeprecatedPostAccount3PID: older clients add a validated address
// with POST /account/3pid and any of the spellings of its credentials.
func TestDeprecatedPostAccount3PID(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink))
	tok := env.register("oldclient", "pw-oldclient-1").str("access_token")
	for i, key := range []string{"three_pid_creds", "threePidCreds", "threepid_creds"} {
		secret := fmt.Sprintf("old%d", i)
		address := fmt.Sprintf("old%d@example.org", i)
		r := requestEmailToken(env, "/_matrix/client/v3/account/3pid/email/requestToken", secret, address, 1).expect(t, 200, "")
		body := jsonBody(map[string]any{key: map[string]any{"sid": r.str("sid"), "client_secret": secret, "id_server": "id.example.org"}, "bind": true})
		env.do("POST", "/_matrix/client/v3/account/3pid", body, bearer(tok)...).expect(t, 400, "M_THREEPID_AUTH_FAILED")
		validateLink(t, env, sink.last(t).link(t))
		env.do("POST", "/_matrix/client/v3/account/3pid", body, bearer(tok)...).expect(t, 200, "")
		if list := env.do("GET", "/_matrix/client/v3/account/3pid", "", bearer(tok)...); !strings.Contains(list.Raw, address) {
			t.Fatalf("%s: %s", key, list.Raw)
		}
	}
	env.do("POST", "/_matrix/client/v3/account/3pid", `{}`, bearer(tok)...).expect(t, 400, "M_MISSING_PARAM")
	env.do("POST", "/_matrix/client/v3/account/3pid", `{}`).expect(t, 401, "M_MISSING_TOKEN")
	// The address logs in.
	env.do("POST", loginURL, jsonBody(map[string]any{"type": "m.login.password", "medium": "email", "address": "old0@example.org",
		"password": "pw-oldclient-1"})).expect(t, 200, "")
}

// TestValidateOnGet: by default opening the link validates nothing; with
// email.validate_on_get, registration and add-3PID links validate when
// opened (and redirect to next_link), while password reset links still
// ask for the confirmation.
func TestValidateOnGet(t *testing.T) {
	sink := newSMTPSink(t)
	off := newEnv(t, emailConfig(sink))
	requestEmailToken(off, registerEmailURL, "g0", "g0@example.org", 1).expect(t, 200, "")
	link := sink.last(t).link(t)
	if _, page := off.page("GET", link, ""); !strings.Contains(page, `id="confirm"`) {
		t.Fatalf("page %s", page)
	}
	u, _ := url.Parse(link)
	if _, page := off.page("POST", u.Path, u.Query().Encode()); !strings.Contains(page, "has been validated") {
		t.Fatal("the GET validated the link")
	}

	env := newEnv(t, emailConfig(sink), func(c *config.Config) { c.Email.ValidateOnGet = true })
	requestEmailToken(env, registerEmailURL, "g1", "g1@example.org", 1).expect(t, 200, "")
	if _, page := env.page("GET", sink.last(t).link(t), ""); !strings.Contains(page, "has been validated") {
		t.Fatalf("registration link not validated on opening: %s", page)
	}
	env.do("POST", registerEmailURL, `{"client_secret":"g2","email":"g2@example.org","send_attempt":1,"next_link":"https://app.example.org/done"}`).expect(t, 200, "")
	rec := httptest.NewRecorder()
	env.server.ServeHTTP(rec, httptest.NewRequest("GET", sink.last(t).link(t), nil))
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "https://app.example.org/done" {
		t.Fatalf("redirect %d %q", rec.Code, rec.Header().Get("Location"))
	}
	// A password reset link still needs the button.
	tok := env.register("resetter", "pw-resetter-1").str("access_token")
	r := requestEmailToken(env, "/_matrix/client/v3/account/3pid/email/requestToken", "g3", "g3@example.org", 1).expect(t, 200, "")
	if _, page := env.page("GET", sink.last(t).link(t), ""); !strings.Contains(page, "has been validated") {
		t.Fatal("add-3PID link not validated on opening")
	}
	env.do("POST", "/_matrix/client/v3/account/3pid/add", jsonBody(map[string]any{"sid": r.str("sid"), "client_secret": "g3",
		"auth": passwordAuth("resetter", "pw-resetter-1", "")}), bearer(tok)...).expect(t, 200, "")
	requestEmailToken(env, "/_matrix/client/v3/account/password/email/requestToken", "g4", "g3@example.org", 1).expect(t, 200, "")
	if _, page := env.page("GET", sink.last(t).link(t), ""); !strings.Contains(page, `id="confirm"`) {
		t.Fatalf("a password reset link validated on opening: %s", page)
	}
}
