package impl_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"registrar/db"
	"registrar/impl/config"
)

const (
	lockURL    = "/_matrix/client/v1/admin/lock/"
	suspendURL = "/_matrix/client/v1/admin/suspend/"
)

func TestLockingKeepsTokensButRefusesEverythingButLogout(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.RefreshableAccessTokenLifetime = &config.Duration{Duration: time.Hour} })
	admin := env.adminToken("root")
	reg := env.register("lou", "pw-lou-1", map[string]any{"refresh_token": true})
	lou, refresh := reg.str("access_token"), reg.str("refresh_token")
	other := env.do("POST", loginURL, loginBody("lou", "pw-lou-1")).str("access_token")
	env.do("GET", whoamiURL, "", bearer(lou)...).expect(t, 200, "") // cached

	if r := env.do("GET", lockURL+"@lou:example.org", "", bearer(admin)...).expect(t, 200, ""); r.Body["locked"] != false {
		t.Fatalf("lock state %s", r.Raw)
	}
	if r := env.do("PUT", lockURL+"@lou:example.org", `{"locked":true}`, bearer(admin)...).expect(t, 200, ""); r.Body["locked"] != true {
		t.Fatalf("lock %s", r.Raw)
	}
	for _, req := range []struct{ method, path, body string }{
		{"GET", whoamiURL, ""},
		{"GET", "/_matrix/client/v3/devices", ""},
		{"GET", "/_matrix/client/v3/capabilities", ""},
		{"POST", passwordURL, `{"new_password":"pw-lou-2"}`},
		{"GET", "/_matrix/client/v3/account/3pid", ""},
	} {
		r := env.do(req.method, req.path, req.body, bearer(lou)...).expect(t, 401, "M_USER_LOCKED")
		if r.Body["soft_logout"] != true {
			t.Fatalf("%s %s: no soft_logout: %s", req.method, req.path, r.Raw)
		}
	}
	// Login after the right password, and refresh, are refused too; a
	// wrong password says nothing of the lock.
	env.do("POST", loginURL, loginBody("lou", "pw-lou-1")).expect(t, 401, "M_USER_LOCKED")
	env.do("POST", loginURL, loginBody("lou", "wrong")).expect(t, 403, "M_FORBIDDEN")
	env.do("POST", refreshURL, jsonBody(map[string]any{"refresh_token": refresh})).expect(t, 401, "M_USER_LOCKED")
	if !strings.Contains(env.tableDump("refresh_tokens"), "@lou:example.org") {
		t.Fatal("locking deleted the refresh token")
	}

	// Unlocking restores the tokens; the refresh token still works.
	env.do("PUT", lockURL+"@lou:example.org", `{"locked":false}`, bearer(admin)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(lou)...).expect(t, 200, "")
	env.do("POST", refreshURL, jsonBody(map[string]any{"refresh_token": refresh})).expect(t, 200, "")

	// A locked account may log out.
	env.do("PUT", lockURL+"@lou:example.org", `{"locked":true}`, bearer(admin)...).expect(t, 200, "")
	env.do("POST", "/_matrix/client/v3/logout", "", bearer(other)...).expect(t, 200, "")
	env.do("POST", "/_matrix/client/v3/logout/all", "", bearer(lou)...).expect(t, 200, "")
	env.do("PUT", lockURL+"@lou:example.org", `{"locked":false}`, bearer(admin)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(other)...).expect(t, 401, "M_UNKNOWN_TOKEN")

	// The Synapse admin API shows and sets the same lock.
	env.do("PUT", adminV2Users+"@lou:example.org", `{"locked":true}`, bearer(admin)...).expect(t, 200, "")
	if r := env.do("GET", adminV2Users+"@lou:example.org", "", bearer(admin)...); r.Body["locked"] != true {
		t.Fatalf("admin view %s", r.Raw)
	}
	env.do("POST", loginURL, loginBody("lou", "pw-lou-1")).expect(t, 401, "M_USER_LOCKED")
}

func TestModerationEndpointsRules(t *testing.T) {
	env := newEnv(t)
	admin := env.adminToken("root")
	other := env.adminToken("second")
	env.register("sam", "pw-sam-1")
	env.register("gone", "pw-gone-1")
	env.do("POST", "/_synapse/admin/v1/deactivate/@gone:example.org", `{}`, bearer(admin)...).expect(t, 200, "")
	for _, base := range []string{lockURL, suspendURL} {
		field := map[string]string{lockURL: "locked", suspendURL: "suspended"}[base]
		on := `{"` + field + `":true}`
		env.do("PUT", base+"@root:example.org", on, bearer(admin)...).expect(t, 403, "M_FORBIDDEN")
		env.do("PUT", base+"@second:example.org", on, bearer(admin)...).expect(t, 403, "M_FORBIDDEN")
		env.do("GET", base+"@second:example.org", "", bearer(admin)...).expect(t, 200, "")
		env.do("GET", base+"@gone:example.org", "", bearer(admin)...).expect(t, 404, "M_NOT_FOUND")
		env.do("PUT", base+"@sam:elsewhere.example", on, bearer(admin)...).expect(t, 400, "M_INVALID_PARAM")
		env.do("PUT", base+"@sam:example.org", `{}`, bearer(admin)...).expect(t, 400, "M_BAD_JSON")
		r := env.do("PUT", base+"@sam:example.org", on, bearer(other)...).expect(t, 200, "")
		if r.Body[field] != true {
			t.Fatalf("%s %s", base, r.Raw)
		}
		if r := env.do("GET", base+"@sam:example.org", "", bearer(admin)...); r.Body[field] != true {
			t.Fatalf("%s state %s", base, r.Raw)
		}
		env.do("PUT", base+"@sam:example.org", `{"`+field+`":false}`, bearer(admin)...).expect(t, 200, "")
	}
	audit := env.tableDump("admin_audit")
	for _, action := range []string{"lock", "unlock", "suspend", "unsuspend"} {
		if !strings.Contains(audit, action) {
			t.Fatalf("no %s in the audit:\n%s", action, audit)
		}
	}
	// The capability shows to admins only.
	sam := env.do("POST", loginURL, loginBody("sam", "pw-sam-1")).str("access_token")
	if r := env.do("GET", "/_matrix/client/v3/capabilities", "", bearer(sam)...); r.Body["capabilities"].(map[string]any)["m.account_moderation"] != nil {
		t.Fatalf("capability for a user: %s", r.Raw)
	}
	r := env.do("GET", "/_matrix/client/v3/capabilities", "", bearer(admin)...)
	mod, _ := r.Body["capabilities"].(map[string]any)["m.account_moderation"].(map[string]any)
	if mod["lock"] != true || mod["suspend"] != true {
		t.Fatalf("capability for an admin: %s", r.Raw)
	}
}

func TestSuspensionRefusesAccountChangesOnly(t *testing.T) {
	env := newEnv(t)
	admin := env.adminToken("root")
	reg := env.register("sue", "pw-sue-1")
	sue, device := reg.str("access_token"), reg.str("device_id")
	env.do("PUT", suspendURL+"@sue:example.org", `{"suspended":true}`, bearer(admin)...).expect(t, 200, "")

	refused := []struct{ method, path, body string }{
		{"POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-sue-2", "auth": passwordAuth("sue", "pw-sue-1", "")})},
		{"PUT", "/_matrix/client/v3/devices/" + device, `{"display_name":"new name"}`},
		{"POST", "/_matrix/client/v3/account/3pid/add", `{"sid":"x","client_secret":"y"}`},
		{"POST", "/_matrix/client/v3/account/3pid", `{"three_pid_creds":{"sid":"x","client_secret":"y"}}`},
		{"POST", "/_matrix/client/v3/account/3pid/delete", `{"medium":"email","address":"sue@example.org"}`},
	}
	for _, req := range refused {
		env.do(req.method, req.path, req.body, bearer(sue)...).expect(t, 403, "M_USER_SUSPENDED")
	}
	// Reading, logging in and out work.
	env.do("GET", whoamiURL, "", bearer(sue)...).expect(t, 200, "")
	env.do("GET", "/_matrix/client/v3/devices", "", bearer(sue)...).expect(t, 200, "")
	second := env.do("POST", loginURL, loginBody("sue", "pw-sue-1")).expect(t, 200, "").str("access_token")
	env.do("POST", "/_matrix/client/v3/logout", "", bearer(second)...).expect(t, 200, "")
	if r := env.do("GET", adminV2Users+"@sue:example.org", "", bearer(admin)...); r.Body["suspended"] != true {
		t.Fatalf("admin view %s", r.Raw)
	}
	// Unsuspended, the same change works; suspended again, deactivation works.
	env.do("PUT", suspendURL+"@sue:example.org", `{"suspended":false}`, bearer(admin)...).expect(t, 200, "")
	env.do("PUT", "/_matrix/client/v3/devices/"+device, `{"display_name":"new name"}`, bearer(sue)...).expect(t, 200, "")
	env.do("PUT", suspendURL+"@sue:example.org", `{"suspended":true}`, bearer(admin)...).expect(t, 200, "")
	env.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth("sue", "pw-sue-1", "")}), bearer(sue)...).expect(t, 200, "")
}

// TestSuspendedAdminKeepsAdminPowers: as in Synapse, suspension limits
// what an account changes about itself, not an admin's powers; a locked
// admin's token is refused everywhere (M_USER_LOCKED), admin API
// included, until it is unlocked.
func TestSuspendedAdminKeepsAdminPowers(t *testing.T) {
	env := newEnv(t)
	env.adminToken("boss")
	// One fresh token per phase: the account is changed under the server
	// (as the operator CLI does), so no phase reads a cached state.
	var tokens []string
	for i := 0; i < 3; i++ {
		tokens = append(tokens, env.do("POST", loginURL, loginBody("boss", "pw-boss-admin")).expect(t, 200, "").str("access_token"))
	}
	ctx := context.Background()
	if _, err := env.store.UpdateAccount(ctx, "@boss:example.org", db.AccountChanges{Suspended: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	env.do("GET", adminV2Users+"@boss:example.org", "", bearer(tokens[0])...).expect(t, 200, "")
	env.do("PUT", adminV2Users+"@made:example.org", `{"password":"pw-made-1"}`, bearer(tokens[0])...).expect(t, 201, "")
	env.do("POST", passwordURL, `{"new_password":"pw-boss-2"}`, bearer(tokens[0])...).expect(t, 403, "M_USER_SUSPENDED")
	if _, err := env.store.UpdateAccount(ctx, "@boss:example.org", db.AccountChanges{Suspended: ptr(false), Locked: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	env.do("GET", adminV2Users+"@boss:example.org", "", bearer(tokens[1])...).expect(t, 401, "M_USER_LOCKED")
	env.do("PUT", lockURL+"@made:example.org", `{"locked":true}`, bearer(tokens[1])...).expect(t, 401, "M_USER_LOCKED")
	if _, err := env.store.UpdateAccount(ctx, "@boss:example.org", db.AccountChanges{Locked: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	env.do("GET", adminV2Users+"@boss:example.org", "", bearer(tokens[2])...).expect(t, 200, "")
}
