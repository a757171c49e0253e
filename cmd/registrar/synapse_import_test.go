package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"registrar/db/dbtest"
	"registrar/impl"
	"registrar/impl/testkit"
)

// synapsePeople is what a Synapse had before it moved: people with their
// passwords and the sessions (tokens, devices) their clients hold.
type synapsePeople struct {
	passwords map[string]string
	sessions  []synapseSession
	refresh   synapseSession
}

type synapseSession struct {
	user, device, token, refreshToken string
}

// TestImportFromARealSynapse runs Synapse 1.94 on its own (SQLite in the
// SQLite pass, PostgreSQL in the PostgreSQL pass): people register,
// through its /register and its shared-secret admin registration, log in
// on several devices; an admin adds an address, deactivates one person,
// locks one and shadow-bans one. Its database is imported (a dry run,
// then -apply) while it runs; then the same Synapse is switched to
// delegation to registrar. Everyone logs in to registrar with their old
// password, every token that worked still works on Synapse (whoami and
// sync, same device), a refresh token refreshes, the deactivated person
// cannot log in, the admin is admin.
func TestImportFromARealSynapse(t *testing.T) {
	pg := ""
	if dbtest.Postgres() {
		pg = synapsePostgresDB(t)
	}
	const pepper = "a pepper the two share"
	sPort, rPort := freePort(t), freePort(t)
	syn := startSynapseWith(t, sPort, synapseConfig{Pepper: pepper, Postgres: pg})
	people := populateSynapse(t, syn)

	// registrar: the same server name and pepper, and Synapse as its
	// homeserver.
	registrarBase := fmt.Sprintf("http://127.0.0.1:%d", rPort)
	env := serverEnv(t)
	configPath := filepath.Join(t.TempDir(), "registrar.yaml")
	cfg := fmt.Sprintf(`server_name: localhost
public_baseurl: %s/
password_config: {pepper: %q, argon2: {memory_kib: 64, iterations: 1}}
rc_login: {address: {per_second: 100, burst_count: 100}, account: {per_second: 100, burst_count: 100}}
clients:
  - client_id: synapse
    client_secret: %q
matrix:
  endpoint: %s/
  kind: synapse_admin
  secret: %q
`, registrarBase, pepper, synapseClientSecret, syn.base, synapseAdminToken)
	if err := os.WriteFile(configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := &cli{t: t, env: env}
	synapseYAML := filepath.Join(syn.dir, "homeserver.yaml")
	out, err := cli.run("", "import-synapse", "-config", configPath, "-synapse-config", synapseYAML)
	if err != nil || !strings.Contains(out, "everything can move") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	out, err = cli.run("", "import-synapse", "-config", configPath, "-synapse-config", synapseYAML, "-apply")
	if err != nil || !strings.Contains(out, "imported") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if out, err := cli.run("", "import-synapse", "-config", configPath, "-synapse-config", synapseYAML, "-apply"); err != nil ||
		!strings.Contains(out, "access_tokens") || strings.Contains(out, "moved 1") {
		t.Fatalf("a second import: %v\n%s", err, out)
	}

	// Synapse now delegates to registrar.
	syn.stop()
	syn.configure(synapseConfig{Pepper: pepper, Postgres: pg, Delegation: &synapseDelegation{Issuer: registrarBase + "/", ClientID: "synapse",
		ClientSecret: synapseClientSecret, AdminToken: synapseAdminToken, AccountURL: registrarBase + "/_registrar/account"}})
	startServeConfig(t, env, configPath, fmt.Sprintf("127.0.0.1:%d", rPort))
	syn.start()
	ctx := context.Background()

	for _, s := range append(people.sessions, people.refresh) {
		c, _ := mautrix.NewClient(syn.base, id.UserID(s.user), s.token)
		who, err := c.Whoami(ctx)
		if err != nil || who.UserID != id.UserID(s.user) || who.DeviceID != id.DeviceID(s.device) {
			t.Fatalf("%s's token on %s after the move: %+v %v", s.user, s.device, who, err)
		}
		if _, err := c.SyncRequest(ctx, 0, "", "", true, "offline"); err != nil {
			t.Fatalf("%s's sync after the move: %v", s.user, err)
		}
	}
	registrar, _ := mautrix.NewClient(registrarBase, "", "")
	var refreshed mautrix.RespLogin
	if _, err := registrar.MakeRequest(ctx, http.MethodPost, registrar.BuildClientURL("v3", "refresh"),
		map[string]any{"refresh_token": people.refresh.refreshToken}, &refreshed); err != nil || refreshed.AccessToken == "" {
		t.Fatalf("refreshing a Synapse refresh token at registrar: %v", err)
	}
	c, _ := mautrix.NewClient(syn.base, id.UserID(people.refresh.user), refreshed.AccessToken)
	if who, err := c.Whoami(ctx); err != nil || who.DeviceID != id.DeviceID(people.refresh.device) {
		t.Fatalf("the refreshed token on Synapse: %+v %v", who, err)
	}
	for user, password := range people.passwords {
		lp := strings.TrimPrefix(strings.Split(user, ":")[0], "@")
		_, err := registrar.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser,
			User: lp}, Password: password})
		switch {
		case lp == "gone" && errcode(err) != "M_USER_DEACTIVATED" && errcode(err) != "M_FORBIDDEN":
			t.Errorf("the deactivated user logged in: %v", err)
		case lp == "locked" && errcode(err) != "M_USER_LOCKED":
			t.Errorf("the locked user: %v", err)
		case lp != "gone" && lp != "locked" && err != nil:
			t.Errorf("%s with the old password: %v", lp, err)
		}
	}
	// The admin is admin on Synapse through registrar.
	login, err := registrar.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser,
		User: "boss"}, Password: people.passwords["@boss:localhost"]})
	if err != nil {
		t.Fatal(err)
	}
	boss, _ := mautrix.NewClient(syn.base, login.UserID, login.AccessToken)
	var u map[string]any
	if _, err := boss.MakeRequest(ctx, http.MethodGet, syn.base+"/_synapse/admin/v2/users/@carol:localhost", nil, &u); err != nil ||
		!strings.Contains(jsonString(u), "carol@example.org") {
		t.Fatalf("the admin on Synapse's admin API: %v %v", u, err)
	}
	// registrar shows what moved.
	store := openStore(t, env)
	if a, err := store.AccountByUserID(ctx, "@shadow:localhost"); err != nil || !a.ShadowBanned {
		t.Fatalf("the shadow ban: %+v %v", a, err)
	}
	if tps, _ := store.Threepids(ctx, "@carol:localhost"); len(tps) != 1 {
		t.Fatalf("carol's address: %+v", tps)
	}
}

// synapsePostgresDB makes a database for Synapse in the test's
// PostgreSQL (C collation, as Synapse requires), dropped afterwards.
func synapsePostgresDB(t *testing.T) string {
	t.Helper()
	admin, err := sql.Open("pgx", os.Getenv(dbtest.EnvPostgres))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "synapse_" + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE DATABASE ` + name + ` TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
		admin.Close()
	})
	return name
}

// populateSynapse makes Synapse's people and sessions through its own
// APIs.
func populateSynapse(t *testing.T, syn *synapse) synapsePeople {
	t.Helper()
	ctx := context.Background()
	anon, _ := mautrix.NewClient(syn.base, "", "")
	people := synapsePeople{passwords: map[string]string{}}
	for _, name := range []string{"alice", "bob", "carol", "gone", "locked", "shadow"} {
		password := "pw-" + name + "-synapse"
		reg, err := anon.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: name, Password: password, InitialDeviceDisplayName: name + "'s first"})
		if err != nil {
			t.Fatalf("registering %s on Synapse: %v", name, err)
		}
		people.passwords[reg.UserID.String()] = password
		people.sessions = append(people.sessions, synapseSession{user: reg.UserID.String(), device: reg.DeviceID.String(), token: reg.AccessToken})
		for i := 0; i < 2; i++ {
			login, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
				Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: name}, Password: password})
			if err != nil {
				t.Fatalf("logging %s in on Synapse: %v", name, err)
			}
			people.sessions = append(people.sessions, synapseSession{user: login.UserID.String(), device: login.DeviceID.String(), token: login.AccessToken})
		}
	}
	// A session with a refresh token.
	var refreshing mautrix.RespLogin
	if _, err := anon.MakeRequest(ctx, http.MethodPost, anon.BuildClientURL("v3", "login"), map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": people.passwords["@alice:localhost"], "refresh_token": true},
		&refreshing); err != nil || refreshing.RefreshToken == "" {
		t.Fatalf("a refreshable login on Synapse: %v %+v", err, refreshing)
	}
	people.refresh = synapseSession{user: refreshing.UserID.String(), device: refreshing.DeviceID.String(), token: refreshing.AccessToken,
		refreshToken: refreshing.RefreshToken}
	// An admin, with Synapse's shared-secret registration.
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	getJSON(t, syn.base+"/_synapse/admin/v1/register", &nonce)
	people.passwords["@boss:localhost"] = "pw-boss-synapse"
	body, _ := json.Marshal(map[string]any{"nonce": nonce.Nonce, "username": "boss", "password": "pw-boss-synapse", "admin": true,
		"mac": impl.SharedSecretMAC([]byte(synapseSharedSecret), nonce.Nonce, "boss", "pw-boss-synapse", true)})
	resp, err := http.Post(syn.base+"/_synapse/admin/v1/register", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("shared-secret registration on Synapse: %v %v", resp, err)
	}
	var admin mautrix.RespRegister
	_ = json.NewDecoder(resp.Body).Decode(&admin)
	resp.Body.Close()
	boss := admin.AccessToken
	// An address, a deactivation, a lock and a shadow ban by the admin.
	for _, call := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/_synapse/admin/v2/users/@carol:localhost", map[string]any{"threepids": []map[string]string{{"medium": "email", "address": "carol@example.org"}}}},
		{"POST", "/_synapse/admin/v1/deactivate/@gone:localhost", map[string]any{}},
		{"PUT", "/_synapse/admin/v2/users/@locked:localhost", map[string]any{"locked": true}},
		{"POST", "/_synapse/admin/v1/users/@shadow:localhost/shadow_ban", map[string]any{}},
	} {
		if status, out := syn.adminCall(call.method, call.path, boss, call.body); status != 200 {
			t.Fatalf("%s %s on Synapse: %d %v", call.method, call.path, status, out)
		}
	}
	// Every session works before the move (but the deactivated person's
	// and the locked one's, which do not count).
	var kept []synapseSession
	for _, s := range people.sessions {
		if strings.HasPrefix(s.user, "@gone:") || strings.HasPrefix(s.user, "@locked:") {
			continue
		}
		c, _ := mautrix.NewClient(syn.base, id.UserID(s.user), s.token)
		if _, err := c.Whoami(ctx); err != nil {
			t.Fatalf("%s's token before the move: %v", s.user, err)
		}
		kept = append(kept, s)
	}
	people.sessions = kept
	return people
}

// TestImportDryRunNamesWhatCannotMove: the command's dry run on a
// database with a localpart registrar refuses exits non-zero and names
// it; a pepper other than Synapse's is refused before anything is read.
func TestImportDryRunNamesWhatCannotMove(t *testing.T) {
	dir := t.TempDir()
	if err := testkit.WriteSynapseDB(filepath.Join(dir, "homeserver.db"), testkit.SynapseFixture{Users: 3, DevicesPerUser: 1,
		ServerName: "localhost", Oddities: true}); err != nil {
		t.Fatal(err)
	}
	synapseYAML := filepath.Join(dir, "homeserver.yaml")
	if err := os.WriteFile(synapseYAML, []byte("server_name: localhost\ndatabase: {name: sqlite3, args: {database: homeserver.db}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := newCLI(t)
	cli.env["REGISTRAR_SERVER_NAME"] = "localhost"
	out, err := cli.run("", "import-synapse", "-synapse-config", synapseYAML)
	if err == nil || !strings.Contains(out, "@bad name:localhost: registrar's rules refuse its localpart") || strings.Contains(out, "syt_") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	cli.env["REGISTRAR_PASSWORD_CONFIG__PEPPER"] = "another pepper"
	if _, err := cli.run("", "import-synapse", "-synapse-config", synapseYAML); err == nil || !strings.Contains(err.Error(), "pepper") {
		t.Fatalf("a different pepper: %v", err)
	}
}
