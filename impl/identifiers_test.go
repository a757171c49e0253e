package impl_test

import (
	"context"
	"testing"

	"registrar/db"
	"registrar/impl/config"
	"registrar/impl/ratelimit"
)

// TestLoginByEmailAndPhone: the spec's identifier types and the deprecated
// forms Synapse maps, on /login and in the UIA password stage; an unknown
// address is answered as a wrong password is.
func TestLoginByEmailAndPhone(t *testing.T) {
	env := newEnv(t)
	tok := env.register("mailer", "pw-mailer-1").str("access_token")
	ctx := context.Background()
	for _, t3 := range []db.NewThreepid{{Medium: "email", Address: "mailer@example.org", ValidatedAt: 1},
		{Medium: "msisdn", Address: "447911123456", ValidatedAt: 1}} {
		if err := env.store.AddThreepid(ctx, "@mailer:example.org", t3); err != nil {
			t.Fatal(err)
		}
	}
	login := func(body map[string]any) response {
		body["type"] = "m.login.password"
		return env.do("POST", loginURL, jsonBody(body))
	}
	for name, body := range map[string]map[string]any{
		"m.id.thirdparty email":  {"identifier": map[string]any{"type": "m.id.thirdparty", "medium": "email", "address": "Mailer@Example.ORG"}, "password": "pw-mailer-1"},
		"m.id.thirdparty msisdn": {"identifier": map[string]any{"type": "m.id.thirdparty", "medium": "msisdn", "address": "447911123456"}, "password": "pw-mailer-1"},
		"m.id.phone":             {"identifier": map[string]any{"type": "m.id.phone", "country": "GB", "phone": "07911 123456"}, "password": "pw-mailer-1"},
		"deprecated medium":      {"medium": "email", "address": "mailer@example.org", "password": "pw-mailer-1"},
	} {
		r := login(body)
		if r.Status != 200 || r.str("user_id") != "@mailer:example.org" {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	wrong := login(map[string]any{"identifier": map[string]any{"type": "m.id.thirdparty", "medium": "email", "address": "mailer@example.org"}, "password": "nope"})
	unknown := login(map[string]any{"identifier": map[string]any{"type": "m.id.thirdparty", "medium": "email", "address": "nobody@example.org"}, "password": "nope"})
	badPhone := login(map[string]any{"identifier": map[string]any{"type": "m.id.phone", "country": "GB", "phone": "12"}, "password": "nope"})
	for _, r := range []response{wrong, unknown, badPhone} {
		r.expect(t, 403, "M_FORBIDDEN")
		if r.str("error") != wrong.str("error") {
			t.Errorf("answers differ: %q vs %q", r.str("error"), wrong.str("error"))
		}
	}
	login(map[string]any{"identifier": map[string]any{"type": "m.id.phone", "country": "GB"}, "password": "x"}).expect(t, 400, "M_MISSING_PARAM")
	login(map[string]any{"identifier": map[string]any{"type": "m.id.fancy"}, "password": "x"}).expect(t, 400, "M_UNKNOWN")

	// The UIA password stage takes the same identifiers.
	body := map[string]any{"new_password": "pw-mailer-2", "logout_devices": false, "auth": map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.thirdparty", "medium": "email", "address": "MAILER@example.org"}, "password": "pw-mailer-1"}}
	env.do("POST", passwordURL, jsonBody(body), bearer(tok)...).expect(t, 200, "")
	login(map[string]any{"identifier": map[string]any{"type": "m.id.phone", "country": "GB", "phone": "+44 7911 123456"}, "password": "pw-mailer-2"}).expect(t, 200, "")
}

// TestUnknownAddressCountsAsFailedAttempt: failures on an address are
// limited like failures on a user (rc_login.failed_attempts).
func TestUnknownAddressCountsAsFailedAttempt(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.RcLogin.FailedAttempts = ratelimit.Rate{PerSecond: 0.001, BurstCount: 2} })
	try := func() response {
		return env.do("POST", loginURL, jsonBody(map[string]any{"type": "m.login.password",
			"identifier": map[string]any{"type": "m.id.thirdparty", "medium": "email", "address": "ghost@example.org"}, "password": "nope"}))
	}
	try().expect(t, 403, "M_FORBIDDEN")
	try().expect(t, 403, "M_FORBIDDEN")
	try().expect(t, 429, "M_LIMIT_EXCEEDED")
}
