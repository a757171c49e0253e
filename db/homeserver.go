package db

import (
	"context"
	"errors"

	"gorm.io/gorm"
)

// OutboxEntry is a note that a user (DeviceID "") or one of its devices
// changed and the homeserver must be told. It carries no state: whoever
// delivers it reads the account or device as it is then. Version tells a
// delivery apart from a change noted while it ran.
type OutboxEntry struct {
	UserID   string `gorm:"column:user_id"`
	DeviceID string `gorm:"column:device_id"`
	Version  int64  `gorm:"column:version"`
	Attempts int    `gorm:"column:attempts"`
}

// SetHomeserverSync turns the noting of changes for the homeserver on or
// off (the server sets it from its configuration when it starts).
func (s *Store) SetHomeserverSync(ctx context.Context, enabled bool) error {
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		return tx.Exec(`UPDATE homeserver_sync SET enabled = ? WHERE id = 1`, enabled).Error
	}))
}

// NoteHomeserverChange notes a user (deviceID "") or device for the
// homeserver, as the triggers do (for reconciling what they did not see).
func (s *Store) NoteHomeserverChange(ctx context.Context, userID, deviceID string) error {
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		return tx.Exec(`INSERT INTO homeserver_outbox (user_id, device_id) VALUES (?, ?)
			ON CONFLICT (user_id, device_id) DO UPDATE SET version = homeserver_outbox.version + 1, due_at = 0`,
			userID, deviceID).Error
	}))
}

// ClaimOutbox leases up to limit entries due now for leaseMS, so that
// other instances leave them alone meanwhile, and returns them oldest
// first. An instance that dies holding a lease loses it when it ends.
func (s *Store) ClaimOutbox(ctx context.Context, limit int, leaseMS int64) ([]OutboxEntry, error) {
	now := s.nowMS()
	var out []OutboxEntry
	skipLocked := ""
	if s.engine == Postgres {
		skipLocked = " FOR UPDATE SKIP LOCKED"
	}
	err := s.write(ctx, func(tx *gorm.DB) error {
		out = nil
		return tx.Raw(`UPDATE homeserver_outbox SET leased_until = ?
			WHERE (user_id, device_id) IN (SELECT user_id, device_id FROM homeserver_outbox
				WHERE due_at <= ? AND leased_until <= ? ORDER BY due_at, user_id, device_id LIMIT ?`+skipLocked+`)
			RETURNING user_id, device_id, version, attempts`, now+leaseMS, now, now, limit).Scan(&out).Error
	})
	return out, translate(err)
}

// UserOutbox returns every entry of a user, due or not, leased or not
// (a request that must see the user delivered now).
func (s *Store) UserOutbox(ctx context.Context, userID string) ([]OutboxEntry, error) {
	var out []OutboxEntry
	err := s.db.WithContext(ctx).Raw(`SELECT user_id, device_id, version, attempts FROM homeserver_outbox
		WHERE user_id = ? ORDER BY device_id`, userID).Scan(&out).Error
	return out, translate(err)
}

// CompleteOutbox removes a delivered entry, unless it changed meanwhile
// (then it stays due).
func (s *Store) CompleteOutbox(ctx context.Context, e OutboxEntry) error {
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		return tx.Exec(`DELETE FROM homeserver_outbox WHERE user_id = ? AND device_id = ? AND version = ?`,
			e.UserID, e.DeviceID, e.Version).Error
	}))
}

// FailOutbox records a failed delivery: the entry is due again at dueAt
// (unless it changed meanwhile: then it is due now).
func (s *Store) FailOutbox(ctx context.Context, e OutboxEntry, dueAt int64, reason string) error {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		return tx.Exec(`UPDATE homeserver_outbox SET attempts = attempts + 1, due_at = ?, last_error = ?, leased_until = 0
			WHERE user_id = ? AND device_id = ? AND version = ?`, dueAt, reason, e.UserID, e.DeviceID, e.Version).Error
	}))
}

// OutboxStats are the outbox's length and how many of its entries failed
// at least once.
type OutboxStats struct {
	Pending, Failing int64
	// LastError is the reason of the most retried entry.
	LastError string
}

// HomeserverOutboxStats counts the outbox.
func (s *Store) HomeserverOutboxStats(ctx context.Context) (OutboxStats, error) {
	var out OutboxStats
	g := s.db.WithContext(ctx)
	if err := g.Raw(`SELECT COUNT(*) AS pending, COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0) AS failing
		FROM homeserver_outbox`).Scan(&out).Error; err != nil {
		return out, translate(err)
	}
	if out.Failing > 0 {
		var reasons []string
		if err := g.Raw(`SELECT last_error FROM homeserver_outbox WHERE attempts > 0 ORDER BY attempts DESC LIMIT 1`).
			Scan(&reasons).Error; err != nil {
			return out, translate(err)
		}
		if len(reasons) > 0 {
			out.LastError = reasons[0]
		}
	}
	return out, nil
}

// HomeserverDevice is a device as the homeserver is told of it.
type HomeserverDevice struct {
	DeviceID    string `gorm:"column:device_id"`
	DisplayName string `gorm:"column:display_name"`
}

// HomeserverDevices lists every device of the user, hidden ones too (an
// admin's puppet login needs its device on the homeserver as well).
func (s *Store) HomeserverDevices(ctx context.Context, userID string) ([]HomeserverDevice, error) {
	var out []HomeserverDevice
	err := s.db.WithContext(ctx).Raw(`SELECT device_id, display_name FROM devices WHERE user_id = ? ORDER BY device_id`, userID).
		Scan(&out).Error
	return out, translate(err)
}

// HomeserverDevice returns one device of the user, hidden or not;
// ErrNotFound when it is gone.
func (s *Store) HomeserverDevice(ctx context.Context, userID, deviceID string) (HomeserverDevice, error) {
	var out []HomeserverDevice
	err := s.db.WithContext(ctx).Raw(`SELECT device_id, display_name FROM devices WHERE user_id = ? AND device_id = ?`,
		userID, deviceID).Scan(&out).Error
	if err != nil {
		return HomeserverDevice{}, translate(err)
	}
	if len(out) == 0 {
		return HomeserverDevice{}, ErrNotFound
	}
	return out[0], nil
}

// AccountsAfter lists up to limit accounts whose user ID sorts after
// after, in order (for walking every account in batches).
func (s *Store) AccountsAfter(ctx context.Context, after string, limit int) ([]Account, error) {
	var out []Account
	err := s.db.WithContext(ctx).Where("user_id > ?", after).Order("user_id").Limit(limit).Find(&out).Error
	return out, translate(err)
}

// CountAccounts counts every account.
func (s *Store) CountAccounts(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Account{}).Count(&n).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, nil
	}
	return n, translate(err)
}
