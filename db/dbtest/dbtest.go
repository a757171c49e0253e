// Package dbtest gives tests a fresh database on the engine under test:
// an SQLite file in a temporary directory, or, when REGISTRAR_TEST_POSTGRES
// names a PostgreSQL database (make test sets it when one answers), a
// fresh schema in it, dropped when the test ends. The whole suite runs
// once per engine.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for Dump
	_ "github.com/mattn/go-sqlite3"    // database/sql driver "sqlite3", for Dump

	"registrar/db"
)

// EnvPostgres names the PostgreSQL database the suite runs on, as a URL.
const EnvPostgres = "REGISTRAR_TEST_POSTGRES"

// Postgres reports whether the suite runs on PostgreSQL.
func Postgres() bool { return os.Getenv(EnvPostgres) != "" }

// Database is one test's database.
type Database struct {
	// DSN is what db.Open takes.
	DSN string
	// Channel is the database's own revocation channel, so that tests
	// sharing a PostgreSQL server do not hear each other.
	Channel string
	// Schema is the PostgreSQL schema, "" on SQLite.
	Schema string
}

// New returns a fresh, empty database for t.
func New(t testing.TB) Database {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		return Database{DSN: filepath.Join(t.TempDir(), "registrar.db")}
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "rt_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("%s: %v (is PostgreSQL running? see the README)", EnvPostgres, err)
	}
	t.Cleanup(func() {
		c, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgres, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	// The tests' commits need not survive a crash of the test server.
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()
	return Database{DSN: u.String(), Channel: schema, Schema: schema}
}

// Options are db.Open's options for this database.
func (d Database) Options(now func() time.Time) db.Options {
	return db.Options{Now: now, NotifyChannel: d.Channel}
}

// Open opens the database, closing it when the test ends.
func (d Database) Open(t testing.TB, now func() time.Time) *db.Store {
	t.Helper()
	s, err := db.Open(context.Background(), d.DSN, d.Options(now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Dump returns every row of table as text, one line per row, read
// straight from the database.
func (d Database) Dump(t testing.TB, table string) string {
	t.Helper()
	driver, dsn := "sqlite3", "file:"+d.DSN+"?mode=ro"
	if d.Schema != "" {
		driver, dsn = "pgx", d.DSN
	}
	conn, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query("SELECT * FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			fmt.Fprintf(&out, "%s=%v ", cols[i], v)
		}
		out.WriteString("\n")
	}
	return out.String()
}

// ConfigEnv is the environment that points the binary's configuration at
// this database (REGISTRAR_DATABASE__...), for tests that run it; on
// SQLite it is empty, the binary's default (a file in its data directory)
// being as fresh as the data directory.
func (d Database) ConfigEnv() map[string]string {
	if d.Schema == "" {
		return map[string]string{}
	}
	return map[string]string{"REGISTRAR_DATABASE__NAME": "psycopg2", "REGISTRAR_DATABASE__ARGS__DSN": d.DSN}
}
