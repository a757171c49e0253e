package db

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// newInstanceID names an opened store, to tell its own announcements from
// other instances'.
func newInstanceID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Announce tells the other processes sharing the database that the
// user's tokens were revoked, once the revocation has committed: NOTIFY on
// PostgreSQL, a row of revocations on SQLite.
func (s *Store) Announce(ctx context.Context, userID string) error {
	if s.engine != Postgres {
		return s.db.WithContext(ctx).Exec(`INSERT INTO revocations (user_id, instance, created_at) VALUES (?, ?, ?)`,
			userID, s.instance, s.nowMS()).Error
	}
	return s.db.WithContext(ctx).Exec(`SELECT pg_notify(?, ?)`, s.channel, s.instance+" "+userID).Error
}

// pollInterval is how often SQLite's revocations are read.
const pollInterval = 250 * time.Millisecond

// Listen calls revoked with each user whose tokens another process
// announced revoked, until ctx is done. When announcements may have been
// missed (the connection dropped), it calls lost and carries on.
func (s *Store) Listen(ctx context.Context, revoked func(userID string), lost func(), log *slog.Logger) {
	if s.engine != Postgres {
		s.poll(ctx, revoked, lost, log)
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, revoked, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		lost()
		log.Warn("lost the revocation channel; reconnecting", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, revoked func(string), connected func()) error {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		from, userID, ok := strings.Cut(n.Payload, " ")
		if ok && from != s.instance {
			revoked(userID)
		}
	}
}

// ServerSecret returns the secret called name that every instance sharing
// the database uses, storing generate's value the first time (generate
// runs only when there is none yet).
func (s *Store) ServerSecret(ctx context.Context, name string, generate func() string) (string, error) {
	g := s.db.WithContext(ctx)
	var existing string
	if err := g.Raw(`SELECT value FROM server_secrets WHERE name = ?`, name).Scan(&existing).Error; err != nil {
		return "", err
	}
	if existing != "" {
		return existing, nil
	}
	if err := g.Exec(`INSERT INTO server_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, generate(), s.nowMS()).Error; err != nil {
		return "", err
	}
	var value string
	err := g.Raw(`SELECT value FROM server_secrets WHERE name = ?`, name).Scan(&value).Error
	return value, err
}

// poll reads SQLite's revocations table, forgetting rows older than a
// minute.
func (s *Store) poll(ctx context.Context, revoked func(string), lost func(), log *slog.Logger) {
	var last int64
	if err := s.db.WithContext(ctx).Raw(`SELECT COALESCE(MAX(id), 0) FROM revocations`).Scan(&last).Error; err != nil && ctx.Err() == nil {
		log.Warn("cannot read revocations", "error", err)
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var rows []struct {
			ID       int64
			UserID   string
			Instance string
		}
		err := s.db.WithContext(ctx).Raw(`SELECT id, user_id, instance FROM revocations WHERE id > ? ORDER BY id`, last).Scan(&rows).Error
		if err != nil {
			if ctx.Err() == nil {
				lost()
				log.Warn("cannot read revocations", "error", err)
			}
			continue
		}
		for _, r := range rows {
			if r.Instance != s.instance {
				revoked(r.UserID)
			}
			last = r.ID
		}
		if n%240 == 0 { // about once a minute
			s.db.WithContext(ctx).Exec(`DELETE FROM revocations WHERE created_at < ?`, s.nowMS()-time.Minute.Milliseconds())
		}
	}
}
