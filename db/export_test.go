package db

import (
	"context"

	"gorm.io/gorm"
)

// UseFirstMigrations makes Open apply only the first n migrations, as an
// older release did, until restore is called.
func UseFirstMigrations(n int) (restore func()) {
	all := migrations
	migrations = all[:n]
	return func() { migrations = all }
}

// Migrations is how many migrations this release has.
func Migrations() int { return len(migrations) }

// Exec runs a statement, for tests that write as an older release did.
func (s *Store) Exec(sql string, args ...any) error { return s.db.Exec(sql, args...).Error }

// Transaction runs fn as the store's writes run.
func (s *Store) Transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.transaction(ctx, fn)
}

// QueuedWrites is how many writes wait for the running batch (SQLite).
func (s *Store) QueuedWrites() int {
	s.writes.mu.Lock()
	defer s.writes.mu.Unlock()
	return len(s.writes.pending)
}

// Batches is how many transactions held more than one write (SQLite).
func (s *Store) Batches() int {
	s.writes.mu.Lock()
	defer s.writes.mu.Unlock()
	return s.writes.batches
}
