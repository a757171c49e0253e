package db

import (
	"context"

	"gorm.io/gorm"
)

// BrowserSessionInfo is a browser signed in to the pages.
type BrowserSessionInfo struct {
	IDHash       string `gorm:"column:id_hash"`
	CreatedAt    int64  `gorm:"column:created_at"`
	UserAgent    string `gorm:"column:user_agent"`
	IP           string `gorm:"column:ip"`
	LastActiveAt *int64 `gorm:"column:last_active_at"`
}

// TouchBrowserSession notes a use of a browser session: when, and the
// browser and address it came from.
func (s *Store) TouchBrowserSession(ctx context.Context, idHash, userAgent, ip string) error {
	return translate(s.db.WithContext(ctx).Exec(`UPDATE browser_sessions SET user_agent = ?, ip = ?, last_active_at = ? WHERE id_hash = ?`,
		userAgent, ip, s.nowMS(), idHash).Error)
}

// BrowserSessions lists the user's live browser sessions, the most
// recently used first.
func (s *Store) BrowserSessions(ctx context.Context, userID string) ([]BrowserSessionInfo, error) {
	var out []BrowserSessionInfo
	err := s.db.WithContext(ctx).Raw(`SELECT id_hash, created_at, user_agent, ip, last_active_at FROM browser_sessions
		WHERE user_id = ? AND expires_at > ? ORDER BY COALESCE(last_active_at, created_at) DESC, id_hash`, userID, s.nowMS()).Scan(&out).Error
	return out, translate(err)
}

// EndBrowserSession ends one of the user's browser sessions.
func (s *Store) EndBrowserSession(ctx context.Context, userID, idHash string) error {
	return translate(s.db.WithContext(ctx).Exec(`DELETE FROM browser_sessions WHERE user_id = ? AND id_hash = ?`, userID, idHash).Error)
}

// EndOtherSessions deletes every device of the user with its tokens and
// every browser session but keepIDHash, in one transaction.
func (s *Store) EndOtherSessions(ctx context.Context, userID, keepIDHash string) error {
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`DELETE FROM browser_sessions WHERE user_id = ? AND id_hash <> ?`, userID, keepIDHash).Error; err != nil {
			return err
		}
		return tx.Where("user_id = ?", userID).Delete(&Device{}).Error
	}))
}

// DeviceClients maps the user's devices logged in through the OAuth 2.0
// API to their client's ID.
func (s *Store) DeviceClients(ctx context.Context, userID string) (map[string]string, error) {
	var rows []struct {
		DeviceID string `gorm:"column:device_id"`
		Client   string `gorm:"column:oauth_client_id"`
	}
	err := s.db.WithContext(ctx).Raw(`SELECT DISTINCT device_id, oauth_client_id FROM refresh_tokens WHERE user_id = ? AND oauth_client_id <> ''
		UNION SELECT DISTINCT device_id, oauth_client_id FROM access_tokens WHERE user_id = ? AND oauth_client_id <> ''`, userID, userID).
		Scan(&rows).Error
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.DeviceID] = r.Client
	}
	return out, translate(err)
}
