package db_test

import (
	"context"
	"testing"

	"registrar/db"
	"registrar/db/dbtest"
)

// TestOutboxNotesEveryChangeInItsTransaction: with the sync on, making an
// account, a device, renaming and deleting it, deactivating and adding an
// address each leave a note; a change during a delivery keeps its note;
// with the sync off nothing is noted.
func TestOutboxNotesEveryChangeInItsTransaction(t *testing.T) {
	ctx := context.Background()
	s := dbtest.New(t).Open(t, nil)
	entries := func() map[string]db.OutboxEntry {
		t.Helper()
		out := map[string]db.OutboxEntry{}
		for _, u := range []string{"@a:x", "@b:x"} {
			list, err := s.UserOutbox(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range list {
				out[e.UserID+"/"+e.DeviceID] = e
			}
		}
		return out
	}
	register := func(user string) {
		t.Helper()
		if _, err := s.Register(ctx, db.Registration{Account: db.Account{UserID: user, LocalpartLower: user[1:2]},
			Login: &db.Login{DeviceID: "DEV", AccessTokenHash: "h-" + user}}); err != nil {
			t.Fatal(err)
		}
	}
	register("@a:x")
	if n := len(entries()); n != 0 {
		t.Fatalf("noted %d with the sync off", n)
	}
	if err := s.SetHomeserverSync(ctx, true); err != nil {
		t.Fatal(err)
	}
	register("@b:x")
	got := entries()
	if len(got) != 2 || got["@b:x/"].Version != 1 || got["@b:x/DEV"].Version != 1 {
		t.Fatalf("after a registration: %+v", got)
	}
	claimed, err := s.ClaimOutbox(ctx, 10, 60_000)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claimed %+v %v", claimed, err)
	}
	if again, _ := s.ClaimOutbox(ctx, 10, 60_000); len(again) != 0 {
		t.Fatalf("leased entries claimed twice: %+v", again)
	}
	// The device is renamed while its entry is being delivered: the entry
	// stays, with a new version.
	if err := s.RenameDevice(ctx, "@b:x", "DEV", "Phone"); err != nil {
		t.Fatal(err)
	}
	for _, e := range claimed {
		if err := s.CompleteOutbox(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got = entries()
	if len(got) != 1 || got["@b:x/DEV"].Version != 2 {
		t.Fatalf("after the delivery raced a rename: %+v", got)
	}
	if err := s.DeleteDevice(ctx, "@b:x", "DEV"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddThreepid(ctx, "@b:x", db.NewThreepid{Medium: "email", Address: "b@x", ValidatedAt: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Deactivate(ctx, "@a:x", false); err != nil {
		t.Fatal(err)
	}
	got = entries()
	// (deactivating @a:x deleted its device too)
	if len(got) != 4 || got["@b:x/DEV"].Version != 3 || got["@b:x/"].Version != 1 || got["@a:x/"].Version != 1 ||
		got["@a:x/DEV"].Version != 1 {
		t.Fatalf("after delete, address, deactivation: %+v", got)
	}
	// A failure makes the entry due later; stats count it.
	e := got["@b:x/"]
	if err := s.FailOutbox(ctx, e, 1<<60, "homeserver down"); err != nil {
		t.Fatal(err)
	}
	stats, err := s.HomeserverOutboxStats(ctx)
	if err != nil || stats.Pending != 4 || stats.Failing != 1 || stats.LastError != "homeserver down" {
		t.Fatalf("stats %+v %v", stats, err)
	}
}
