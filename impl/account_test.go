package impl_test

import (
	"context"
	"testing"

	"registrar/impl/config"
	"registrar/impl/passwords"
)

func TestChangePassword(t *testing.T) {
	env := newEnv(t)
	caller := env.register("olga", "pw-olga-old", map[string]any{"device_id": "CALLER"}).str("access_token")
	second := env.do("POST", loginURL, loginBody("olga", "pw-olga-old")).str("access_token")
	third := env.do("POST", loginURL, loginBody("olga", "pw-olga-old")).str("access_token")

	first := env.do("POST", passwordURL, `{"new_password":"pw-olga-new"}`, bearer(caller)...).expect(t, 401, "")
	if jsonBody(first.Body["flows"]) != `[{"stages":["m.login.password"]}]` {
		t.Fatalf("flows %s", first.Raw)
	}
	session := first.str("session")
	bad := env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-olga-new", "auth": passwordAuth("olga", "wrong", session)}), bearer(caller)...)
	bad.expect(t, 401, "M_FORBIDDEN")
	if bad.str("session") != session || bad.Body["flows"] == nil {
		t.Fatalf("a failed stage must answer the UIA body: %s", bad.Raw)
	}
	env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-olga-new", "auth": passwordAuth("olga", "pw-olga-old", session)}), bearer(caller)...).expect(t, 200, "")

	env.do("POST", loginURL, loginBody("olga", "pw-olga-old")).expect(t, 403, "M_FORBIDDEN")
	env.do("POST", loginURL, loginBody("olga", "pw-olga-new")).expect(t, 200, "")
	// logout_devices defaults to true: the others go, the caller stays.
	env.do("GET", whoamiURL, "", bearer(caller)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(second)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("GET", whoamiURL, "", bearer(third)...).expect(t, 401, "M_UNKNOWN_TOKEN")
}

func TestChangePasswordKeepingDevices(t *testing.T) {
	env := newEnv(t)
	caller := env.register("pia", "pw-pia-old").str("access_token")
	others := []string{
		env.do("POST", loginURL, loginBody("pia", "pw-pia-old")).str("access_token"),
		env.do("POST", loginURL, loginBody("pia", "pw-pia-old")).str("access_token"),
	}
	body := map[string]any{"new_password": "pw-pia-new", "logout_devices": false, "auth": passwordAuth("pia", "pw-pia-old", "")}
	env.do("POST", passwordURL, jsonBody(body), bearer(caller)...).expect(t, 200, "")
	for _, tok := range append(others, caller) {
		env.do("GET", whoamiURL, "", bearer(tok)...).expect(t, 200, "")
	}
	if ds, _ := env.store.Devices(context.Background(), "@pia:example.org"); len(ds) != 3 {
		t.Fatalf("devices %v", ds)
	}
}

func TestChangePasswordRefusals(t *testing.T) {
	env := newEnv(t, func(c *config.Config) {
		c.PasswordConfig.Policy = passwords.Policy{Enabled: true, MinimumLength: 12}
	})
	victim := env.register("quinn", "pw-quinn-long-1").str("access_token")
	attacker := env.register("rex", "pw-rex-long-1").str("access_token")
	// Proving another user's password does not authorise a change of one's own.
	r := env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-new-long-1", "auth": passwordAuth("rex", "pw-rex-long-1", "")}), bearer(victim)...)
	r.expect(t, 403, "M_FORBIDDEN")
	env.do("POST", loginURL, loginBody("quinn", "pw-quinn-long-1")).expect(t, 200, "")
	env.do("POST", loginURL, loginBody("rex", "pw-rex-long-1")).expect(t, 200, "")
	_ = attacker
	// Weak new password, refused before any UIA.
	env.do("POST", passwordURL, `{"new_password":"short"}`, bearer(victim)...).expect(t, 400, "M_WEAK_PASSWORD")
	// Without a token it is a password reset, which needs a 3PID stage.
	reset := env.do("POST", passwordURL, `{"new_password":"pw-new-long-1"}`).expect(t, 401, "")
	if jsonBody(reset.Body["flows"]) != `[{"stages":["m.login.email.identity"]}]` {
		t.Fatalf("reset flows %s", reset.Raw)
	}
	env.do("POST", passwordURL, `{"new_password":"pw-new-long-1"}`, bearer("nonsense")...).expect(t, 401, "M_UNKNOWN_TOKEN")
	// Guests may not.
	guest := env.do("POST", registerURL+"?kind=guest", `{}`).str("access_token")
	env.do("POST", passwordURL, `{"new_password":"pw-new-long-1"}`, bearer(guest)...).expect(t, 403, "M_GUEST_ACCESS_FORBIDDEN")

	off := newEnv(t, func(c *config.Config) { c.PasswordConfig.Enabled = false })
	tok := off.register("sam", "pw-sam-1").str("access_token")
	off.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "x", "auth": passwordAuth("sam", "pw-sam-1", "")}), bearer(tok)...).expect(t, 403, "M_FORBIDDEN")
}

func TestDeactivate(t *testing.T) {
	env := newEnv(t)
	tok := env.register("tara", "pw-tara-1").str("access_token")
	other := env.do("POST", loginURL, loginBody("tara", "pw-tara-1")).str("access_token")
	first := env.do("POST", deactivateURL, `{}`, bearer(tok)...).expect(t, 401, "")
	if jsonBody(first.Body["flows"]) != `[{"stages":["m.login.password"]}]` {
		t.Fatalf("flows %s", first.Raw)
	}
	r := env.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth("tara", "pw-tara-1", first.str("session"))}), bearer(tok)...).expect(t, 200, "")
	if r.str("id_server_unbind_result") != "success" {
		t.Fatalf("result %s", r.Raw)
	}
	for _, tk := range []string{tok, other} {
		env.do("GET", whoamiURL, "", bearer(tk)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	}
	env.do("POST", loginURL, loginBody("tara", "pw-tara-1")).expect(t, 403, "M_USER_DEACTIVATED")
	env.do("GET", "/_matrix/client/v3/register/available?username=tara", "").expect(t, 400, "M_USER_IN_USE")
	env.register("TARA", "pw-tara-2").expect(t, 400, "M_USER_IN_USE")
	acct, err := env.store.Account(context.Background(), "tara")
	if err != nil || !acct.Deactivated() || acct.PasswordHash != "" {
		t.Fatalf("account after deactivation: %+v %v", acct, err)
	}
}

func TestDeactivateWithErase(t *testing.T) {
	env := newEnv(t)
	tok := env.register("uma", "pw-uma-1").str("access_token")
	env.do("POST", deactivateURL, jsonBody(map[string]any{"erase": true, "auth": passwordAuth("uma", "pw-uma-1", "")}), bearer(tok)...).expect(t, 200, "")
	acct, _ := env.store.Account(context.Background(), "uma")
	if !acct.Erased || acct.DisplayName != "" {
		t.Fatalf("not erased: %+v", acct)
	}
}

func TestDeactivateRefusals(t *testing.T) {
	env := newEnv(t)
	victim := env.register("vera", "pw-vera-1").str("access_token")
	env.register("walt", "pw-walt-1")
	env.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth("walt", "pw-walt-1", "")}), bearer(victim)...).expect(t, 403, "M_FORBIDDEN")
	env.do("GET", whoamiURL, "", bearer(victim)...).expect(t, 200, "")
	env.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth("vera", "wrong", "")}), bearer(victim)...).expect(t, 401, "M_FORBIDDEN")
	env.do("POST", deactivateURL, `{}`).expect(t, 401, "M_MISSING_TOKEN")
	guest := env.do("POST", registerURL+"?kind=guest", `{}`).str("access_token")
	env.do("POST", deactivateURL, `{}`, bearer(guest)...).expect(t, 403, "M_GUEST_ACCESS_FORBIDDEN")

	off := newEnv(t, func(c *config.Config) { c.AllowDeactivation = false })
	tok := off.register("xena", "pw-xena-1").str("access_token")
	off.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth("xena", "pw-xena-1", "")}), bearer(tok)...).expect(t, 403, "M_FORBIDDEN")
	off.do("GET", whoamiURL, "", bearer(tok)...).expect(t, 200, "")
}
