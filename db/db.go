// Package db is registrar's store: GORM on SQLite, with ordered, recorded
// migrations. impl depends on a small interface that *Store satisfies; no
// GORM type leaves this package.
package db

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
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

// Store is registrar's database.
type Store struct {
	db  *gorm.DB
	now func() time.Time
}

// Options tune Open.
type Options struct {
	// Now is the clock used for timestamps; time.Now when nil.
	Now func() time.Time
	// MaxOpenConns bounds the connection pool; 0 picks a default.
	MaxOpenConns int
}

// Open opens (creating if needed) the SQLite database at path with WAL,
// a busy timeout and foreign keys on, then applies pending migrations.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	q := url.Values{}
	q.Set("_busy_timeout", "10000")
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	g, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{
		TranslateError:         true,
		SkipDefaultTransaction: true,
		PrepareStmt:            true,
		Logger:                 logger.Discard,
	})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, err
	}
	conns := opts.MaxOpenConns
	if conns <= 0 {
		conns = 8
	}
	sqlDB.SetMaxOpenConns(conns)
	sqlDB.SetMaxIdleConns(conns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Store{db: g, now: now}
	if err := s.Migrate(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// createPrivate creates the database file readable by its owner only, or
// makes an existing one so, whatever the umask: SQLite gives its -wal and
// -shm files the database file's permissions.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Chmod(0o600)
}

func (s *Store) nowMS() int64 { return s.now().UnixMilli() }

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
