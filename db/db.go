// Package db is registrar's store: GORM on SQLite (the default) or
// PostgreSQL, with ordered, recorded migrations run on both. impl's
// packages depend on small interfaces that *Store satisfies; no GORM type
// leaves this package.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
)

// Sentinel errors returned by Store methods.
var (
	// ErrNotFound means the row asked for does not exist.
	ErrNotFound = errors.New("db: not found")
	// ErrUserExists means the user ID (compared case-insensitively) is taken.
	ErrUserExists = errors.New("db: user already exists")
	// ErrConflict means a concurrent change won; the caller may retry or
	// report it.
	ErrConflict = errors.New("db: conflicting concurrent change")
)

// The engines.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Store is registrar's database.
type Store struct {
	db     *gorm.DB
	engine string
	dsn    string
	now    func() time.Time
	// channel is the NOTIFY channel of revocations (PostgreSQL).
	channel string
	// instance tells this store's announcements from other instances'.
	instance string
	// stmts prepares SQLite statements once (nil on PostgreSQL).
	stmts *stmtPool
	// writes group-commits this process's SQLite transactions, in Go,
	// where the next batch starts the moment the last one commits,
	// instead of each waiting in SQLite's busy handler, which sleeps and
	// polls.
	writes *writeQueue
}

// transaction runs fn in a transaction (on SQLite, group-committed with
// the other writes of this process: see writeQueue).
func (s *Store) transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if s.writes != nil {
		return s.writes.run(ctx, s.db, fn)
	}
	return s.db.WithContext(ctx).Transaction(fn)
}

// Options tune Open.
type Options struct {
	// Now is the clock used for timestamps; time.Now when nil.
	Now func() time.Time
	// MaxOpenConns bounds the connection pool (cp_max); 0 picks a default.
	MaxOpenConns int
	// MinIdleConns keeps connections open (cp_min).
	MinIdleConns int
	// NotifyChannel names the PostgreSQL channel that carries revocations
	// between instances sharing the database; registrar_revocations when
	// empty.
	NotifyChannel string
}

// Open opens the database named by dsn and applies pending migrations.
// A postgres:// or postgresql:// URL, or a libpq key=value string with a
// host, is PostgreSQL; anything else is the path of an SQLite file
// (created, owner-only, with WAL, a busy timeout and foreign keys on).
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	engine := EngineOf(dsn)
	var dialector gorm.Dialector
	var pool *stmtPool
	if engine == Postgres {
		// pgx caches each connection's prepared statements itself.
		dialector = postgres.New(postgres.Config{DSN: dsn})
	} else {
		path, err := prepareSQLiteFile(dsn)
		if err != nil {
			return nil, err
		}
		sqlDB, err := sql.Open(sqliteDriver, sqliteDSN(path))
		if err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		if err := connectSQLite(ctx, sqlDB); err != nil {
			sqlDB.Close()
			return nil, fmt.Errorf("open database: %w", err)
		}
		pool = newStmtPool(sqlDB)
		dialector = sqlite.New(sqlite.Config{DriverName: sqliteDriver, DSN: sqliteDSN(path), Conn: pool})
	}
	g, err := gorm.Open(dialector, &gorm.Config{
		TranslateError:         true,
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
	})
	if err != nil {
		if pool != nil {
			pool.db.Close()
		}
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, err
	}
	conns := opts.MaxOpenConns
	if conns <= 0 {
		conns = map[string]int{SQLite: 8, Postgres: 10}[engine]
	}
	sqlDB.SetMaxOpenConns(conns)
	sqlDB.SetMaxIdleConns(max(conns, opts.MinIdleConns))
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	s := &Store{db: g, engine: engine, dsn: dsn, now: opts.Now, channel: opts.NotifyChannel, instance: newInstanceID(), stmts: pool}
	if s.now == nil {
		s.now = time.Now
	}
	if engine == SQLite {
		s.writes = &writeQueue{}
	}
	if s.channel == "" {
		s.channel = "registrar_revocations"
	}
	if err := s.Migrate(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	if pool != nil {
		pool.start()
	}
	return s, nil
}

// EngineOf tells which engine a DSN names.
func EngineOf(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") || strings.Contains(dsn, "host=") {
		return Postgres
	}
	return SQLite
}

// prepareSQLiteFile creates the file's directory (0700) and the file
// itself readable by its owner only, whatever the umask: SQLite gives its
// -wal and -shm files the database file's permissions.
func prepareSQLiteFile(path string) (string, error) {
	path = strings.TrimPrefix(path, "sqlite:")
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("create database directory: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("open database %s: %w", path, err)
	}
	defer f.Close()
	return path, f.Chmod(0o600)
}

// sqliteDriver is the database/sql driver SQLite files are opened with
// (tests count its statement preparations through another).
var sqliteDriver = sqlite.DriverName

// connectSQLite opens the first connection. Processes starting at once
// on a new file race to turn it to WAL, which takes an exclusive lock
// that SQLite does not wait for: the losers are told the database is
// locked, and try again until it is in WAL mode (or ctx ends, or a few
// seconds pass).
func connectSQLite(ctx context.Context, sqlDB *sql.DB) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := sqlDB.PingContext(ctx)
		var serr sqlite3.Error
		if err == nil || !errors.As(err, &serr) || (serr.Code != sqlite3.ErrBusy && serr.Code != sqlite3.ErrLocked) ||
			time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func sqliteDSN(path string) string {
	q := url.Values{}
	q.Set("_busy_timeout", "10000")
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Engine is the store's engine, SQLite or Postgres.
func (s *Store) Engine() string { return s.engine }

// Close closes the database.
func (s *Store) Close() error {
	if s.stmts != nil {
		s.stmts.close()
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// SQLDB is the connection pool (for its statistics).
func (s *Store) SQLDB() (*sql.DB, error) { return s.db.DB() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

func (s *Store) nowMS() int64 { return s.now().UnixMilli() }

// forUpdate makes a read in a transaction hold its rows' locks until the
// transaction ends, on PostgreSQL; SQLite's transactions (BEGIN IMMEDIATE)
// hold the database's write lock from the start.
func forUpdate(tx *gorm.DB) *gorm.DB {
	if tx.Dialector.Name() == Postgres {
		return tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return tx
}

// translate maps GORM errors onto the package's sentinels.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return ErrNotFound
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return ErrConflict
	}
	return err
}
