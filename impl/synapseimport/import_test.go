package synapseimport_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"registrar/db"
	"registrar/db/dbtest"
	"registrar/impl/secrets"
	"registrar/impl/synapseimport"
	"registrar/impl/testkit"
)

const server = "example.org"

func source(t testing.TB, f testkit.SynapseFixture) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "homeserver.db")
	f.ServerName = server
	if err := testkit.WriteSynapseDB(path, f); err != nil {
		t.Fatal(err)
	}
	return path
}

func run(t testing.TB, path string, store *db.Store, o synapseimport.Options) (synapseimport.Report, error) {
	t.Helper()
	src, err := synapseimport.Open(context.Background(), path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	o.ServerName = server
	return synapseimport.Run(context.Background(), src, store, o)
}

// TestImportMovesEverything: a dry run counts and lists what cannot move
// (naming it) and writes nothing; an import moves the users with their
// state, addresses, external IDs, devices, tokens (hashed, on their
// devices, with their refresh chain) and registration tokens; a second
// run changes nothing.
func TestImportMovesEverything(t *testing.T) {
	ctx := context.Background()
	path := source(t, testkit.SynapseFixture{Users: 5, DevicesPerUser: 3, Oddities: true})
	store := dbtest.New(t).Open(t, nil)

	rep, err := run(t, path, store, synapseimport.Options{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	cannot := strings.Join(rep.Cannot, "\n")
	for _, want := range []string{"@bad name:example.org: registrar's rules refuse", "@User0:example.org: another user has the same ID",
		"@oddhash:example.org: its password hash is of an unknown scheme", "of @user0:example.org: its device GONE was deleted"} {
		if !strings.Contains(cannot, want) {
			t.Errorf("the dry run does not list %q:\n%s", want, cannot)
		}
	}
	if rep.Read[synapseimport.TableUsers] != 8 || rep.Read[synapseimport.TableDevices] != 15 || rep.Read[synapseimport.TableAccessTokens] != 16 {
		t.Fatalf("dry run read %v", rep.Read)
	}
	if n, _ := store.CountAccounts(ctx); n != 0 {
		t.Fatalf("a dry run wrote %d accounts", n)
	}

	rep, err = run(t, path, store, synapseimport.Options{Apply: true, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"users": 6, "user_threepids": 5, "user_external_ids": 5, "devices": 15, "refresh_tokens": 10, "refresh_token_chains": 5,
		"access_tokens": 15, "registration_tokens": 1}
	for table, n := range want {
		if rep.Moved[table] != n {
			t.Errorf("%s: moved %d, want %d", table, rep.Moved[table], n)
		}
	}
	admin, _ := store.AccountByUserID(ctx, "@user0:example.org")
	gone, _ := store.AccountByUserID(ctx, "@user1:example.org")
	locked, _ := store.AccountByUserID(ctx, "@user2:example.org")
	odd, _ := store.AccountByUserID(ctx, "@oddhash:example.org")
	if !admin.Admin || admin.DisplayName != "User 0" || admin.CreatedAt != 1_700_000_000_000 || !strings.HasPrefix(admin.PasswordHash, "$2a$") ||
		admin.ConsentVersion != "1.0" || !gone.Deactivated() || !gone.Erased || gone.PasswordHash != "" || !locked.Locked ||
		!locked.ShadowBanned || odd.PasswordHash != "" || odd.UserID == "" {
		t.Fatalf("accounts: %+v %+v %+v %+v", admin, gone, locked, odd)
	}
	devices, _ := store.Devices(ctx, "@user0:example.org")
	if len(devices) != 3 || devices[0].DisplayName != "Device 0" || devices[0].LastSeenUserAgent != "Element X" {
		t.Fatalf("devices %+v", devices)
	}
	owner, err := store.LookupAccessToken(ctx, secrets.HashToken(testkit.AccessToken(3, 2)))
	if err != nil || owner.UserID != "@user3:example.org" || owner.DeviceID != "DEV2" {
		t.Fatalf("an access token: %+v %v", owner, err)
	}
	refreshed, err := store.LookupAccessToken(ctx, secrets.HashToken(testkit.AccessToken(3, 0)))
	if err != nil || refreshed.RefreshTokenID == nil {
		t.Fatalf("an access token of a refresh chain: %+v %v", refreshed, err)
	}
	tps, _ := store.Threepids(ctx, "@user4:example.org")
	ext, _ := store.ExternalIDs(ctx, "@user4:example.org")
	tok, _ := store.RegistrationToken(ctx, "invite")
	if len(tps) != 1 || tps[0].ValidatedAt != 1700000000001 || len(ext) != 1 || ext[0].ExternalID != "google-4" || tok.Completed != 3 ||
		tok.Pending != 0 {
		t.Fatalf("threepids %+v, external IDs %+v, token %+v", tps, ext, tok)
	}
	// The rotated refresh token moves and keeps its place in the chain:
	// rotating the first one is reuse (it was consumed).
	if _, err := store.RotateRefreshToken(ctx, secrets.HashToken(testkit.RefreshToken(3, true)),
		db.Login{AccessTokenHash: "x1", RefreshTokenHash: "y1"}); err != nil {
		t.Fatalf("refreshing an imported refresh token: %v", err)
	}

	again, err := run(t, path, store, synapseimport.Options{Apply: true, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	for table, n := range again.Moved {
		if n != 0 {
			t.Errorf("a second run moved %d rows of %s", n, table)
		}
	}
	if !again.Resumed {
		t.Error("the second run did not know the first")
	}
}

// TestImportRefusesAnotherDatabaseAndResumes: into a database with
// accounts of its own only with Merge; an interrupted import, run again,
// ends as an uninterrupted one.
func TestImportRefusesAnotherDatabaseAndResumes(t *testing.T) {
	ctx := context.Background()
	path := source(t, testkit.SynapseFixture{Users: 12, DevicesPerUser: 2, SameHash: true})
	busy := dbtest.New(t).Open(t, nil)
	if _, err := busy.Register(ctx, db.Registration{Account: db.Account{UserID: "@own:example.org", LocalpartLower: "own"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, path, busy, synapseimport.Options{Apply: true}); err == nil || !strings.Contains(err.Error(), "-merge") {
		t.Fatalf("into a database with accounts: %v", err)
	}
	if _, err := run(t, path, busy, synapseimport.Options{Apply: true, Merge: true}); err != nil {
		t.Fatalf("with merge: %v", err)
	}

	whole := dbtest.New(t).Open(t, nil)
	if _, err := run(t, path, whole, synapseimport.Options{Apply: true, BatchSize: 5}); err != nil {
		t.Fatal(err)
	}
	cut := dbtest.New(t).Open(t, nil)
	ctxCut, cancel := context.WithCancel(ctx)
	src, err := synapseimport.Open(ctx, path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = synapseimport.Run(ctxCut, src, cut, synapseimport.Options{ServerName: server, Apply: true, BatchSize: 5,
		Progress: func(table string, done, total int64) {
			if table == synapseimport.TableDevices && done > 0 {
				cancel() // killed halfway through the devices
			}
		}})
	src.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted run: %v", err)
	}
	if n, _ := cut.CountAccounts(ctx); n != 12 {
		t.Fatalf("the interrupted run left %d accounts", n)
	}
	if _, err := run(t, path, cut, synapseimport.Options{Apply: true, BatchSize: 7}); err != nil {
		t.Fatalf("resuming: %v", err)
	}
	for _, q := range []string{"SELECT user_id, password_hash, admin, display_name FROM accounts ORDER BY user_id",
		"SELECT user_id, device_id, display_name, last_seen_at FROM devices ORDER BY user_id, device_id",
		"SELECT token_hash, user_id, device_id FROM access_tokens ORDER BY token_hash",
		"SELECT r.token_hash, n.token_hash FROM refresh_tokens r LEFT JOIN refresh_tokens n ON n.id = r.next_token_id ORDER BY r.token_hash",
		"SELECT medium, address, user_id FROM threepids ORDER BY address"} {
		if a, b := dump(t, whole, q), dump(t, cut, q); a != b || a == "" {
			t.Errorf("%s:\nwhole:\n%s\nresumed:\n%s", q, a, b)
		}
	}
}

func dump(t *testing.T, s *db.Store, q string) string {
	t.Helper()
	sqlDB, err := s.SQLDB()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := sqlDB.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			parts = append(parts, strings.TrimSpace(strings.ReplaceAll(fmtAny(v), "\n", " ")))
		}
		out = append(out, strings.Join(parts, "|"))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// TestNewerSchemaIsRefusedByVersion: a schema past what this registrar
// read is refused, naming its version.
func TestNewerSchemaIsRefusedByVersion(t *testing.T) {
	path := source(t, testkit.SynapseFixture{Users: 1, DevicesPerUser: 1})
	sqlDB := openSQLite(t, path)
	if _, err := sqlDB.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	sqlDB.Close()
	_, err := synapseimport.Open(context.Background(), path, t.TempDir())
	if !errors.Is(err, synapseimport.ErrSchema) || !strings.Contains(err.Error(), "version 99") || !strings.Contains(err.Error(), "69 to 93") {
		t.Fatalf("a newer schema: %v", err)
	}
}

// BenchmarkImport imports 10,000 users with 3 devices and 3 access tokens
// each (and a refresh chain on one device) into the engine under test;
// it reports users per second.
func BenchmarkImport(b *testing.B) {
	batchSize, _ := strconv.Atoi(os.Getenv("IMPORT_BATCH"))
	path := source(b, testkit.SynapseFixture{Users: 10_000, DevicesPerUser: 3, SameHash: true})
	for b.Loop() {
		b.StopTimer()
		store := dbtest.New(b).Open(b, nil)
		b.StartTimer()
		rep, err := run(b, path, store, synapseimport.Options{Apply: true, BatchSize: batchSize})
		if err != nil || rep.Moved[synapseimport.TableAccessTokens] != 30_000 {
			b.Fatalf("%v %v", rep.Moved, err)
		}
	}
	b.ReportMetric(float64(10_000*b.N)/b.Elapsed().Seconds(), "users/s")
}
