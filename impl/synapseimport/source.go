// Package synapseimport moves an existing Synapse's accounts, credentials
// and sessions into registrar (what MAS's syn2mas does): users with their
// state, password hashes (Synapse's bcrypt, verified with its pepper and
// rehashed at the next login), email and phone addresses, devices, access
// and refresh tokens (stored hashed, each keeping its device, expiry and
// refresh chain), external IDs and registration tokens. It reads one
// consistent snapshot of Synapse's database (a repeatable-read transaction
// on PostgreSQL, a copy made with the backup API on SQLite), in batches,
// and writes registrar's in batches that leave what is there alone, so a
// second run changes nothing and an interrupted one resumes.
package synapseimport

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mattn/go-sqlite3"
	"gopkg.in/yaml.v3"
)

// Schema versions of Synapse's database this package reads: 69 (Synapse
// 1.6x) to 93, checked against Synapse's schema deltas up to 93 (the
// columns it reads: users gained approved in 73, locked in 80, suspended
// in 85; profiles gained full_user_id in 76; the other tables are
// unchanged since 69).
const (
	MinSchemaVersion = 69
	MaxSchemaVersion = 93
)

// Config is what the import reads of Synapse's homeserver.yaml.
type Config struct {
	ServerName string `yaml:"server_name"`
	Database   struct {
		Name string         `yaml:"name"`
		Args map[string]any `yaml:"args"`
	} `yaml:"database"`
	PasswordConfig struct {
		Pepper string `yaml:"pepper"`
	} `yaml:"password_config"`
}

// ReadConfig reads a Synapse configuration file.
func ReadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if c.ServerName == "" {
		return c, fmt.Errorf("%s: no server_name", path)
	}
	return c, nil
}

// DatabaseURL is the configuration's database as the -synapse-db flag
// takes it: a postgres:// URL, or the SQLite file's path.
func (c Config) DatabaseURL(configDir string) (string, error) {
	arg := func(k string) string {
		if v, ok := c.Database.Args[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	switch c.Database.Name {
	case "sqlite3", "":
		path := arg("database")
		if path == "" {
			return "", errors.New("database.args.database (the SQLite file) is not set")
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(configDir, path)
		}
		return path, nil
	case "psycopg2", "postgres", "postgresql":
		u := url.URL{Scheme: "postgres", Path: "/" + firstNonEmpty(arg("database"), arg("dbname"))}
		host := firstNonEmpty(arg("host"), "localhost")
		if port := arg("port"); port != "" {
			host += ":" + port
		}
		u.Host = host
		if user := arg("user"); user != "" {
			if pw := arg("password"); pw != "" {
				u.User = url.UserPassword(user, pw)
			} else {
				u.User = url.User(user)
			}
		}
		q := url.Values{}
		if mode := arg("sslmode"); mode != "" {
			q.Set("sslmode", mode)
		} else if strings.HasPrefix(host, "/") || host == "localhost" || strings.HasPrefix(host, "127.") {
			q.Set("sslmode", "disable")
		}
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return "", fmt.Errorf("database.name %q is not sqlite3 or psycopg2", c.Database.Name)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// querier is what reading needs: a transaction (PostgreSQL) or the
// snapshot's connection (SQLite).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Source is one consistent snapshot of a Synapse database, read only.
type Source struct {
	q        querier
	postgres bool
	// Version is the database's schema version.
	Version int
	// columns are the optional columns of users and profiles present.
	columns map[string]bool
	close   func()
}

// Close ends the snapshot.
func (s *Source) Close() { s.close() }

// Open opens a snapshot of the database at dbURL (postgres:// or an
// SQLite path): on PostgreSQL one read-only repeatable-read transaction,
// on SQLite a copy taken with SQLite's backup API into tmpDir (Synapse may
// keep running either way).
func Open(ctx context.Context, dbURL, tmpDir string) (*Source, error) {
	var src *Source
	var err error
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		src, err = openPostgres(ctx, dbURL)
	} else {
		src, err = openSQLite(ctx, strings.TrimPrefix(dbURL, "sqlite://"), tmpDir)
	}
	if err != nil {
		return nil, err
	}
	if err := src.inspect(ctx); err != nil {
		src.Close()
		return nil, err
	}
	return src, nil
}

func openPostgres(ctx context.Context, dsn string) (*Source, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("synapse database: %w", err)
	}
	return &Source{q: tx, postgres: true, close: func() { _ = tx.Rollback(); db.Close() }}, nil
}

func openSQLite(ctx context.Context, path, tmpDir string) (*Source, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("synapse database: %w", err)
	}
	from, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return nil, err
	}
	defer from.Close()
	copyPath := filepath.Join(tmpDir, "synapse-snapshot.db")
	_ = os.Remove(copyPath)
	to, err := sql.Open("sqlite3", "file:"+copyPath)
	if err != nil {
		return nil, err
	}
	if err := backup(ctx, from, to); err != nil {
		to.Close()
		return nil, fmt.Errorf("synapse database: copying it: %w", err)
	}
	return &Source{q: to, close: func() { to.Close(); _ = os.Remove(copyPath) }}, nil
}

// backup copies from into to with SQLite's online backup API: a
// consistent copy while Synapse writes.
func backup(ctx context.Context, from, to *sql.DB) error {
	src, err := from.Conn(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := to.Conn(ctx)
	if err != nil {
		return err
	}
	defer dst.Close()
	return dst.Raw(func(d any) error {
		return src.Raw(func(s any) error {
			b, err := d.(*sqlite3.SQLiteConn).Backup("main", s.(*sqlite3.SQLiteConn), "main")
			if err != nil {
				return err
			}
			for {
				done, err := b.Step(-1)
				if err != nil {
					_ = b.Close()
					return err
				}
				if done {
					return b.Close()
				}
			}
		})
	})
}

// ErrSchema refuses a database whose schema this package does not read.
var ErrSchema = errors.New("synapse database schema")

// inspect reads the schema version and which optional columns exist.
func (s *Source) inspect(ctx context.Context) error {
	if err := s.q.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&s.Version); err != nil {
		return fmt.Errorf("%w: no schema_version (is this Synapse's database?): %v", ErrSchema, err)
	}
	if s.Version < MinSchemaVersion || s.Version > MaxSchemaVersion {
		return fmt.Errorf("%w: version %d; this registrar reads versions %d to %d (Synapse's schema as of version %d was checked); "+
			"upgrade registrar, or run a Synapse whose schema is within them", ErrSchema, s.Version, MinSchemaVersion, MaxSchemaVersion, MaxSchemaVersion)
	}
	s.columns = map[string]bool{}
	for _, table := range []string{"users", "profiles"} {
		cols, err := s.tableColumns(ctx, table)
		if err != nil {
			return err
		}
		for _, c := range cols {
			s.columns[table+"."+c] = true
		}
	}
	for _, required := range []string{"users.name", "users.password_hash", "users.creation_ts", "users.admin", "users.is_guest",
		"users.deactivated", "users.user_type", "users.appservice_id", "profiles.displayname"} {
		if !s.columns[required] {
			return fmt.Errorf("%w: version %d has no column %s", ErrSchema, s.Version, required)
		}
	}
	return nil
}

func (s *Source) tableColumns(ctx context.Context, table string) ([]string, error) {
	q := `SELECT name FROM pragma_table_info(?)`
	if s.postgres {
		q = `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`
	}
	rows, err := s.q.QueryContext(ctx, q, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, strings.ToLower(c))
	}
	return out, rows.Err()
}

// param is the n-th placeholder of the engine.
func (s *Source) param(n int) string {
	if s.postgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}
