package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"registrar/db"
	"registrar/db/dbtest"
	"registrar/impl"
	"registrar/impl/regtokens"
)

// TestPortDBCopiesEverything fills an SQLite database through the API
// (accounts, devices, access and refresh tokens, an address, registration
// tokens, a UIA session in progress), ports it into an empty PostgreSQL
// one with the command, and serves the copy: everything still works.
func TestPortDBCopiesEverything(t *testing.T) {
	if !dbtest.Postgres() {
		t.Skip("port-db's target is PostgreSQL: this runs in make test's PostgreSQL pass")
	}
	ctx := context.Background()
	dir := t.TempDir()
	source := filepath.Join(dir, "old.db")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := portConfig(dir)
	from, err := db.Open(ctx, source, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := impl.NewServer(cfg, from, impl.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := impl.NewAdmin(cfg, from, quiet)
	if err != nil {
		t.Fatal(err)
	}
	five := 5
	if _, err := admin.Tokens.Create(ctx, regtokens.Spec{Token: "invite", UsesAllowed: &five}); err != nil {
		t.Fatal(err)
	}
	c := client{t, srv}
	register := func(name string) map[string]any {
		first := c.do("POST", "/_matrix/client/v3/register", `{"username":"`+name+`","password":"pw-`+name+`","refresh_token":true}`, "")
		s := first["session"].(string)
		c.do("POST", "/_matrix/client/v3/register", `{"auth":{"type":"m.login.registration_token","token":"invite","session":"`+s+`"}}`, "")
		return c.do("POST", "/_matrix/client/v3/register", `{"auth":{"type":"m.login.dummy","session":"`+s+`"}}`, "")
	}
	ann, bob := register("ann"), register("bob")
	if ann["status"] != 200.0 || bob["status"] != 200.0 {
		t.Fatalf("registrations: %v %v", ann, bob)
	}
	if err := from.AddThreepid(ctx, "@ann:example.org", db.NewThreepid{Medium: "email", Address: "ann@example.org", ValidatedAt: 1}); err != nil {
		t.Fatal(err)
	}
	// A login token waiting to be spent (a table the first port-db forgot).
	if err := from.CreateLoginToken(ctx, "@ann:example.org", "login-token-hash", time.Now().Add(time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	pending := c.do("POST", "/_matrix/client/v3/register", `{"username":"cat","password":"pw-cat"}`, "")["session"].(string)
	c.do("POST", "/_matrix/client/v3/register", `{"auth":{"type":"m.login.registration_token","token":"invite","session":"`+pending+`"}}`, "")
	from.Close()

	target := dbtest.New(t)
	yaml := filepath.Join(dir, "pg.yaml")
	if err := os.WriteFile(yaml, []byte("database:\n  name: psycopg2\n  args:\n    dsn: \""+target.DSN+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := &cli{t: t, env: map[string]string{"REGISTRAR_DATA_DIRECTORY": dir}} // the database is the file's
	out, err := cli.run("", "port-db", "-sqlite", source, "-config", yaml)
	if err != nil || !strings.Contains(out, "row counts verified") {
		t.Fatalf("port-db: %v %s", err, out)
	}
	if _, err := cli.run("", "port-db", "-sqlite", source, "-config", yaml); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a second port into the filled database: %v", err)
	}

	to := target.Open(t, nil)
	srv2, err := impl.NewServer(cfg, to, impl.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c2 := client{t, srv2}
	if r := c2.do("GET", "/_matrix/client/v3/account/whoami", "", ann["access_token"].(string)); r["user_id"] != "@ann:example.org" {
		t.Fatalf("ann's token after the port: %v", r)
	}
	if r := c2.do("POST", "/_matrix/client/v3/refresh", `{"refresh_token":"`+bob["refresh_token"].(string)+`"}`, ""); r["status"] != 200.0 {
		t.Fatalf("bob's refresh token after the port: %v", r)
	}
	if r := c2.do("POST", "/_matrix/client/v3/login", `{"type":"m.login.password","user":"bob","password":"pw-bob"}`, ""); r["status"] != 200.0 {
		t.Fatalf("bob's password after the port: %v", r)
	}
	if r := c2.do("GET", "/_matrix/client/v3/account/3pid", "", ann["access_token"].(string)); !strings.Contains(jsonString(r), "ann@example.org") {
		t.Fatalf("ann's address after the port: %v", r)
	}
	if r := c2.do("POST", "/_matrix/client/v3/register", `{"auth":{"type":"m.login.dummy","session":"`+pending+`"}}`, ""); r["user_id"] != "@cat:example.org" {
		t.Fatalf("the session in progress after the port: %v", r)
	}
	if user, err := to.UseLoginToken(ctx, "login-token-hash"); err != nil || user != "@ann:example.org" {
		t.Fatalf("the login token after the port: %q %v", user, err)
	}
	tok, err := to.RegistrationToken(ctx, "invite")
	if err != nil || tok.Completed != 3 || tok.Pending != 0 {
		t.Fatalf("the registration token after the port: %+v %v", tok, err)
	}
	// New rows get new ids after the copied ones.
	if r := c2.do("POST", "/_matrix/client/v3/login", `{"type":"m.login.password","user":"ann","password":"pw-ann"}`, ""); r["status"] != 200.0 {
		t.Fatalf("a new login after the port: %v", r)
	}
}
