package main

import (
	"context"
	"testing"

	"registrar/db"
)

// TestMatrixJSSDKAccountLife: registration through InteractiveAuth, a
// password change and a deactivation that start with "auth": null, login,
// logout, whoami and a guest, by matrix-js-sdk against the real server.
func TestMatrixJSSDKAccountLife(t *testing.T) {
	node(t)
	ctx := context.Background()
	cli, store, _ := mautrixServer(t, nil)
	out := runJS(t, "account", cli.HomeserverURL.String(), "")
	acct, err := store.Account(ctx, "carol")
	if err != nil || !acct.Deactivated() || !acct.Erased || out["user"] != acct.UserID {
		t.Fatalf("carol on the server: %+v %v (%v)", acct, err, out)
	}
	if devs, _ := store.Devices(ctx, acct.UserID); len(devs) != 0 {
		t.Fatalf("devices left: %v", devs)
	}
	guest, err := store.AccountByUserID(ctx, out["guest"].(string))
	if err != nil || guest.Kind != db.KindGuest {
		t.Fatalf("guest on the server: %+v %v", guest, err)
	}
}

// TestMatrixJSSDKRegistrationToken: InteractiveAuth completes a
// registration token stage; the token's use is counted.
func TestMatrixJSSDKRegistrationToken(t *testing.T) {
	node(t)
	ctx := context.Background()
	cli, store, _ := mautrixServer(t, map[string]string{"REGISTRAR_REGISTRATION_REQUIRES_TOKEN": "true",
		"REGISTRAR_ENABLE_REGISTRATION_WITHOUT_VERIFICATION": "false"})
	if err := store.CreateRegistrationToken(ctx, db.RegistrationToken{Token: "js-invite"}); err != nil {
		t.Fatal(err)
	}
	out := runJS(t, "token", cli.HomeserverURL.String(), "js-invite")
	if out["user"] != "@dave:localhost" {
		t.Fatal(out)
	}
	if tok, _ := store.RegistrationToken(ctx, "js-invite"); tok.Completed != 1 || tok.Pending != 0 {
		t.Fatalf("token accounting %+v", tok)
	}
}

// TestMatrixJSSDKRefreshesTokens: with two-second access tokens, the SDK
// refreshes on its own when one expires; reusing a spent refresh token
// revokes the device.
func TestMatrixJSSDKRefreshesTokens(t *testing.T) {
	node(t)
	ctx := context.Background()
	cli, store, _ := mautrixServer(t, map[string]string{"REGISTRAR_REFRESHABLE_ACCESS_TOKEN_LIFETIME": "2s"})
	if _, err := cli.RegisterDummy(ctx, mautrixRegistration("erin", "pw-erin")); err != nil {
		t.Fatal(err)
	}
	runJS(t, "refresh", cli.HomeserverURL.String(), "erin")
	devs, _ := store.Devices(ctx, "@erin:localhost")
	if len(devs) != 1 || devs[0].DisplayName != "" {
		t.Fatalf("devices %+v: want only the registration's (the refreshed one was revoked on reuse)", devs)
	}
}
