package db_test

import (
	"context"
	"path/filepath"
	"testing"

	"registrar/db"
)

func TestMigrateFreshThenAgainIsNoOp(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := s.SchemaVersion(ctx)
	if err != nil || v1 < 1 {
		t.Fatalf("schema version %d, %v", v1, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	s.Close()
	s, err = db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	v2, _ := s.SchemaVersion(ctx)
	if v2 != v1 {
		t.Fatalf("version changed from %d to %d", v1, v2)
	}
}

func TestDuplicateAccountRefusedCaseInsensitively(t *testing.T) {
	ctx := context.Background()
	s, err := db.Open(ctx, filepath.Join(t.TempDir(), "d.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reg := db.Registration{Account: db.Account{UserID: "@Alice:x", LocalpartLower: "alice", Kind: db.KindUser},
		Login: &db.Login{DeviceID: "D1", AccessTokenHash: "h1"}}
	if err := s.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	reg.Account.UserID, reg.Login.AccessTokenHash = "@alice:x", "h2"
	if err := s.Register(ctx, reg); err != db.ErrUserExists {
		t.Fatalf("second registration: %v, want ErrUserExists", err)
	}
	if _, err := s.LookupAccessToken(ctx, "h2"); err != db.ErrNotFound {
		t.Fatalf("the refused registration left a token behind: %v", err)
	}
}
