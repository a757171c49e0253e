package db

import (
	"context"
	"database/sql"
	"errors"
	"strings"
)

// hotQuery is a read made on almost every request of its kind (username
// checks, token lookups that miss the cache), in each engine's
// placeholders, run through database/sql without the ORM's statement
// building and reflection.
type hotQuery struct{ sqlite, postgres string }

func newHotQuery(query string) hotQuery {
	return hotQuery{sqlite: query, postgres: strings.Replace(query, "?", "$1", 1)}
}

var (
	localpartTakenSQL = newHotQuery(`SELECT 1 FROM accounts WHERE localpart_lower = ? LIMIT 1`)
	tokenOwnerSQL     = newHotQuery(`SELECT t.id, t.user_id, t.device_id, t.expires_at, t.refresh_token_id, t.used,
	        a.kind, a.admin, a.deactivated_at IS NOT NULL, a.locked, a.suspended, t.puppeted_by <> '',
	        t.oauth_client_id, t.created_at
	 FROM access_tokens t JOIN accounts a ON a.user_id = t.user_id
	 WHERE t.token_hash = ?`)
)

// hotRow runs a hot query (with a single parameter): on SQLite as one
// of the statement pool's (prepared once per connection), on PostgreSQL
// through pgx's statement cache. On SQLite the query does not follow
// ctx's cancellation: a read in WAL mode never waits for a lock, and a
// cancellable context costs each query a goroutine in database/sql and a
// callback in the driver (8 of its 21 allocations, 40% of its time).
func (s *Store) hotRow(ctx context.Context, q hotQuery, arg any) (*sql.Row, error) {
	if s.stmts != nil {
		return s.stmts.QueryRowContext(context.WithoutCancel(ctx), q.sqlite, arg), nil
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	return sqlDB.QueryRowContext(ctx, q.postgres, arg), nil
}

// LocalpartTaken reports whether any account (deactivated ones included)
// holds the localpart, compared case-insensitively.
func (s *Store) LocalpartTaken(ctx context.Context, localpartLower string) (bool, error) {
	row, err := s.hotRow(ctx, localpartTakenSQL, localpartLower)
	if err != nil {
		return false, err
	}
	var n int
	err = row.Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return n == 1, err
}

// LookupAccessToken resolves an access token by its hash with one indexed
// query (ErrNotFound for none).
func (s *Store) LookupAccessToken(ctx context.Context, hash string) (TokenOwner, error) {
	row, err := s.hotRow(ctx, tokenOwnerSQL, hash)
	if err != nil {
		return TokenOwner{}, err
	}
	var o TokenOwner
	err = row.Scan(&o.TokenID, &o.UserID, &o.DeviceID, &o.ExpiresAt,
		&o.RefreshTokenID, &o.Used, &o.Kind, &o.Admin, &o.Deactivated, &o.Locked, &o.Suspended, &o.Puppet,
		&o.OAuthClientID, &o.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return TokenOwner{}, ErrNotFound
	}
	return o, err
}
