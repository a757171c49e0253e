package db_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"registrar/db"
	"registrar/db/dbtest"
)

func TestMigrateFreshThenAgainIsNoOp(t *testing.T) {
	ctx := context.Background()
	d := dbtest.New(t)
	s := d.Open(t, nil)
	v1, err := s.SchemaVersion(ctx)
	if err != nil || v1 != db.Migrations() {
		t.Fatalf("schema version %d, %v", v1, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	s2 := d.Open(t, nil)
	if v2, _ := s2.SchemaVersion(ctx); v2 != v1 {
		t.Fatalf("version changed from %d to %d", v1, v2)
	}
}

// TestNewerBinaryUpgradesOlderDatabase builds a database as the first
// release left it, then opens it with every migration.
func TestNewerBinaryUpgradesOlderDatabase(t *testing.T) {
	ctx := context.Background()
	d := dbtest.New(t)
	restore := db.UseFirstMigrations(1)
	old, err := db.Open(ctx, d.DSN, d.Options(nil))
	restore()
	if err != nil {
		t.Fatal(err)
	}
	// Written as the first release wrote it, without later columns.
	if err := old.Exec(`INSERT INTO accounts (user_id, localpart_lower, kind, created_at) VALUES ('@early:x', 'early', 'user', 1)`); err != nil {
		t.Fatal(err)
	}
	if err := old.Exec(`INSERT INTO uia_sessions (session_id, method, path, created_at, expires_at) VALUES ('old', 'POST', '/x', 1, 9999999999999)`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s := d.Open(t, nil)
	if v, _ := s.SchemaVersion(ctx); v != db.Migrations() {
		t.Fatalf("schema version %d, want %d", v, db.Migrations())
	}
	a, err := s.Account(ctx, "early")
	if err != nil || a.ApprovalPending {
		t.Fatalf("account after upgrade: %+v %v", a, err)
	}
	if _, err := s.UIASession(ctx, "old"); err != db.ErrNotFound {
		t.Fatalf("a session of an earlier release survived the upgrade: %v", err)
	}
}

// TestInstancesStartingTogetherMigrateOnce opens one fresh database from
// several instances at once.
func TestInstancesStartingTogetherMigrateOnce(t *testing.T) {
	d := dbtest.New(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := db.Open(context.Background(), d.DSN, d.Options(nil))
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("an instance failed to start: %v", err)
	}
}

func TestDuplicateAccountRefusedCaseInsensitively(t *testing.T) {
	ctx := context.Background()
	s := dbtest.New(t).Open(t, nil)
	reg := db.Registration{Account: db.Account{UserID: "@Alice:x", LocalpartLower: "alice", Kind: db.KindUser},
		Login: &db.Login{DeviceID: "D1", AccessTokenHash: "h1"}}
	if _, err := s.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	reg.Account.UserID, reg.Login.AccessTokenHash = "@alice:x", "h2"
	if _, err := s.Register(ctx, reg); err != db.ErrUserExists {
		t.Fatalf("second registration: %v, want ErrUserExists", err)
	}
	if _, err := s.LookupAccessToken(ctx, "h2"); err != db.ErrNotFound {
		t.Fatalf("the refused registration left a token behind: %v", err)
	}
}

// TestEveryTableIsPorted compares the tables of a migrated database with
// the tables port-db copies: a table a new migration creates is ported
// without anyone listing it.
func TestEveryTableIsPorted(t *testing.T) {
	ctx := context.Background()
	s := dbtest.New(t).Open(t, nil)
	have, err := s.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ported, sequenced := db.PortedTables()
	if got, want := strings.Join(sorted(ported), " "), strings.Join(have, " "); got != want {
		t.Fatalf("port-db copies\n  %s\nthe database has\n  %s", got, want)
	}
	for _, table := range []string{"login_tokens", "oauth_consents", "browser_sessions"} {
		if !slices.Contains(ported, table) {
			t.Errorf("%s is not ported", table)
		}
	}
	if strings.Join(sorted(sequenced), " ") != "access_tokens admin_audit refresh_tokens revocations" {
		t.Errorf("tables with a sequence: %v", sequenced)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
