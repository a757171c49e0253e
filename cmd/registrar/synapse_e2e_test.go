package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"registrar/db/dbtest"
)

// delegatedSetup is registrar in front of a real Synapse 1.94 that
// delegates authentication to it (MSC3861, the admin-API protocol),
// both behind the real nginx with contrib/nginx/registrar.conf.
type delegatedSetup struct {
	synapse    *synapse
	front      string // nginx: what clients use
	registrar  string // registrar's own listener
	env        map[string]string
	configPath string
	adminToken string
}

const (
	synapseClientSecret = "synapse-client-secret-0123456789"
	synapseAdminToken   = "synapse-admin-token-0123456789"
)

func newDelegatedSetup(t *testing.T) *delegatedSetup {
	t.Helper()
	synapsePython(t) // skips (or fails under CI) before anything starts
	rPort, sPort, nPort := freePort(t), freePort(t), freePort(t)
	front := fmt.Sprintf("http://127.0.0.1:%d", nPort)
	d := &delegatedSetup{front: front, registrar: fmt.Sprintf("http://127.0.0.1:%d", rPort), env: serverEnv(t),
		adminToken: synapseAdminToken}
	d.configPath = filepath.Join(t.TempDir(), "registrar.yaml")
	cfg := fmt.Sprintf(`server_name: localhost
public_baseurl: %s/
enable_registration: true
enable_registration_without_verification: true
allow_guest_access: true
password_config: {argon2: {memory_kib: 64, iterations: 1}}
rc_login: {address: {per_second: 100, burst_count: 100}, account: {per_second: 100, burst_count: 100}}
rc_registration: {per_second: 100, burst_count: 100}
clients:
  - client_id: synapse
    client_auth_method: client_secret_basic
    client_secret: %q
matrix:
  endpoint: http://127.0.0.1:%d/
  kind: synapse_admin
  secret: %q
`, front, synapseClientSecret, sPort, synapseAdminToken)
	if err := os.WriteFile(d.configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startServeConfig(t, d.env, d.configPath, fmt.Sprintf("127.0.0.1:%d", rPort))
	d.synapse = startSynapse(t, sPort, synapseDelegation{Issuer: front + "/", ClientID: "synapse", ClientSecret: synapseClientSecret,
		AdminToken: synapseAdminToken, AccountURL: front + "/_registrar/account"})
	nginxFront(t, nPort, rPort, sPort)
	return d
}

// client is a mautrix client of the front (nginx), with token.
func (d *delegatedSetup) client(t *testing.T, userID, token string) *mautrix.Client {
	t.Helper()
	c, err := mautrix.NewClient(d.front, id.UserID(userID), token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// talk does on Synapse what a person does: a room, a message, and a
// sync that sees it.
func talk(t *testing.T, c *mautrix.Client, what string) {
	t.Helper()
	ctx := context.Background()
	room, err := c.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: what})
	if err != nil {
		t.Fatalf("%s: createRoom on Synapse: %v", what, err)
	}
	sent, err := c.SendText(ctx, room.RoomID, "hello from "+what)
	if err != nil {
		t.Fatalf("%s: send on Synapse: %v", what, err)
	}
	resp, err := c.SyncRequest(ctx, 0, "", "", true, event.PresenceOffline)
	if err != nil {
		t.Fatalf("%s: sync on Synapse: %v", what, err)
	}
	for _, ev := range resp.Rooms.Join[room.RoomID].Timeline.Events {
		if ev.ID == sent.EventID {
			return
		}
	}
	t.Fatalf("%s: the sync does not show the message %s", what, sent.EventID)
}

// TestSynapseDelegatesToRegistrar runs a real Synapse 1.94 whose
// authentication registrar provides, all through the real nginx: people
// signing up with the OAuth 2.0 API (PKCE, prompt=create, stable scopes)
// and with the legacy API, logging in, out and deactivating, an admin, a
// guest, each then using Synapse; and the homeserver stopped meanwhile.
func TestSynapseDelegatesToRegistrar(t *testing.T) {
	exe := chromium(t)
	d := newDelegatedSetup(t)
	ctx := context.Background()

	// Sign-up with the OAuth 2.0 API in headless Chromium.
	token, device, browse := oauthSignUp(t, exe, d.front, "frank", "pw-frank-1")
	frank := d.client(t, "@frank:localhost", token)
	who, err := frank.Whoami(ctx)
	if err != nil || who.UserID != "@frank:localhost" || who.DeviceID != id.DeviceID(device) {
		t.Fatalf("whoami on Synapse after the OAuth sign-up: %+v %v", who, err)
	}
	talk(t, frank, "the OAuth sign-up")

	// The profile page on the real Synapse: the avatar frank set there
	// (registrar fetches its thumbnail from Synapse), and a display name
	// set on the page reaches Synapse.
	var picture bytes.Buffer
	if err := png.Encode(&picture, image.NewRGBA(image.Rect(0, 0, 64, 64))); err != nil {
		t.Fatal(err)
	}
	upload, err := frank.UploadBytes(ctx, picture.Bytes(), "image/png")
	if err != nil {
		t.Fatalf("uploading an avatar to Synapse: %v", err)
	}
	if err := frank.SetAvatarURL(ctx, upload.ContentURI); err != nil {
		t.Fatalf("setting the avatar on Synapse: %v", err)
	}
	if err := chromedp.Do(browse, chromedp.Navigate(d.front+"/_registrar/account"), chromedp.WaitVisible(chromedp.CSS("img.avatar"))); err != nil {
		t.Fatalf("the profile page shows no avatar: %v", err)
	}
	avatar, err := chromedp.Run(browse, chromedp.Evaluate[string](`fetch("/_registrar/account/avatar").then(r => r.status + " " + r.headers.get("content-type"))`,
		chromedp.EvalAwaitPromise))
	if err != nil || !strings.HasPrefix(avatar, "200 image/") {
		t.Fatalf("the avatar from Synapse: %q %v", avatar, err)
	}
	if err := chromedp.Do(browse, chromedp.Clear(chromedp.ID("display_name")), chromedp.SendKeys(chromedp.ID("display_name"), "Frank Ocean"), chromedp.Click(chromedp.ID("save-profile")),
		chromedp.WaitVisible(chromedp.ID("notice"))); err != nil {
		t.Fatalf("saving the display name: %v", err)
	}
	eventually(t, "the display name reaches Synapse", func() bool {
		_, u := d.synapse.adminCall("GET", "/_synapse/admin/v2/users/@frank:localhost", d.adminToken, nil)
		return u["displayname"] == "Frank Ocean"
	})
	if p, err := frank.GetOwnDisplayName(ctx); err != nil || p.DisplayName != "Frank Ocean" {
		t.Fatalf("frank's display name on Synapse: %+v %v", p, err)
	}

	// The legacy API: /register, then /login.
	anon := d.client(t, "", "")
	reg, err := anon.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "gina", Password: "pw-gina-1", InitialDeviceDisplayName: "Gina's phone"})
	if err != nil {
		t.Fatalf("legacy register through nginx: %v", err)
	}
	gina := d.client(t, reg.UserID.String(), reg.AccessToken)
	talk(t, gina, "the legacy registration")
	login, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "gina"},
		Password: "pw-gina-1"})
	if err != nil {
		t.Fatalf("legacy login: %v", err)
	}
	ginaLaptop := d.client(t, login.UserID.String(), login.AccessToken)
	talk(t, ginaLaptop, "the legacy login")
	status, devices := d.synapse.adminCall("GET", "/_synapse/admin/v2/users/@gina:localhost/devices", d.adminToken, nil)
	if status != 200 || !strings.Contains(jsonString(devices), `"Gina's phone"`) || !strings.Contains(jsonString(devices), string(login.DeviceID)) {
		t.Fatalf("Synapse's devices of gina: %d %v", status, devices)
	}

	// Logging out in registrar: the next Synapse request is refused, and
	// the device goes from Synapse.
	if _, err := ginaLaptop.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ginaLaptop.Whoami(ctx); errcode(err) != "M_UNKNOWN_TOKEN" {
		t.Fatalf("whoami on Synapse after logout: %v", err)
	}
	eventually(t, "the logged-out device leaves Synapse", func() bool {
		_, devices := d.synapse.adminCall("GET", "/_synapse/admin/v2/users/@gina:localhost/devices", d.adminToken, nil)
		return !strings.Contains(jsonString(devices), string(login.DeviceID))
	})

	// Deactivation: refused at once, and the user deactivated in Synapse.
	if err := uia(t, gina, gina.BuildClientURL("v3", "account", "deactivate"), map[string]any{},
		map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "gina"}, "password": "pw-gina-1"}); err != nil {
		t.Fatalf("deactivation: %v", err)
	}
	if _, err := gina.Whoami(ctx); errcode(err) != "M_UNKNOWN_TOKEN" {
		t.Fatalf("whoami on Synapse after deactivation: %v", err)
	}
	eventually(t, "Synapse deactivates gina", func() bool {
		_, u := d.synapse.adminCall("GET", "/_synapse/admin/v2/users/@gina:localhost", d.adminToken, nil)
		return u["deactivated"] == true
	})

	// A server admin's token reaches Synapse's admin API.
	cli := &cli{t: t, env: d.env}
	if out, err := cli.run("pw-boss-1\n", "register-user", "-config", d.configPath, "-u", "boss", "-admin", "-password-stdin"); err != nil {
		t.Fatalf("register-user: %v %s", err, out)
	}
	bossLogin, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "boss"},
		Password: "pw-boss-1"})
	if err != nil {
		t.Fatal(err)
	}
	boss := d.client(t, bossLogin.UserID.String(), bossLogin.AccessToken)
	var bossOnSynapse map[string]any
	if _, err := boss.MakeRequest(ctx, http.MethodGet, d.front+"/_synapse/admin/v2/users/@frank:localhost", nil, &bossOnSynapse); err != nil ||
		bossOnSynapse["name"] != "@frank:localhost" {
		t.Fatalf("an admin on Synapse's admin API: %v %v", bossOnSynapse, err)
	}
	if _, err := frank.MakeRequest(ctx, http.MethodGet, d.front+"/_synapse/admin/v2/users/@frank:localhost", nil, nil); err == nil {
		t.Fatal("a non-admin reached Synapse's admin API")
	}

	// A guest.
	guestReg, _, err := anon.RegisterGuest(ctx, &mautrix.ReqRegister[any]{})
	if err != nil {
		t.Fatalf("guest registration: %v", err)
	}
	guest := d.client(t, guestReg.UserID.String(), guestReg.AccessToken)
	var guestWho map[string]any
	if _, err := guest.MakeRequest(ctx, http.MethodGet, guest.BuildClientURL("v3", "account", "whoami"), nil, &guestWho); err != nil ||
		guestWho["is_guest"] != true {
		t.Fatalf("a guest on Synapse: %v %v", guestWho, err)
	}

	// Synapse stopped: nothing is handed out that Synapse does not know,
	// what ends waits, and all of it arrives once Synapse is back.
	second, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "frank"},
		Password: "pw-frank-1"})
	if err != nil {
		t.Fatal(err)
	}
	d.synapse.stop()
	if _, err := anon.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "hank", Password: "pw-hank-1"}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("registration while Synapse is down: %v", err)
	}
	if _, err := d.client(t, second.UserID.String(), second.AccessToken).Logout(ctx); err != nil {
		t.Fatalf("logout while Synapse is down: %v", err)
	}
	eventually(t, "readyz says the homeserver waits", func() bool {
		resp, err := http.Get(d.registrar + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), "degraded") && strings.Contains(string(body), "homeserver")
	})
	d.synapse.start()
	eventually(t, "the logout reaches Synapse", func() bool {
		_, devices := d.synapse.adminCall("GET", "/_synapse/admin/v2/users/@frank:localhost/devices", d.adminToken, nil)
		return devices != nil && !strings.Contains(jsonString(devices), string(second.DeviceID))
	})
	hank, err := anon.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "hank", Password: "pw-hank-1"})
	if err != nil {
		t.Fatalf("registration once Synapse is back: %v", err)
	}
	talk(t, d.client(t, hank.UserID.String(), hank.AccessToken), "a registration after the outage")

	// Locking is pushed (and the token is refused at once).
	if _, err := boss.MakeRequest(ctx, http.MethodPut, d.front+"/_matrix/client/v1/admin/lock/@hank:localhost", map[string]any{"locked": true}, nil); err != nil {
		t.Fatalf("locking: %v", err)
	}
	if _, err := d.client(t, hank.UserID.String(), hank.AccessToken).Whoami(ctx); errcode(err) != "M_UNKNOWN_TOKEN" {
		t.Fatalf("whoami on Synapse of a locked user: %v", err)
	}
	eventually(t, "Synapse locks hank", func() bool {
		_, u := d.synapse.adminCall("GET", "/_synapse/admin/v2/users/@hank:localhost", d.adminToken, nil)
		return u["locked"] == true
	})

	// Drift (a device removed on Synapse behind registrar's back) is found
	// and mended by `registrar homeserver sync`.
	if status, _ := d.synapse.adminCall("DELETE", "/_synapse/admin/v2/users/@frank:localhost/devices/"+device, d.adminToken, nil); status != 200 {
		t.Fatalf("deleting a device on Synapse: %d", status)
	}
	// (the guest's device, which Synapse made no note of, is added too)
	out, err := cli.run("", "homeserver", "sync", "-config", d.configPath)
	if err != nil || !strings.Contains(out, "devices added on the homeserver: 2,") {
		t.Fatalf("homeserver sync: %v %s", err, out)
	}
	_, devices = d.synapse.adminCall("GET", "/_synapse/admin/v2/users/@frank:localhost/devices", d.adminToken, nil)
	if !strings.Contains(jsonString(devices), device) {
		t.Fatalf("the sync did not bring back frank's device: %v", devices)
	}
	if _, err := frank.Whoami(ctx); err != nil {
		t.Fatalf("whoami after the sync: %v", err)
	}
	talk(t, frank, "the sync's mended device")
}

// TestSynapseBehindTwoRegistrarInstances: two registrar instances on one
// PostgreSQL database behind one Synapse: a token one issues is accepted
// through the other's introspection, and a logout on one ends it there.
func TestSynapseBehindTwoRegistrarInstances(t *testing.T) {
	if !dbtest.Postgres() {
		t.Skip("several instances share a PostgreSQL database: this runs in make test's PostgreSQL pass")
	}
	d := newDelegatedSetup(t)
	ctx := context.Background()
	otherPort := freePort(t)
	startServeConfig(t, d.env, d.configPath, fmt.Sprintf("127.0.0.1:%d", otherPort))
	other, _ := mautrix.NewClient(fmt.Sprintf("http://127.0.0.1:%d", otherPort), "", "")
	reg, err := other.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "ivy", Password: "pw-ivy-1"})
	if err != nil {
		t.Fatalf("registering on the second instance: %v", err)
	}
	ivy := d.client(t, reg.UserID.String(), reg.AccessToken)
	talk(t, ivy, "a token of the second instance")
	other.SetCredentials(reg.UserID, reg.AccessToken)
	if _, err := other.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ivy.Whoami(ctx); errcode(err) != "M_UNKNOWN_TOKEN" {
		t.Fatalf("whoami on Synapse after a logout on the other instance: %v", err)
	}
}

// oauthSignUp signs up with the OAuth 2.0 API as a native client would:
// dynamic registration, PKCE, prompt=create and the stable scopes, the
// sign-up and consent pages in headless Chromium, the code exchanged on
// a loopback redirect. It returns the access token, the device ID and the
// browser (signed in to registrar's pages).
func oauthSignUp(t *testing.T, exe, base, user, password string) (string, string, context.Context) {
	t.Helper()
	ctx := context.Background()
	var meta struct {
		RegistrationEndpoint, AuthorizationEndpoint, TokenEndpoint string
	}
	getJSON(t, base+"/_matrix/client/v1/auth_metadata", &meta)
	body := `{"client_name":"Go client","client_uri":"https://client.example.org/","redirect_uris":["http://127.0.0.1/callback"],
		"application_type":"native","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`
	resp, err := http.Post(base+"/_registrar/oauth2/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var registered struct {
		ClientID string `json:"client_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&registered)
	resp.Body.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	codes := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case codes <- r.URL.Query().Get("code"):
		default:
		}
		io.WriteString(w, "<!DOCTYPE html><title>done</title><p id=done>signed in</p>")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	device := "OAUTHSIGNUP"
	cfg := &oauth2.Config{ClientID: registered.ClientID, RedirectURL: "http://" + ln.Addr().String() + "/callback",
		Endpoint: oauth2.Endpoint{AuthURL: base + "/_registrar/oauth2/authorize", TokenURL: base + "/_registrar/oauth2/token",
			AuthStyle: oauth2.AuthStyleInParams},
		Scopes: []string{"urn:matrix:client:api:*", "urn:matrix:client:device:" + device}}
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "create"))
	browse := browserContext(t, exe)
	err = chromedp.Do(browse,
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(chromedp.ID("password_confirm")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.SendKeys(chromedp.ID("password_confirm"), password),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("allow")),
		chromedp.Click(chromedp.ID("allow")),
		chromedp.WaitVisible(chromedp.ID("done")),
	)
	if err != nil {
		t.Fatalf("signing up in Chromium: %v", err)
	}
	var code string
	select {
	case code = <-codes:
	case <-time.After(10 * time.Second):
		t.Fatal("no callback")
	}
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchanging the code: %v", err)
	}
	return tok.AccessToken, device, browse
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}
