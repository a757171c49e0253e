package db

import (
	"context"
	"path/filepath"
	"testing"
)

// TestNewerBinaryUpgradesOlderDatabase builds a database as the first
// release left it, then opens it with every migration.
func TestNewerBinaryUpgradesOlderDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	all := migrations
	migrations = all[:1]
	old, err := Open(ctx, path, Options{})
	migrations = all
	if err != nil {
		t.Fatal(err)
	}
	// Written as the first release wrote it, without later columns.
	if err := old.db.Exec(`INSERT INTO accounts (user_id, localpart_lower, kind, created_at) VALUES ('@early:x', 'early', 'user', 1)`).Error; err != nil {
		t.Fatal(err)
	}
	old.Close()

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer s.Close()
	if v, _ := s.SchemaVersion(ctx); v != len(all) {
		t.Fatalf("schema version %d, want %d", v, len(all))
	}
	a, err := s.Account(ctx, "early")
	if err != nil || a.ApprovalPending {
		t.Fatalf("account after upgrade: %+v %v", a, err)
	}
}
