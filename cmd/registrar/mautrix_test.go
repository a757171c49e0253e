package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"registrar/db"
)

// TestMautrixClient drives the real server with mautrix-go through the
// account's whole life, checking the server's state after each step.
func TestMautrixClient(t *testing.T) {
	ctx := context.Background()
	cli, store, _ := mautrixServer(t, nil)

	if _, err := cli.RegisterAvailable(ctx, "alice"); err != nil {
		t.Fatalf("available: %v", err)
	}
	reg, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "alice", Password: "pw-alice-1", RefreshToken: true})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if reg.UserID != "@alice:localhost" || reg.AccessToken == "" || reg.RefreshToken == "" {
		t.Fatalf("register: %+v", reg)
	}
	if _, err := cli.RegisterAvailable(ctx, "Alice"); errcode(err) != "M_USER_IN_USE" {
		t.Fatalf("available after registering: %v", err)
	}
	if acct, err := store.Account(ctx, "alice"); err != nil || acct.Deactivated() {
		t.Fatalf("account in the database: %+v %v", acct, err)
	}
	cli.SetCredentials(reg.UserID, reg.AccessToken)
	if who, err := cli.Whoami(ctx); err != nil || who.UserID != reg.UserID || who.DeviceID != reg.DeviceID {
		t.Fatalf("whoami: %+v %v", who, err)
	}

	// Refresh: the new pair works, the old refresh token is spent once the
	// new pair is used.
	var refreshed mautrix.RespLogin
	if _, err := cli.MakeRequest(ctx, http.MethodPost, cli.BuildClientURL("v3", "refresh"), map[string]any{"refresh_token": reg.RefreshToken}, &refreshed); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	cli.SetCredentials(reg.UserID, refreshed.AccessToken)
	if _, err := cli.Whoami(ctx); err != nil {
		t.Fatalf("whoami with the refreshed token: %v", err)
	}
	if _, err := cli.MakeRequest(ctx, http.MethodPost, cli.BuildClientURL("v3", "refresh"), map[string]any{"refresh_token": reg.RefreshToken}, nil); errcode(err) != "M_UNKNOWN_TOKEN" {
		t.Fatalf("reusing a spent refresh token: %v", err)
	}
	// Reuse revokes the device (RFC 6819).
	if _, err := cli.Whoami(ctx); errcode(err) != "M_UNKNOWN_TOKEN" {
		t.Fatalf("the device survived a refresh token's reuse: %v", err)
	}

	// Login by user ID and by a bound email address.
	if err := store.AddThreepid(ctx, "@alice:localhost", db.NewThreepid{Medium: "email", Address: "alice@example.org", ValidatedAt: 1}); err != nil {
		t.Fatal(err)
	}
	anon, _ := mautrix.NewClient(cli.HomeserverURL.String(), "", "")
	byID, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "pw-alice-1"})
	if err != nil || byID.UserID != "@alice:localhost" {
		t.Fatalf("login by user ID: %+v %v", byID, err)
	}
	byEmail, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeThirdParty, Medium: "email", Address: "Alice@Example.org"}, Password: "pw-alice-1"})
	if err != nil || byEmail.UserID != "@alice:localhost" {
		t.Fatalf("login by email: %+v %v", byEmail, err)
	}
	cli.SetCredentials(byEmail.UserID, byEmail.AccessToken)

	// Password change through UIA: the other devices are logged out, the
	// old password fails, the new one works.
	err = uia(t, cli, cli.BuildClientURL("v3", "account", "password"), map[string]any{"new_password": "pw-alice-2"},
		map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "pw-alice-1"})
	if err != nil {
		t.Fatalf("password change: %v", err)
	}
	other, _ := mautrix.NewClient(cli.HomeserverURL.String(), byID.UserID, byID.AccessToken)
	if _, err := other.Whoami(ctx); errcode(err) != "M_UNKNOWN_TOKEN" {
		t.Fatalf("another device after the password change: %v", err)
	}
	if _, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "pw-alice-1"}); errcode(err) != "M_FORBIDDEN" {
		t.Fatalf("old password: %v", err)
	}
	if _, err := cli.Whoami(ctx); err != nil {
		t.Fatalf("the caller's device after the password change: %v", err)
	}

	// Logout, then logout/all.
	second, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "pw-alice-2"})
	if err != nil {
		t.Fatal(err)
	}
	third, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "pw-alice-2"})
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := mautrix.NewClient(cli.HomeserverURL.String(), second.UserID, second.AccessToken)
	if _, err := c2.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Whoami(ctx); errcode(err) != "M_UNKNOWN_TOKEN" {
		t.Fatalf("after logout: %v", err)
	}
	if devs, _ := store.Devices(ctx, "@alice:localhost"); len(devs) != 2 {
		t.Fatalf("devices after one logout: %v", devs)
	}
	c3, _ := mautrix.NewClient(cli.HomeserverURL.String(), third.UserID, third.AccessToken)
	if _, err := c3.LogoutAll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Whoami(ctx); errcode(err) != "M_UNKNOWN_TOKEN" {
		t.Fatalf("after logout/all: %v", err)
	}
	if devs, _ := store.Devices(ctx, "@alice:localhost"); len(devs) != 0 {
		t.Fatalf("devices after logout/all: %v", devs)
	}

	// Deactivation through UIA.
	fresh, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "pw-alice-2"})
	if err != nil {
		t.Fatal(err)
	}
	c4, _ := mautrix.NewClient(cli.HomeserverURL.String(), fresh.UserID, fresh.AccessToken)
	err = uia(t, c4, c4.BuildClientURL("v3", "account", "deactivate"), map[string]any{},
		map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "pw-alice-2"})
	if err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	if acct, _ := store.Account(ctx, "alice"); !acct.Deactivated() {
		t.Fatal("the account is not deactivated")
	}
	if _, err := c4.Whoami(ctx); errcode(err) != "M_UNKNOWN_TOKEN" {
		t.Fatalf("after deactivation: %v", err)
	}
	if _, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "pw-alice-2"}); errcode(err) != "M_USER_DEACTIVATED" {
		t.Fatalf("login after deactivation: %v", err)
	}

	// A guest.
	guest, _, err := anon.RegisterGuest(ctx, &mautrix.ReqRegister[any]{})
	if err != nil {
		t.Fatalf("guest: %v", err)
	}
	g, _ := mautrix.NewClient(cli.HomeserverURL.String(), guest.UserID, guest.AccessToken)
	if who, err := g.Whoami(ctx); err != nil || who.UserID != guest.UserID {
		t.Fatalf("guest whoami: %+v %v", who, err)
	}
	if acct, err := store.AccountByUserID(ctx, guest.UserID.String()); err != nil || acct.Kind != db.KindGuest {
		t.Fatalf("guest account: %+v %v", acct, err)
	}
}

// TestMautrixRegistersWithAToken runs the registration token flow with
// mautrix's UIA responses, and checks the token's accounting.
func TestMautrixRegistersWithAToken(t *testing.T) {
	ctx := context.Background()
	cli, store, _ := mautrixServer(t, map[string]string{"REGISTRAR_REGISTRATION_REQUIRES_TOKEN": "true",
		"REGISTRAR_ENABLE_REGISTRATION_WITHOUT_VERIFICATION": "false"})
	if err := store.CreateRegistrationToken(ctx, db.RegistrationToken{Token: "invite-1"}); err != nil {
		t.Fatal(err)
	}
	req := &mautrix.ReqRegister[any]{Username: "bob", Password: "pw-bob-1"}
	_, challenge, err := cli.Register(ctx, req)
	if err != nil || challenge == nil || len(challenge.Flows) != 1 ||
		strings.Join(stages(challenge), ",") != "m.login.registration_token,m.login.dummy" {
		t.Fatalf("challenge %+v %v", challenge, err)
	}
	req.Auth = map[string]any{"type": "m.login.registration_token", "token": "invite-1", "session": challenge.Session}
	_, next, err := cli.Register(ctx, req)
	if err != nil || next == nil || len(next.Completed) != 1 {
		t.Fatalf("token stage: %+v %v", next, err)
	}
	req.Auth = map[string]any{"type": "m.login.dummy", "session": challenge.Session}
	reg, _, err := cli.Register(ctx, req)
	if err != nil || reg == nil || reg.UserID != "@bob:localhost" {
		t.Fatalf("register: %+v %v", reg, err)
	}
	if tok, _ := store.RegistrationToken(ctx, "invite-1"); tok.Completed != 1 || tok.Pending != 0 {
		t.Fatalf("token accounting %+v", tok)
	}
}

// TestMautrixManagesDevices lists, renames and deletes devices with
// mautrix-go, the deletion through User-Interactive Authentication.
func TestMautrixManagesDevices(t *testing.T) {
	ctx := context.Background()
	cli, store, _ := mautrixServer(t, nil)
	reg, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "dora", Password: "pw-dora-1", InitialDeviceDisplayName: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	cli.SetCredentials(reg.UserID, reg.AccessToken)
	anon, _ := mautrix.NewClient(cli.HomeserverURL.String(), "", "")
	login := &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, DeviceID: "PHONE",
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "dora"}, Password: "pw-dora-1"}
	phone, err := anon.Login(ctx, login)
	if err != nil {
		t.Fatal(err)
	}
	devices, err := cli.GetDevicesInfo(ctx)
	if err != nil || len(devices.Devices) != 2 {
		t.Fatalf("devices %+v %v", devices, err)
	}
	if err := cli.SetDeviceInfo(ctx, "PHONE", &mautrix.ReqDeviceInfo{DisplayName: "pocket"}); err != nil {
		t.Fatal(err)
	}
	if d, err := cli.GetDeviceInfo(ctx, "PHONE"); err != nil || d.DisplayName != "pocket" {
		t.Fatalf("device %+v %v", d, err)
	}

	// The first request answers the UIA challenge (read as mautrix's own
	// UIA helpers do); the password completes it.
	body, err := cli.MakeRequest(ctx, http.MethodDelete, cli.BuildClientURL("v3", "devices", "PHONE"), &mautrix.ReqDeleteDevice[any]{}, nil)
	var challenge mautrix.RespUserInteractive
	if err == nil || errcode(err) != "" || json.Unmarshal(body, &challenge) != nil ||
		challenge.Session == "" || !challenge.HasSingleStageFlow(mautrix.AuthTypePassword) {
		t.Fatalf("challenge %s %v", body, err)
	}
	auth := map[string]any{"type": "m.login.password", "session": challenge.Session, "password": "pw-dora-1",
		"identifier": map[string]any{"type": "m.id.user", "user": "dora"}}
	if err := cli.DeleteDevice(ctx, "PHONE", &mautrix.ReqDeleteDevice[any]{Auth: auth}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	phoneCli, _ := mautrix.NewClient(cli.HomeserverURL.String(), phone.UserID, phone.AccessToken)
	if _, err := phoneCli.Whoami(ctx); errcode(err) != "M_UNKNOWN_TOKEN" {
		t.Fatalf("the deleted device's token: %v", err)
	}
	if ds, _ := store.Devices(ctx, "@dora:localhost"); len(ds) != 1 || ds[0].DeviceID != string(reg.DeviceID) {
		t.Fatalf("devices left %+v", ds)
	}
}
