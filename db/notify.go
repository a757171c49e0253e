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

// instanceID tells this process's announcements from other instances'.
var instanceID = func() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}()

// Announce tells the other instances sharing a PostgreSQL database that
// the user's tokens were revoked (NOTIFY, delivered once the revocation
// has committed); on SQLite it does nothing.
func (s *Store) Announce(ctx context.Context, userID string) error {
	if s.engine != Postgres {
		return nil
	}
	return s.db.WithContext(ctx).Exec(`SELECT pg_notify(?, ?)`, s.channel, instanceID+" "+userID).Error
}

// Listen calls revoked with each user whose tokens another instance
// announced revoked, until ctx is done. When the connection drops it calls
// lost (announcements may have been missed meanwhile) and reconnects. On
// SQLite it returns at once.
func (s *Store) Listen(ctx context.Context, revoked func(userID string), lost func(), log *slog.Logger) {
	if s.engine != Postgres {
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
		if ok && from != instanceID {
			revoked(userID)
		}
	}
}

// ServerSecret returns the secret called name that every instance sharing
// the database uses, storing generate's value the first time.
func (s *Store) ServerSecret(ctx context.Context, name string, generate func() string) (string, error) {
	g := s.db.WithContext(ctx)
	if err := g.Exec(`INSERT INTO server_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, generate(), s.nowMS()).Error; err != nil {
		return "", err
	}
	var value string
	err := g.Raw(`SELECT value FROM server_secrets WHERE name = ?`, name).Scan(&value).Error
	return value, err
}
