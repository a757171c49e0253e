package impl_test

import (
	"registrar/impl/config"
	"registrar/impl/ratelimit"
	"strconv"
	"testing"
	"time"
)

func TestRateLimitsAnswer429AndRecover(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.RcUsernameAvailability = ratelimit.Rate{PerSecond: 0.5, BurstCount: 2}
	})
	url := "/_matrix/client/v3/register/available?username=someone"
	env.doFrom("10.0.0.1", "GET", url, "").expect(t, 200, "")
	env.doFrom("10.0.0.1", "GET", url, "").expect(t, 200, "")
	r := env.doFrom("10.0.0.1", "GET", url, "").expect(t, 429, "M_LIMIT_EXCEEDED")
	ms, _ := r.Body["retry_after_ms"].(float64)
	if ms < 1000 || ms > 2000 || r.Header.Get("Retry-After") != "2" {
		t.Fatalf("retry_after_ms %v, Retry-After %q", r.Body["retry_after_ms"], r.Header.Get("Retry-After"))
	}
	// Another address has its own bucket.
	env.doFrom("10.0.0.2", "GET", url, "").expect(t, 200, "")
	env.clock.Advance(time.Duration(ms) * time.Millisecond)
	env.doFrom("10.0.0.1", "GET", url, "").expect(t, 200, "")
	env.doFrom("10.0.0.1", "GET", url, "").expect(t, 429, "M_LIMIT_EXCEEDED")
}

func TestRegistrationRateLimits(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.RcRegistration = ratelimit.Rate{PerSecond: 0.17, BurstCount: 3}
	})
	reg := func(ip, name string) response {
		return env.doFrom(ip, "POST", registerURL, jsonBody(map[string]any{"username": name, "password": "pw-" + name, "auth": map[string]any{"type": "m.login.dummy"}}))
	}
	for i := 0; i < 3; i++ {
		reg("10.1.0.1", "burst"+strconv.Itoa(i)).expect(t, 200, "")
	}
	reg("10.1.0.1", "burst3").expect(t, 429, "M_LIMIT_EXCEEDED")
	// UIA steps do not use the bucket up: only created accounts do.
	env.clock.Advance(6 * time.Second)
	for i := 0; i < 3; i++ {
		env.doFrom("10.1.0.1", "POST", registerURL, `{"username":"step","password":"pw"}`).expect(t, 401, "")
	}
	reg("10.1.0.1", "after").expect(t, 200, "")
	env.doFrom("10.1.0.1", "POST", registerURL+"?kind=guest", `{}`).expect(t, 429, "M_LIMIT_EXCEEDED")
	reg("10.1.0.2", "elsewhere").expect(t, 200, "")

	global := newEnv(t, func(c *config.Config) { c.RcRegistrationGlobal = config.GlobalRegistrationLimit{PerHour: 2} })
	for i, ip := range []string{"10.2.0.1", "10.2.0.2", "10.2.0.3"} {
		r := global.doFrom(ip, "POST", registerURL, jsonBody(map[string]any{"username": "g" + strconv.Itoa(i), "password": "pw-g", "auth": map[string]any{"type": "m.login.dummy"}}))
		if i < 2 {
			r.expect(t, 200, "")
		} else {
			r.expect(t, 429, "M_LIMIT_EXCEEDED")
			if ms := r.Body["retry_after_ms"].(float64); ms < 1000*1700 || ms > 1000*1800 {
				t.Fatalf("global retry_after_ms %v", ms)
			}
		}
	}
}

func TestLoginRateLimits(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.RcLogin.FailedAttempts = ratelimit.Rate{PerSecond: 0.17, BurstCount: 3}
		c.RcLogin.Address = ratelimit.Rate{PerSecond: 0.003, BurstCount: 8}
	})
	env.register("yuri", "pw-yuri-1").expect(t, 200, "")
	for i := 0; i < 3; i++ {
		env.doFrom("10.3.0.1", "POST", loginURL, loginBody("yuri", "wrong")).expect(t, 403, "M_FORBIDDEN")
	}
	// The account is now protected, even from another address and with the right password.
	env.doFrom("10.3.0.2", "POST", loginURL, loginBody("YURI", "pw-yuri-1")).expect(t, 429, "M_LIMIT_EXCEEDED")
	// Failed UIA password stages count too.
	tok := env.doFrom("10.3.0.3", "POST", registerURL, `{"username":"zoe","password":"pw-zoe-1","auth":{"type":"m.login.dummy"}}`).str("access_token")
	for i := 0; i < 3; i++ {
		env.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth("zoe", "wrong", "")}), bearer(tok)...).expect(t, 401, "M_FORBIDDEN")
	}
	env.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth("zoe", "pw-zoe-1", "")}), bearer(tok)...).expect(t, 429, "M_LIMIT_EXCEEDED")
	env.clock.Advance(6 * time.Second)
	env.doFrom("10.3.0.2", "POST", loginURL, loginBody("yuri", "pw-yuri-1")).expect(t, 200, "")
	// rc_login.address: 8 requests from one address, whatever the outcome.
	for i := 0; i < 4; i++ {
		env.doFrom("10.3.0.9", "POST", loginURL, loginBody("nobody"+strconv.Itoa(i), "x")).expect(t, 403, "M_FORBIDDEN")
	}
	for i := 0; i < 4; i++ {
		env.doFrom("10.3.0.9", "POST", loginURL, `{"type":"m.login.token"}`).expect(t, 400, "M_UNKNOWN")
	}
	env.doFrom("10.3.0.9", "POST", loginURL, loginBody("yuri", "pw-yuri-1")).expect(t, 429, "M_LIMIT_EXCEEDED")
}

func TestTokenValidityRateLimit(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.RcRegistrationTokenValidity = ratelimit.Rate{PerSecond: 0.1, BurstCount: 5} })
	url := "/_matrix/client/v1/register/m.login.registration_token/validity?token=guess"
	for i := 0; i < 5; i++ {
		env.doFrom("10.4.0.1", "GET", url, "").expect(t, 200, "")
	}
	env.doFrom("10.4.0.1", "GET", url, "").expect(t, 429, "M_LIMIT_EXCEEDED")
}

func TestTrustedProxies(t *testing.T) {
	limited := func(c *config.Config) { c.RcUsernameAvailability = ratelimit.Rate{PerSecond: 0.001, BurstCount: 1} }
	url := "/_matrix/client/v3/register/available?username=someone"
	xff := func(v string) []string { return []string{"X-Forwarded-For", v} }

	// Untrusted peers cannot pick their bucket with the header.
	env := newEnv(t, limited)
	env.doFrom("203.0.113.5", "GET", url, "", xff("198.51.100.1")...).expect(t, 200, "")
	env.doFrom("203.0.113.5", "GET", url, "", xff("198.51.100.2")...).expect(t, 429, "M_LIMIT_EXCEEDED")

	// Behind a trusted proxy, each client has its own bucket...
	proxied := newEnv(t, limited, func(c *config.Config) { c.TrustedProxies = []string{"10.9.0.0/16"} })
	proxied.doFrom("10.9.0.1", "GET", url, "", xff("198.51.100.1")...).expect(t, 200, "")
	proxied.doFrom("10.9.0.1", "GET", url, "", xff("198.51.100.2")...).expect(t, 200, "")
	proxied.doFrom("10.9.0.1", "GET", url, "", xff("198.51.100.1")...).expect(t, 429, "M_LIMIT_EXCEEDED")
	// ...and a client cannot spoof an address in front of the proxy's entry.
	proxied.doFrom("10.9.0.1", "GET", url, "", xff("198.51.100.7, 198.51.100.2")...).expect(t, 429, "M_LIMIT_EXCEEDED")
	// A peer outside the trusted range is itself the client.
	proxied.doFrom("203.0.113.9", "GET", url, "", xff("198.51.100.3")...).expect(t, 200, "")
	proxied.doFrom("203.0.113.9", "GET", url, "", xff("198.51.100.4")...).expect(t, 429, "M_LIMIT_EXCEEDED")
}

func TestLoginAccountLimitAndDailyCap(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.RcLogin.Account = ratelimit.Rate{PerSecond: 0.003, BurstCount: 2}
		c.RcRegistrationGlobal = config.GlobalRegistrationLimit{PerDay: 2}
	})
	env.doFrom("10.6.0.1", "POST", registerURL, `{"username":"acc","password":"pw-acc-1","auth":{"type":"m.login.dummy"}}`).expect(t, 200, "")
	env.doFrom("10.6.0.2", "POST", registerURL, `{"username":"acc2","password":"pw-acc-1","auth":{"type":"m.login.dummy"}}`).expect(t, 200, "")
	env.doFrom("10.6.0.3", "POST", registerURL, `{"username":"acc3","password":"pw-acc-1","auth":{"type":"m.login.dummy"}}`).expect(t, 429, "M_LIMIT_EXCEEDED")
	// Successful logins of one account, from any address.
	env.doFrom("10.6.1.1", "POST", loginURL, loginBody("acc", "pw-acc-1")).expect(t, 200, "")
	env.doFrom("10.6.1.2", "POST", loginURL, loginBody("ACC", "pw-acc-1")).expect(t, 200, "")
	env.doFrom("10.6.1.3", "POST", loginURL, loginBody("acc", "pw-acc-1")).expect(t, 429, "M_LIMIT_EXCEEDED")
	env.doFrom("10.6.1.3", "POST", loginURL, loginBody("acc2", "pw-acc-1")).expect(t, 200, "")
}
