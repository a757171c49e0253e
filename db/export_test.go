package db

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
