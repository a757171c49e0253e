package impl_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"registrar/impl/config"
	"registrar/impl/passwords"
	"registrar/impl/ratelimit"
	"registrar/impl/uia"
	"registrar/impl/web"
)

// TestCompletedSessionIsBoundToItsUser: a session one user completed is
// worthless to another user, on every re-authenticating endpoint.
func TestCompletedSessionIsBoundToItsUser(t *testing.T) {
	for _, url := range []string{passwordURL, deactivateURL} {
		t.Run(url, func(t *testing.T) {
			env := newEnv(t)
			a := env.register("alice", "pw-alice-1").str("access_token")
			b := env.register("bob", "pw-bob-1").str("access_token")
			body := map[string]any{"new_password": "pw-bob-2", "logout_devices": false}
			first := env.do("POST", url, jsonBody(body), bearer(b)...).expect(t, 401, "")
			session := first.str("session")
			// A takes B's not yet completed session.
			env.do("POST", url, jsonBody(map[string]any{"new_password": "owned", "auth": map[string]any{"session": session}}), bearer(a)...).
				expect(t, 403, "M_FORBIDDEN")
			body["auth"] = passwordAuth("bob", "pw-bob-1", session)
			env.do("POST", url, jsonBody(body), bearer(b)...).expect(t, 200, "")
			// A takes B's completed session.
			r := env.do("POST", url, jsonBody(map[string]any{"new_password": "owned", "logout_devices": false, "auth": map[string]any{"session": session}}), bearer(a)...)
			if r.Status == 200 {
				t.Fatalf("another user's completed session authorised %s: %s", url, r.Raw)
			}
			env.do("GET", whoamiURL, "", bearer(a)...).expect(t, 200, "")
			env.do("POST", loginURL, loginBody("alice", "pw-alice-1")).expect(t, 200, "")
		})
	}
}

// TestCompletedSessionIsConsumed: a protected operation runs once per
// session; replaying the session id runs nothing.
func TestCompletedSessionIsConsumed(t *testing.T) {
	env := newEnv(t)
	tok := env.register("carol", "pw-carol-1").str("access_token")
	session := env.do("POST", passwordURL, `{"new_password":"pw-carol-2"}`, bearer(tok)...).expect(t, 401, "").str("session")
	env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-carol-2", "logout_devices": false,
		"auth": passwordAuth("carol", "pw-carol-1", session)}), bearer(tok)...).expect(t, 200, "")
	replay := env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "attacker-pw", "logout_devices": false,
		"auth": map[string]any{"session": session}}), bearer(tok)...)
	if replay.Status == 200 {
		t.Fatalf("replayed session changed the password again: %s", replay.Raw)
	}
	env.do("POST", loginURL, loginBody("carol", "pw-carol-2")).expect(t, 200, "")
	env.do("POST", loginURL, loginBody("carol", "attacker-pw")).expect(t, 403, "M_FORBIDDEN")
}

// TestStartingSessionsIsChargedAndWritesNothing: a flood of first
// /register requests from one address meets 429s and leaves no rows; the
// sessions in progress of one address are capped, and so are starts that
// keep a password.
func TestStartingSessionsIsChargedAndWritesNothing(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.RcUIAStart = ratelimit.Rate{PerSecond: 0.5, BurstCount: 20}
		c.UIAuth.MaxSessionsPerAddress = 3
		c.RegistrationTerms = map[string]uia.TermsPolicy{"tos": {Version: "1",
			Translations: map[string]uia.TermsDocument{"en": {Name: "Terms", URL: "https://example.org/tos"}}}}
	})
	limited := 0
	var sessions []string
	for i := 0; i < 100; i++ {
		r := env.doFrom("203.0.113.9", "POST", registerURL, `{"username":"flood"}`)
		switch r.Status {
		case 401:
			sessions = append(sessions, r.str("session"))
		case 429:
			limited++
		default:
			t.Fatalf("unexpected %d %s", r.Status, r.Raw)
		}
	}
	if len(sessions) != 20 || limited != 80 || env.tableDump("uia_sessions") != "" {
		t.Fatalf("%d sessions, %d refused, rows %q", len(sessions), limited, env.tableDump("uia_sessions"))
	}
	// Another address, in the same IPv6 /64 or not, has its own budget.
	env.doFrom("[2001:db8::1]", "POST", registerURL, `{}`).expect(t, 401, "")
	// Progress is stored, up to the cap per address.
	for i, sess := range sessions[:4] {
		r := env.doFrom("203.0.113.9", "POST", registerURL, stage("m.login.terms", sess))
		if i < 3 {
			r.expect(t, 401, "")
		} else {
			r.expect(t, 429, "M_LIMIT_EXCEEDED")
		}
	}
	// A start that keeps a password is stored (sealed), within the same
	// cap: this address has 3 in progress, another has none.
	env.clock.Advance(time.Minute) // the starts' budget refills
	r := env.doFrom("203.0.113.9", "POST", registerURL, `{"username":"flood","password":"pw-flood-1"}`)
	r.expect(t, 429, "M_LIMIT_EXCEEDED")
	if ms, _ := r.Body["retry_after_ms"].(float64); ms < float64((47 * time.Hour).Milliseconds()) {
		t.Fatalf("retry_after_ms %v: the first session in progress frees a slot only when it expires (48 h)", r.Body["retry_after_ms"])
	}
	env.doFrom("203.0.113.10", "POST", registerURL, `{"username":"flood","password":"pw-flood-1"}`).expect(t, 401, "")
	// A session whose flow is complete frees its slot.
	env.doFrom("203.0.113.9", "POST", registerURL, stage("m.login.dummy", sessions[0])).expect(t, 400, "M_MISSING_PARAM")
	env.doFrom("203.0.113.9", "POST", registerURL, `{"username":"flood","password":"pw-flood-1"}`).expect(t, 401, "")
	if dump := env.tableDump("uia_sessions"); strings.Contains(dump, "pw-flood-1") || strings.Count(dump, "\n") != 5 {
		t.Fatalf("stored sessions: %s", dump)
	}
}

// TestLoginRacingPasswordChangeDoesNotSurvive races logins with the old
// password against a change with logout_devices: no token those logins
// got may work once the change has returned.
func TestLoginRacingPasswordChangeDoesNotSurvive(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.PasswordConfig.Algorithm = "bcrypt"; c.BcryptRounds = 5 })
	for trial := 0; trial < raceTrials; trial++ {
		name := fmt.Sprintf("racer%d", trial)
		caller := env.register(name, "pw-old-1").str("access_token")
		results := concurrently(5, func(i int) response {
			if i == 0 {
				return env.doQuiet("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-new-1",
					"auth": passwordAuth(name, "pw-old-1", "")}), bearer(caller)...)
			}
			return env.doQuiet("POST", loginURL, loginBody(name, "pw-old-1"))
		})
		if results[0].Status != 200 {
			t.Fatalf("trial %d: password change %d %s", trial, results[0].Status, results[0].Raw)
		}
		for _, r := range results[1:] {
			if r.Status == 200 {
				if w := env.do("GET", whoamiURL, "", bearer(r.str("access_token"))...); w.Status != 401 {
					t.Fatalf("trial %d: a login with the old password survived the change: %d", trial, w.Status)
				}
			} else if r.Status != 403 {
				t.Fatalf("trial %d: login %d %s", trial, r.Status, r.Raw)
			}
		}
		env.do("GET", whoamiURL, "", bearer(caller)...).expect(t, 200, "")
	}
}

// TestLoginRacingDeactivationLeavesNothing races logins against
// deactivation: afterwards the account has no device and no token.
func TestLoginRacingDeactivationLeavesNothing(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.PasswordConfig.Algorithm = "bcrypt"; c.BcryptRounds = 5 })
	for trial := 0; trial < raceTrials; trial++ {
		name := fmt.Sprintf("leaver%d", trial)
		tok := env.register(name, "pw-leaver-1").str("access_token")
		results := concurrently(5, func(i int) response {
			if i == 0 {
				return env.doQuiet("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth(name, "pw-leaver-1", "")}), bearer(tok)...)
			}
			return env.doQuiet("POST", loginURL, loginBody(name, "pw-leaver-1"))
		})
		if results[0].Status != 200 {
			t.Fatalf("trial %d: deactivation %d %s", trial, results[0].Status, results[0].Raw)
		}
		userID := "@" + name + ":example.org"
		if ds, err := env.store.Devices(context.Background(), userID); err != nil || len(ds) != 0 {
			t.Fatalf("trial %d: devices left on a deactivated account: %v %v", trial, ds, err)
		}
		if dump := env.tableDump("access_tokens"); strings.Contains(dump, userID) {
			t.Fatalf("trial %d: tokens left on a deactivated account", trial)
		}
	}
}

// TestUnknownUserCostsWhatAWrongPasswordCosts: a login to an unknown
// user checks the password against exactly one hash of the configured
// algorithm and cost, as a wrong password for a known user does, so that
// timing tells nothing (counted through the hasher, not timed: the timing
// itself is BenchmarkLoginWrongPassword). Both algorithms, at
// non-default costs.
func TestUnknownUserCostsWhatAWrongPasswordCosts(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		mutate     func(*config.Config)
	}{
		{"bcrypt", `{algorithm="bcrypt",cost="8"}`, func(c *config.Config) { c.PasswordConfig.Algorithm = "bcrypt"; c.BcryptRounds = 8 }},
		{"argon2id", `{algorithm="argon2id",cost="m=4096,t=4,p=1"}`, func(c *config.Config) {
			c.PasswordConfig.Argon2 = passwords.Argon2Config{MemoryKiB: 4096, Iterations: 4, Parallelism: 1}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, tc.mutate)
			env.register("known", "pw-known-1").expect(t, 200, "")
			env.do("POST", loginURL, loginBody("known", "pw-known-1")).expect(t, 200, "")
			for _, user := range []string{"known", "unknown", "@unknown:example.org", "@known:elsewhere.org", "nobody@example.org"} {
				before, _ := env.scrape()
				env.do("POST", loginURL, loginBody(user, "wrong-password")).expect(t, 403, "M_FORBIDDEN")
				after, _ := env.scrape()
				var checked []string
				for key, v := range after {
					if strings.HasPrefix(key, "registrar_password_verifications_total") {
						for n := before[key]; n < v; n++ {
							checked = append(checked, strings.TrimPrefix(key, "registrar_password_verifications_total"))
						}
					}
				}
				if len(checked) != 1 || checked[0] != tc.want {
					t.Errorf("login as %q checked the password against %v, want one hash %s", user, checked, tc.want)
				}
			}
		})
	}
}

// TestMalformedQueryStringsAreInvalidParams sends every operation a query
// string that does not decode: a 400 in the operation's error form
// (M_INVALID_PARAM, an OAuth invalid_request, an HTML page), never a
// 500; an operation switched off answers 404 first.
func TestMalformedQueryStringsAreInvalidParams(t *testing.T) {
	env := newEnv(t)
	token := env.adminToken("queryadmin")
	for _, op := range specOperations(t) {
		for _, q := range []string{"%zz", "session=%zz", "sid=%zz&client_secret=x&token=y", "a;b"} {
			request := op.method + " " + op.path + "?" + q
			r := env.doQuiet(op.method, op.path+"?"+q, `{}`, bearer(token)...)
			if r.Status == 404 && op.op.Extensions["x-registrar-legacy-client-api"] == true {
				continue // legacy_client_apis is off
			}
			checkDeclaredResponse(t, op, request, r)
			switch {
			case r.Status != 400:
				t.Fatalf("%s: %d %s", request, r.Status, r.Raw)
			case r.notJSON:
			case r.str("errcode") != "M_INVALID_PARAM" && r.str("error") != "invalid_request":
				t.Fatalf("%s: %s", request, r.Raw)
			}
		}
	}
}

// TestPagesSendSecurityHeaders: every HTML page sends a CSP without
// unsafe-inline that still allows its own inline style and script, and
// forbids framing, referrers and sniffing.
func TestPagesSendSecurityHeaders(t *testing.T) {
	sv := newSiteverify(t)
	env := newEnv(t, captchaConfig(sv), func(c *config.Config) {
		c.RegistrationTerms = map[string]uia.TermsPolicy{"tos": {Version: "1",
			Translations: map[string]uia.TermsDocument{"en": {Name: "Terms", URL: "https://example.org/tos"}}}}
	})
	session := env.do("POST", registerURL, `{"username":"paged","password":"pw-paged-1"}`).expect(t, 401, "").str("session")
	for _, tc := range []struct{ method, path, form, script string }{
		{"GET", "/_matrix/client/v3/auth/m.login.terms/fallback/web?session=" + session, "", ""},
		{"POST", "/_matrix/client/v3/auth/m.login.terms/fallback/web?session=" + session, "accept=yes", "authDone"},
		{"GET", "/_matrix/client/v3/auth/m.login.recaptcha/fallback/web?session=" + session, "", ""},
		{"GET", "/_matrix/client/unstable/registration/email/submit_token?sid=a&client_secret=b&token=c", "", ""},
		{"POST", "/_matrix/client/unstable/registration/email/submit_token", "sid=a&client_secret=b&token=c", ""},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.form))
		if tc.form != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		env.server.ServeHTTP(rec, req)
		h := rec.Header()
		csp := h.Get("Content-Security-Policy")
		if rec.Code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, rec.Code, rec.Body.String())
		}
		if csp == "" || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			!strings.Contains(csp, "style-src 'self'") || h.Get("X-Frame-Options") != "DENY" ||
			h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: headers %v", tc.method, tc.path, h)
		}
		// The page's style is registrar's own sheet, nothing inline.
		if body := rec.Body.String(); !strings.Contains(body, `<link rel="stylesheet" href="`+web.StylePath+"?v=") ||
			strings.Contains(body, "<style") || strings.Contains(body, " style=") {
			t.Errorf("%s %s: the page's style is not the served sheet", tc.method, tc.path)
		}
		if tc.script != "" {
			_, rest, _ := strings.Cut(rec.Body.String(), "<script>")
			script, _, _ := strings.Cut(rest, "</script>")
			if !strings.Contains(script, tc.script) || !strings.Contains(csp, web.Hash(script)) {
				t.Errorf("%s %s: inline script %q not allowed by hash: %s", tc.method, tc.path, script, csp)
			}
		}
	}
}

// TestNextLinkRules: a next_link outside next_link_domain_whitelist, or
// not http(s), is refused.
func TestNextLinkRules(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink), func(c *config.Config) { c.NextLinkDomainWhitelist = &[]string{"app.example.org"} })
	for link, status := range map[string]int{
		"https://app.example.org/done": 200, "https://evil.example/done": 400, "javascript:alert(1)": 400, "file:///etc/passwd": 400,
	} {
		r := env.do("POST", registerEmailURL, jsonBody(map[string]any{"client_secret": "nl" + fmt.Sprint(status), "email": "next@example.org",
			"send_attempt": 1, "next_link": link}))
		if r.Status != status {
			t.Errorf("%s: %d %s", link, r.Status, r.Raw)
		}
	}
}
