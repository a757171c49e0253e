package impl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"registrar/impl/config"
	"registrar/impl/ratelimit"
)

// scrape reads the server's metrics: every sample of the registrar_
// families, keyed name{label="value",...} with labels sorted.
func (e *testEnv) scrape() (map[string]float64, string) {
	e.t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	e.server.Metrics().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	raw := rec.Body.String()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(raw))
	if err != nil {
		e.t.Fatalf("scrape does not parse: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		if !strings.HasPrefix(name, "registrar_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+`"`+l.GetValue()+`"`)
			}
			slices.Sort(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[strings.Replace(key, "{", "_count{", 1)] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out, raw
}

// deltas are the samples of families that changed between two scrapes.
func deltas(before, after map[string]float64, families ...string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		name, _, _ := strings.Cut(k, "{")
		if !slices.Contains(families, name) {
			continue
		}
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// scriptedEnv is a server that sends mail to sink and allows one
// username availability check.
func scriptedEnv(t *testing.T, sink *smtpSink) *testEnv {
	return newEnv(t, emailConfig(sink), func(c *config.Config) {
		c.RcUsernameAvailability = ratelimit.Rate{PerSecond: 0.001, BurstCount: 1}
	})
}

// scriptedSequence registers alice, fails a login, is refused by a rate
// limit, sends a validation email and asks for an unknown endpoint.
func scriptedSequence(t *testing.T, env *testEnv, sink *smtpSink) {
	t.Helper()
	env.register("alice", "correct horse").expect(t, 200, "")
	env.do("POST", "/_matrix/client/v3/login", loginBody("alice", "wrong horse")).expect(t, 403, "M_FORBIDDEN")
	env.do("GET", "/_matrix/client/r0/register/available?username=bob", "").expect(t, 200, "")
	env.do("GET", "/_matrix/client/v3/register/available?username=bob", "").expect(t, 429, "M_LIMIT_EXCEEDED")
	requestEmailToken(env, "/_matrix/client/v3/register/email/requestToken", "secret", "carol@example.org", 1).expect(t, 200, "")
	if sink.count() != 1 {
		t.Fatalf("%d mails sent", sink.count())
	}
	env.do("GET", "/_matrix/client/v3/no/such/endpoint", "").expect(t, 404, "M_UNRECOGNIZED")
}

func TestMetricsCountAScriptedSequenceExactly(t *testing.T) {
	sink := newSMTPSink(t)
	env := scriptedEnv(t, sink)
	before, _ := env.scrape()
	scriptedSequence(t, env, sink)
	after, _ := env.scrape()
	got := deltas(before, after,
		"registrar_http_requests_total", "registrar_http_request_duration_seconds_count",
		"registrar_registrations_total", "registrar_uia_sessions_started_total", "registrar_uia_sessions_completed_total",
		"registrar_uia_stage_failures_total", "registrar_logins_total", "registrar_rate_limited_total",
		"registrar_messages_sent_total", "registrar_message_send_duration_seconds_count",
		"registrar_password_hash_duration_seconds_count", "registrar_http_requests_in_flight")
	want := map[string]float64{
		`registrar_http_requests_total{errcode="",method="POST",route="/_matrix/client/v3/register",status="200"}`:                          1,
		`registrar_http_requests_total{errcode="M_FORBIDDEN",method="POST",route="/_matrix/client/v3/login",status="403"}`:                  1,
		`registrar_http_requests_total{errcode="",method="GET",route="/_matrix/client/v3/register/available",status="200"}`:                 1,
		`registrar_http_requests_total{errcode="M_LIMIT_EXCEEDED",method="GET",route="/_matrix/client/v3/register/available",status="429"}`: 1,
		`registrar_http_requests_total{errcode="",method="POST",route="/_matrix/client/v3/register/email/requestToken",status="200"}`:       1,
		`registrar_http_requests_total{errcode="M_UNRECOGNIZED",method="GET",route="other",status="404"}`:                                   1,
		`registrar_http_request_duration_seconds_count{method="POST",route="/_matrix/client/v3/register"}`:                                  1,
		`registrar_http_request_duration_seconds_count{method="POST",route="/_matrix/client/v3/login"}`:                                     1,
		`registrar_http_request_duration_seconds_count{method="GET",route="/_matrix/client/v3/register/available"}`:                         2,
		`registrar_http_request_duration_seconds_count{method="POST",route="/_matrix/client/v3/register/email/requestToken"}`:               1,
		`registrar_http_request_duration_seconds_count{method="GET",route="other"}`:                                                         1,
		`registrar_registrations_total{kind="user",outcome="success"}`:                                                                      1,
		`registrar_uia_sessions_started_total{}`:                                                  1,
		`registrar_uia_sessions_completed_total{}`:                                                1,
		`registrar_logins_total{outcome="M_FORBIDDEN",type="m.login.password"}`:                   1,
		`registrar_rate_limited_total{limiter="rc_username_availability"}`:                        1,
		`registrar_messages_sent_total{medium="email",outcome="success",template="registration"}`: 1,
		`registrar_message_send_duration_seconds_count{medium="email"}`:                           1,
		// One hash at registration, one verification of the wrong password.
		`registrar_password_hash_duration_seconds_count{}`: 2,
	}
	if !maps.Equal(got, want) {
		t.Errorf("deltas differ")
		for _, k := range slices.Sorted(maps.Keys(got)) {
			if want[k] != got[k] {
				t.Errorf("  got  %s %v (want %v)", k, got[k], want[k])
			}
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if _, ok := got[k]; !ok {
				t.Errorf("  missing %s %v", k, want[k])
			}
		}
	}
}

func TestMetricsLabelsNeverCarryUsersOrTokens(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.RcLogin.FailedAttempts = ratelimit.Rate{PerSecond: 0.001, BurstCount: 1} })
	var secrets []string
	for _, name := range []string{"zebracanary7781", "okapi-canary-4410"} {
		r := env.register(name, "pw-"+name).expect(t, 200, "")
		secrets = append(secrets, name, r.str("user_id"), r.str("access_token"), r.str("device_id"), "pw-"+name)
		env.do("GET", "/_matrix/client/v3/account/whoami", "", bearer(r.str("access_token"))...).expect(t, 200, "")
		env.do("GET", "/_matrix/client/v3/profile/"+r.str("user_id"), "")
		env.do("POST", "/_matrix/client/v3/login", loginBody(name, "wrong-"+name))
		env.do("POST", "/_matrix/client/v3/login", loginBody(name, "wrong-"+name))
	}
	env.do("GET", "/_matrix/client/v3/account/whoami", "", bearer("syt_notatoken_canary")...).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("POST", "/_matrix/client/v3/login", `{"type": "m.login.canarytype", "user": "x"}`)
	env.do("CANARYMETHOD", "/_matrix/client/v3/login", "")
	secrets = append(secrets, "syt_notatoken_canary", "canarytype", "CANARYMETHOD", "profile/@")
	_, raw := env.scrape()
	for _, s := range secrets {
		if strings.Contains(raw, s) {
			t.Errorf("the scrape contains %q", s)
		}
	}
	if !strings.Contains(raw, `registrar_logins_total{outcome="M_LIMIT_EXCEEDED",type="m.login.password"} 2`) ||
		!strings.Contains(raw, `registrar_logins_total{outcome="M_UNKNOWN",type="other"} 1`) {
		t.Errorf("login outcomes missing from\n%s", raw)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	env := newEnv(t)
	for _, path := range []string{"/health", "/readyz"} {
		r := env.doQuiet("GET", path, "")
		if r.Status != 200 || r.Raw != "OK" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: %d %q %q", path, r.Status, r.Header.Get("Content-Type"), r.Raw)
		}
	}
	if err := env.store.Close(); err != nil {
		t.Fatal(err)
	}
	env.do("GET", "/readyz", "").expect(t, 503, "M_UNKNOWN")
	if r := env.doQuiet("GET", "/health", ""); r.Status != 200 || r.Raw != "OK" {
		t.Errorf("/health with the database gone: %d %q", r.Status, r.Raw)
	}
}

func TestReadinessIsDegradedNotFailedWithoutRedis(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.Redis = config.Redis{Enabled: true, Host: "127.0.0.1", Port: 1}
	})
	r := env.doQuiet("GET", "/readyz", "")
	if r.Status != 200 || !strings.HasPrefix(r.Raw, "OK (degraded: Redis does not answer") {
		t.Errorf("%d %q", r.Status, r.Raw)
	}
}

// logLine is one JSON log line.
type logLine map[string]any

func logLines(t *testing.T, b *bytes.Buffer) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var line logLine
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		out = append(out, line)
	}
	return out
}

func TestLogLinesCarryTheRequestIDAndOperation(t *testing.T) {
	sink := newSMTPSink(t)
	var logs bytes.Buffer
	env := newEnv(t, emailConfig(sink), func(c *config.Config) { c.AccessLog = true })
	env.logs = &logs
	env.open()

	requestEmailToken(env, "/_matrix/client/v3/register/email/requestToken", "secret", "dave@example.org", 1).expect(t, 200, "")
	refused := env.do("POST", "/_matrix/client/v3/register/email/requestToken", `{"client_secret": "secret"}`).expect(t, 400, "M_BAD_JSON")
	env.doQuiet("GET", "/health", "")
	var sent, access, refusal, health logLine
	for _, l := range logLines(t, &logs) {
		switch {
		case l["msg"] == "validation token sent":
			sent = l
		case l["msg"] == "request" && l["route"] == "/_matrix/client/v3/register/email/requestToken" && l["status"] == float64(200):
			access = l
		case l["msg"] == "request" && l["route"] == "/_matrix/client/v3/register/email/requestToken":
			refusal = l
		case l["msg"] == "request" && l["route"] == "/health":
			health = l
		}
	}
	if access == nil || access["request_id"] == "" || access["request_id"] == nil {
		t.Fatalf("access line %v", access)
	}
	for name, l := range map[string]logLine{"the handler's line": sent, "the access log line": access} {
		if l == nil || l["request_id"] != access["request_id"] || l["operation"] != "requestTokenToRegisterEmail" {
			t.Errorf("%s: %v (request %s)", name, l, access["request_id"])
		}
	}
	if id := refused.Header.Get("X-Request-Id"); id == "" || refusal == nil || refusal["request_id"] != id || refusal["errcode"] != "M_BAD_JSON" ||
		id == access["request_id"] {
		t.Errorf("the refusal's X-Request-Id %q and its line %v", id, refusal)
	}
	if access["status"] != float64(200) || access["level"] != "INFO" {
		t.Errorf("access line %v", access)
	}
	if health == nil || health["level"] != "DEBUG" || health["operation"] != "getHealth" {
		t.Errorf("/health is logged %v, want at debug level", health)
	}
}

// TestMetricsCountSessionsLoginsAndRefusals: the counters the scripted
// sequence does not reach, each driven through the HTTP stack.
func TestMetricsCountSessionsLoginsAndRefusals(t *testing.T) {
	env := newEnv(t)
	before, _ := env.scrape()

	reg := env.register("rita", "pw-rita-1", map[string]any{"refresh_token": true}).expect(t, 200, "")
	refreshed := env.do("POST", "/_matrix/client/v3/refresh", jsonBody(map[string]any{"refresh_token": reg.str("refresh_token")})).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(refreshed.str("access_token"))...).expect(t, 200, "")
	reused := env.doQuiet("POST", "/_matrix/client/v3/refresh", jsonBody(map[string]any{"refresh_token": reg.str("refresh_token")}))
	if reused.Status != 401 {
		t.Fatalf("reused refresh token: %d %s", reused.Status, reused.Raw)
	}
	other := env.do("POST", loginURL, loginBody("rita", "pw-rita-1")).expect(t, 200, "").str("access_token")
	env.do("POST", "/_matrix/client/v3/logout", "", bearer(other)...).expect(t, 200, "")
	third := env.do("POST", loginURL, loginBody("rita", "pw-rita-1")).expect(t, 200, "").str("access_token")
	env.do("POST", "/_matrix/client/v3/logout/all", "", bearer(third)...).expect(t, 200, "")
	tok := env.do("POST", loginURL, loginBody("rita", "pw-rita-1")).expect(t, 200, "").str("access_token")
	first := env.do("POST", deactivateURL, `{}`, bearer(tok)...).expect(t, 401, "")
	env.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth("rita", "wrong", first.str("session"))}), bearer(tok)...).
		expect(t, 401, "M_FORBIDDEN")
	env.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth("rita", "pw-rita-1", first.str("session"))}), bearer(tok)...).
		expect(t, 200, "")
	env.do("POST", loginURL, loginBody("rita", "pw-rita-1")).expect(t, 403, "M_USER_DEACTIVATED")
	env.do("POST", registerURL, `{"username": "`+strings.Repeat("x", 70<<10)+`"}`).expect(t, 413, "M_TOO_LARGE")

	after, _ := env.scrape()
	got := deltas(before, after, "registrar_refreshes_total", "registrar_refresh_token_reuses_total", "registrar_logouts_total",
		"registrar_logins_total", "registrar_uia_stage_failures_total", "registrar_http_request_body_too_large_total")
	want := map[string]float64{
		`registrar_refreshes_total{outcome="success"}`:                                       1,
		`registrar_refreshes_total{outcome="` + reused.str("errcode") + `"}`:                 1,
		`registrar_refresh_token_reuses_total{}`:                                             1,
		`registrar_logouts_total{kind="device"}`:                                             1,
		`registrar_logouts_total{kind="all"}`:                                                1,
		`registrar_logins_total{outcome="success",type="m.login.password"}`:                  3,
		`registrar_logins_total{outcome="M_USER_DEACTIVATED",type="m.login.password"}`:       1,
		`registrar_uia_stage_failures_total{errcode="M_FORBIDDEN",stage="m.login.password"}`: 1,
		`registrar_http_request_body_too_large_total{}`:                                      1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("deltas\n got  %v\n want %v", got, want)
	}
}

// TestMetricsCountTokensCaptchaAndExpiredSessions: registration token
// uses and exhaustion, captcha outcomes, and sessions the sweep removes.
func TestMetricsCountTokensCaptchaAndExpiredSessions(t *testing.T) {
	sv := newSiteverify(t)
	env := newEnv(t, tokenRequired, captchaConfig(sv))
	admin := env.adminToken("root")
	token := env.newToken(admin, `{"uses_allowed": 1}`)
	before, _ := env.scrape()

	s := env.do("POST", registerURL, `{"username": "tom", "password": "pw-tom-1"}`).expect(t, 401, "").str("session")
	env.do("POST", registerURL, stage("m.login.registration_token", s, map[string]any{"token": token})).expect(t, 401, "")
	env.do("POST", registerURL, stage("m.login.recaptcha", s, map[string]any{"response": "bad"})).expect(t, 401, "M_UNAUTHORIZED")
	env.do("POST", registerURL, stage("m.login.recaptcha", s, map[string]any{"response": "good"})).expect(t, 401, "")
	env.do("POST", registerURL, stage("m.login.dummy", s)).expect(t, 200, "")

	abandoned := env.do("POST", registerURL, `{"username": "una", "password": "pw-una-1"}`).expect(t, 401, "").str("session")
	env.do("POST", registerURL, stage("m.login.recaptcha", abandoned, map[string]any{"response": "good"})).expect(t, 401, "")
	env.clock.Advance(49 * time.Hour)
	env.server.Sweep(context.Background())

	after, _ := env.scrape()
	got := deltas(before, after, "registrar_registration_token_uses_total", "registrar_registration_tokens_exhausted_total",
		"registrar_captcha_verifications_total", "registrar_uia_sessions_expired_total", "registrar_uia_sessions_completed_total",
		"registrar_registrations_total")
	want := map[string]float64{
		`registrar_registration_token_uses_total{}`:                    1,
		`registrar_registration_tokens_exhausted_total{}`:              1,
		`registrar_captcha_verifications_total{outcome="failure"}`:     1,
		`registrar_captcha_verifications_total{outcome="success"}`:     2,
		`registrar_uia_sessions_completed_total{}`:                     1,
		`registrar_uia_sessions_expired_total{}`:                       2,
		`registrar_registrations_total{kind="user",outcome="success"}`: 1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("deltas\n got  %v\n want %v", got, want)
	}
}
