package impl_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"registrar/impl"
	"registrar/impl/config"
)

func TestApprovalBlocksThenAllowsLogin(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.RequireApprovalForNewAccounts = true })
	r := env.register("newbie", "pw-newbie-1").expect(t, 403, "M_USER_AWAITING_APPROVAL")
	if _, ok := r.Body["access_token"]; ok {
		t.Fatal("a token for an account awaiting approval")
	}
	env.register("newbie", "pw-newbie-1").expect(t, 400, "M_USER_IN_USE") // the account exists
	env.do("POST", loginURL, loginBody("newbie", "pw-newbie-1")).expect(t, 403, "M_USER_AWAITING_APPROVAL")
	env.do("POST", loginURL, loginBody("newbie", "wrong")).expect(t, 403, "M_FORBIDDEN")

	admin := env.adminToken("root") // operator-made accounts are approved
	env.do("PUT", "/_synapse/admin/v2/users/@newbie:example.org", `{"approved":true}`).expect(t, 401, "M_MISSING_TOKEN")
	u := env.do("PUT", "/_synapse/admin/v2/users/@newbie:example.org", `{"approved":true}`, bearer(admin)...).expect(t, 200, "")
	if u.Body["approved"] != true || u.str("name") != "@newbie:example.org" {
		t.Fatalf("approve %s", u.Raw)
	}
	env.do("POST", loginURL, loginBody("newbie", "pw-newbie-1")).expect(t, 200, "")
	env.do("GET", "/_synapse/admin/v2/users/@ghost:example.org", "", bearer(admin)...).expect(t, 404, "M_NOT_FOUND")

	// The CLI path.
	env.register("second", "pw-second-1").expect(t, 403, "M_USER_AWAITING_APPROVAL")
	a, _ := impl.NewAdmin(env.cfg, env.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	id, _ := a.Accounts.CanonicalUserID("Second")
	if err := a.Accounts.SetApproved(context.Background(), id, true); err != nil || id != "@second:example.org" {
		t.Fatalf("approve %s %v", id, err)
	}
	env.do("POST", loginURL, loginBody("second", "pw-second-1")).expect(t, 200, "")
	if err := a.Accounts.SetApproved(context.Background(), "@nobody:example.org", true); err == nil {
		t.Fatal("approved a missing user")
	}
}
