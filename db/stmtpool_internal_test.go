package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
)

func openSQLite(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "registrar.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// prepared waits until query's statement is prepared on the pool.
func prepared(t *testing.T, p *stmtPool, query string) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.RLock()
		st := p.stmts[query]
		p.mu.RUnlock()
		if st != nil {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// countingDriver is SQLite's driver counting the statements each query
// is prepared as.
type countingDriver struct {
	sqlite3.SQLiteDriver
	mu       sync.Mutex
	prepares map[string]int
}

func (d *countingDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.SQLiteDriver.Open(dsn)
	if err != nil {
		return nil, err
	}
	return &countingConn{SQLiteConn: c.(*sqlite3.SQLiteConn), d: d}, nil
}

func (d *countingDriver) count(query string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.prepares[query]
}

type countingConn struct {
	*sqlite3.SQLiteConn
	d *countingDriver
}

func (c *countingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.d.mu.Lock()
	c.d.prepares[query]++
	c.d.mu.Unlock()
	return c.SQLiteConn.PrepareContext(ctx, query)
}

var counting = &countingDriver{prepares: map[string]int{}}

func init() { sql.Register("sqlite3_counting", counting) }

// TestStatementsArePreparedOnThePoolAndUsedInTransactions: a statement
// first run in a transaction is prepared on the pool (not on the
// transaction), and later transactions run that statement: however many
// transactions run it, it is prepared at most once per connection.
func TestStatementsArePreparedOnThePoolAndUsedInTransactions(t *testing.T) {
	sqliteDriver = "sqlite3_counting"
	defer func() { sqliteDriver = sqlite.DriverName }()
	counting.mu.Lock()
	counting.prepares = map[string]int{}
	counting.mu.Unlock()
	s := openSQLite(t)
	ctx := context.Background()
	const query = `INSERT INTO admin_audit (created_at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)`
	insert := func(tx *gorm.DB) error { return tx.Exec(query, 1, "a", "test", "t", "{}").Error }
	if err := s.transaction(ctx, insert); err != nil {
		t.Fatal(err)
	}
	if !prepared(t, s.stmts, query) {
		t.Fatal("the statement was not prepared on the pool")
	}
	s.stmts.mu.RLock()
	st := s.stmts.stmts[query]
	s.stmts.mu.RUnlock()
	for i := 0; i < 30; i++ {
		if err := s.transaction(ctx, insert); err != nil {
			t.Fatal(err)
		}
	}
	s.stmts.mu.RLock()
	again := s.stmts.stmts[query]
	s.stmts.mu.RUnlock()
	if again != st {
		t.Error("the statement was prepared again")
	}
	if n, conns := counting.count(query), s.stmts.db.Stats().OpenConnections; n < 1 || n > conns {
		t.Errorf("prepared %d times for 31 transactions on %d connections", n, conns)
	}
	var n int64
	if err := s.db.Raw(`SELECT count(*) FROM admin_audit WHERE action = 'test'`).Scan(&n).Error; err != nil || n != 31 {
		t.Errorf("%d rows (%v), want 31", n, err)
	}
}

// TestLongAndSurplusStatementsRunUnprepared: statements longer than
// maxCachedQuery, and new ones once maxCachedStmts are held, run as
// plain SQL and are not kept.
func TestLongAndSurplusStatementsRunUnprepared(t *testing.T) {
	s := openSQLite(t)
	long := `SELECT 1 WHERE 'x' <> '` + strings.Repeat("y", maxCachedQuery) + `'`
	var one int
	if err := s.db.Raw(long).Scan(&one).Error; err != nil || one != 1 {
		t.Fatalf("long statement: %d, %v", one, err)
	}
	s.stmts.mu.Lock()
	_, kept := s.stmts.stmts[long]
	for i := len(s.stmts.stmts); i < maxCachedStmts; i++ {
		s.stmts.stmts[strings.Repeat(" ", i)] = nil // places taken
	}
	s.stmts.mu.Unlock()
	if kept {
		t.Error("a long statement was kept")
	}
	const surplus = `SELECT 2`
	var two int
	if err := s.db.Raw(surplus).Scan(&two).Error; err != nil || two != 2 {
		t.Fatalf("surplus statement: %d, %v", two, err)
	}
	s.stmts.mu.RLock()
	_, kept = s.stmts.stmts[surplus]
	n := len(s.stmts.stmts)
	s.stmts.mu.RUnlock()
	if kept || n != maxCachedStmts {
		t.Errorf("kept %v, %d statements held", kept, n)
	}
}

// TestAClosedPoolPreparesNothing: statements are closed with the store,
// and a preparation finishing after that is dropped.
func TestAClosedPoolPreparesNothing(t *testing.T) {
	s := openSQLite(t)
	var one int
	if err := s.db.Raw(`SELECT 1`).Scan(&one).Error; err != nil {
		t.Fatal(err)
	}
	if !prepared(t, s.stmts, `SELECT 1`) {
		t.Fatal("not prepared")
	}
	s.stmts.close()
	s.stmts.preparing.Add(1) // as stmt does before it starts one
	s.stmts.prepare(`SELECT 3`)
	if got := s.stmts.stmt(`SELECT 4`); got != nil {
		t.Error("a closed pool gave a statement")
	}
	s.stmts.mu.RLock()
	defer s.stmts.mu.RUnlock()
	if len(s.stmts.stmts) != 0 {
		t.Errorf("%d statements held after close", len(s.stmts.stmts))
	}
}
