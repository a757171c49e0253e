package db

import (
	"context"

	"gorm.io/gorm"
)

// Seen is a device's use from one address and user agent.
type Seen struct {
	UserID, DeviceID, IP, UserAgent string
	At                              int64
}

// ClientIP is an address and user agent a device was used from, and when
// last.
type ClientIP struct {
	UserID    string `gorm:"column:user_id"`
	DeviceID  string `gorm:"column:device_id"`
	IP        string `gorm:"column:ip"`
	UserAgent string `gorm:"column:user_agent"`
	LastSeen  int64  `gorm:"column:last_seen"`
}

// RecordSeen stores a batch of uses in one transaction: each device's
// addresses (for whois), its last use, and its account's. Uses of devices
// deleted meanwhile are dropped; an older use never overwrites a newer.
func (s *Store) RecordSeen(ctx context.Context, batch []Seen) error {
	if len(batch) == 0 {
		return nil
	}
	return translate(s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, u := range batch {
			err := tx.Exec(`INSERT INTO client_ips (user_id, device_id, ip, user_agent, last_seen)
				SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?)
				ON CONFLICT (user_id, device_id, ip, user_agent) DO UPDATE SET last_seen = excluded.last_seen
				WHERE excluded.last_seen > client_ips.last_seen`,
				u.UserID, u.DeviceID, u.IP, u.UserAgent, u.At, u.UserID, u.DeviceID).Error
			if err != nil {
				return err
			}
			err = tx.Exec(`UPDATE devices SET last_seen_ip = ?, last_seen_user_agent = ?, last_seen_at = ?
				WHERE user_id = ? AND device_id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)`,
				u.IP, u.UserAgent, u.At, u.UserID, u.DeviceID, u.At).Error
			if err != nil {
				return err
			}
			err = tx.Exec(`UPDATE accounts SET last_seen_at = ? WHERE user_id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)`,
				u.At, u.UserID, u.At).Error
			if err != nil {
				return err
			}
		}
		return nil
	}))
}

// ClientIPs returns the addresses the user's visible devices were used
// from, newest first, at most limit.
func (s *Store) ClientIPs(ctx context.Context, userID string, limit int) ([]ClientIP, error) {
	var out []ClientIP
	err := s.db.WithContext(ctx).Raw(`SELECT c.user_id, c.device_id, c.ip, c.user_agent, c.last_seen
		FROM client_ips c JOIN devices d ON d.user_id = c.user_id AND d.device_id = c.device_id
		WHERE c.user_id = ? AND NOT d.hidden ORDER BY c.last_seen DESC LIMIT ?`, userID, limit).Scan(&out).Error
	return out, translate(err)
}

// DeleteClientIPsBefore forgets addresses last used before beforeMS
// (Synapse's user_ips_max_age).
func (s *Store) DeleteClientIPsBefore(ctx context.Context, beforeMS int64) (int64, error) {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM client_ips WHERE last_seen < ?`, beforeMS)
	return res.RowsAffected, translate(res.Error)
}
