package impl_test

import (
	"testing"
)

// TestEveryRevocationIsSeenAtOnce warms the token cache, revokes through
// each path, and checks the very next request sees it.
func TestEveryRevocationIsSeenAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		// revoke returns the token that must now be refused.
		revoke func(env *testEnv, warm func(string) string) string
	}{
		{"logout", func(env *testEnv, warm func(string) string) string {
			tok := warm(env.register("u1", "pw-u1-1").str("access_token"))
			env.do("POST", "/_matrix/client/v3/logout", "", bearer(tok)...).expect(t, 200, "")
			return tok
		}},
		{"logout all", func(env *testEnv, warm func(string) string) string {
			tok := warm(env.register("u2", "pw-u2-1").str("access_token"))
			other := env.do("POST", loginURL, loginBody("u2", "pw-u2-1")).str("access_token")
			env.do("POST", "/_matrix/client/v3/logout/all", "", bearer(other)...).expect(t, 200, "")
			return tok
		}},
		{"password change with logout_devices", func(env *testEnv, warm func(string) string) string {
			tok := warm(env.register("u3", "pw-u3-1").str("access_token"))
			caller := env.do("POST", loginURL, loginBody("u3", "pw-u3-1")).str("access_token")
			env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-u3-2", "auth": passwordAuth("u3", "pw-u3-1", "")}),
				bearer(caller)...).expect(t, 200, "")
			return tok
		}},
		{"deactivation", func(env *testEnv, warm func(string) string) string {
			tok := warm(env.register("u4", "pw-u4-1").str("access_token"))
			env.do("POST", deactivateURL, jsonBody(map[string]any{"auth": passwordAuth("u4", "pw-u4-1", "")}), bearer(tok)...).expect(t, 200, "")
			return tok
		}},
		{"refresh token reuse", func(env *testEnv, warm func(string) string) string {
			reg := env.register("u5", "pw-u5-1", map[string]any{"refresh_token": true})
			next := env.do("POST", refreshURL, jsonBody(map[string]string{"refresh_token": reg.str("refresh_token")})).expect(t, 200, "")
			tok := warm(next.str("access_token")) // first use consumes the old refresh token
			env.do("POST", refreshURL, jsonBody(map[string]string{"refresh_token": reg.str("refresh_token")})).expect(t, 401, "M_UNKNOWN_TOKEN")
			return tok
		}},
		{"first use of a refreshed pair", func(env *testEnv, warm func(string) string) string {
			reg := env.register("u6", "pw-u6-1", map[string]any{"refresh_token": true})
			old := warm(reg.str("access_token"))
			next := env.do("POST", refreshURL, jsonBody(map[string]string{"refresh_token": reg.str("refresh_token")})).expect(t, 200, "")
			warm(next.str("access_token"))
			return old
		}},
		{"login reusing the device", func(env *testEnv, warm func(string) string) string {
			tok := warm(env.register("u7", "pw-u7-1", map[string]any{"device_id": "SAME"}).str("access_token"))
			env.do("POST", loginURL, loginBody("u7", "pw-u7-1", map[string]any{"device_id": "SAME"})).expect(t, 200, "")
			return tok
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			warm := func(tok string) string {
				env.do("GET", whoamiURL, "", bearer(tok)...).expect(t, 200, "")
				env.do("GET", whoamiURL, "", bearer(tok)...).expect(t, 200, "")
				return tok
			}
			tok := tc.revoke(env, warm)
			env.do("GET", whoamiURL, "", bearer(tok)...).expect(t, 401, "M_UNKNOWN_TOKEN")
		})
	}
}

// TestGuestUpgradeIsSeenAtOnce: a guest's cached token says guest until
// the upgrade, then not.
func TestGuestUpgradeIsSeenAtOnce(t *testing.T) {
	env := newEnv(t)
	g := env.do("POST", registerURL+"?kind=guest", `{}`).expect(t, 200, "")
	tok := g.str("access_token")
	if env.do("GET", whoamiURL, "", bearer(tok)...).Body["is_guest"] != true {
		t.Fatal("not a guest")
	}
	lp := g.str("user_id")[1 : len(g.str("user_id"))-len(":example.org")]
	env.do("POST", registerURL, jsonBody(map[string]any{"username": lp, "password": "pw-upgraded-1", "guest_access_token": tok,
		"auth": map[string]any{"type": "m.login.dummy"}})).expect(t, 200, "")
	if env.do("GET", whoamiURL, "", bearer(tok)...).Body["is_guest"] != false {
		t.Fatal("the upgraded guest's token still says guest")
	}
}
