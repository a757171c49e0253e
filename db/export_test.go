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

// Tables lists the tables of the database, but for the migrations'
// bookkeeping and the engine's own.
func (s *Store) Tables(ctx context.Context) ([]string, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations' ORDER BY name`
	if s.engine == Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()
			AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name`
	}
	var names []string
	err := s.db.WithContext(ctx).Raw(q).Scan(&names).Error
	return names, err
}
