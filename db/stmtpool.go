package db

import (
	"context"
	"database/sql"
	"sync"

	"gorm.io/gorm"
)

// stmtPool is the SQLite connection pool GORM runs its statements
// through: each statement is prepared once on the pool (database/sql
// then prepares it once per connection) and reused, in transactions as
// well as outside them. GORM's own PrepareStmt prepares a statement
// first seen in a transaction on that transaction, where it is closed
// when the transaction ends, after which every transaction prepares it
// again: most of this service's statements run in transactions.
//
// A statement not prepared yet runs as plain SQL and is prepared in the
// background: preparing on the pool takes a connection, which a
// transaction holding one of the last ones must not wait for.
type stmtPool struct {
	db    *sql.DB
	mu    sync.RWMutex
	stmts map[string]*sql.Stmt // nil while being prepared
	// open allows preparing statements (once Open has migrated the
	// database: a background preparation opening a connection while the
	// first one turns a new file to WAL would find it locked); closed
	// stops them once the pool closes.
	open, closed bool
	// preparing counts the background preparations, which close waits
	// for (one may be opening a connection, and so the database's files).
	preparing sync.WaitGroup
}

// Statements longer than maxCachedQuery (multi-row inserts, long IN
// lists, whose text varies with their size) run unprepared, as do all
// new ones once maxCachedStmts are prepared.
const (
	maxCachedQuery = 2048
	maxCachedStmts = 512
)

func newStmtPool(db *sql.DB) *stmtPool {
	return &stmtPool{db: db, stmts: map[string]*sql.Stmt{}}
}

// stmt returns query's prepared statement, or nil (then the query runs
// unprepared, and is being prepared for next time when it may be).
func (p *stmtPool) stmt(query string) *sql.Stmt {
	p.mu.RLock()
	st, seen := p.stmts[query]
	p.mu.RUnlock()
	if seen || len(query) > maxCachedQuery {
		return st
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, seen := p.stmts[query]; seen || !p.open || p.closed || len(p.stmts) >= maxCachedStmts {
		return nil
	}
	p.stmts[query] = nil
	p.preparing.Add(1)
	go p.prepare(query)
	return nil
}

func (p *stmtPool) prepare(query string) {
	defer p.preparing.Done()
	st, err := p.db.PrepareContext(context.Background(), query)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil:
		delete(p.stmts, query) // tried again on its next use
	case p.closed:
		st.Close()
	default:
		p.stmts[query] = st
	}
}

// start allows preparing statements.
func (p *stmtPool) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = true
}

// close waits for the preparations under way, then closes the prepared
// statements (before the database).
func (p *stmtPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.preparing.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for query, st := range p.stmts {
		if st != nil {
			st.Close()
		}
		delete(p.stmts, query)
	}
}

// PrepareContext implements gorm.ConnPool.
func (p *stmtPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.db.PrepareContext(ctx, query)
}

// ExecContext implements gorm.ConnPool.
func (p *stmtPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := p.stmt(query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.db.ExecContext(ctx, query, args...)
}

// QueryContext implements gorm.ConnPool.
func (p *stmtPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := p.stmt(query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.db.QueryContext(ctx, query, args...)
}

// QueryRowContext implements gorm.ConnPool.
func (p *stmtPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := p.stmt(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.db.QueryRowContext(ctx, query, args...)
}

// BeginTx implements gorm.ConnPoolBeginner.
func (p *stmtPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := p.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &stmtTx{Tx: tx, pool: p}, nil
}

// GetDBConn implements gorm.GetDBConnector.
func (p *stmtPool) GetDBConn() (*sql.DB, error) { return p.db, nil }

// stmtTx is a transaction of a stmtPool, running the pool's prepared
// statements on its connection.
type stmtTx struct {
	*sql.Tx
	pool *stmtPool
}

// ExecContext implements gorm.ConnPool.
func (t *stmtTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.pool.stmt(query); st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

// QueryContext implements gorm.ConnPool.
func (t *stmtTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.pool.stmt(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

// QueryRowContext implements gorm.ConnPool.
func (t *stmtTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.pool.stmt(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

var (
	_ gorm.ConnPool         = (*stmtPool)(nil)
	_ gorm.ConnPoolBeginner = (*stmtPool)(nil)
	_ gorm.GetDBConnector   = (*stmtPool)(nil)
	_ gorm.Tx               = (*stmtTx)(nil)
)
