package db

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// RegistrationToken is a token that allows registration (Matrix v1.2,
// Synapse's accounting): valid while it is not expired and pending +
// completed < uses_allowed (nil = unlimited).
type RegistrationToken struct {
	Token       string `gorm:"column:token;primaryKey"`
	UsesAllowed *int   `gorm:"column:uses_allowed"`
	Pending     int    `gorm:"column:pending"`
	Completed   int    `gorm:"column:completed"`
	ExpiryTime  *int64 `gorm:"column:expiry_time"`
}

// TableName implements gorm's Tabler.
func (RegistrationToken) TableName() string { return "registration_tokens" }

// Valid reports whether the token can be used at nowMS.
func (t RegistrationToken) Valid(nowMS int64) bool {
	return (t.ExpiryTime == nil || *t.ExpiryTime > nowMS) &&
		(t.UsesAllowed == nil || t.Pending+t.Completed < *t.UsesAllowed)
}

type tokenReservation struct {
	SessionID string `gorm:"column:session_id;primaryKey"`
	Token     string `gorm:"column:token"`
	CreatedAt int64  `gorm:"column:created_at;autoCreateTime:false"`
}

func (tokenReservation) TableName() string { return "registration_token_reservations" }

// ErrTokenExists means a registration token of that name exists.
var ErrTokenExists = errors.New("db: registration token exists")

// CreateRegistrationToken stores a new token.
func (s *Store) CreateRegistrationToken(ctx context.Context, t RegistrationToken) error {
	err := s.db.WithContext(ctx).Create(&t).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return ErrTokenExists
	}
	return translate(err)
}

// RegistrationToken returns one token.
func (s *Store) RegistrationToken(ctx context.Context, token string) (RegistrationToken, error) {
	var t RegistrationToken
	err := s.db.WithContext(ctx).Where("token = ?", token).Take(&t).Error
	return t, translate(err)
}

// RegistrationTokens lists tokens, all of them or only the (in)valid ones.
func (s *Store) RegistrationTokens(ctx context.Context, valid *bool) ([]RegistrationToken, error) {
	var all []RegistrationToken
	if err := s.db.WithContext(ctx).Order("token").Find(&all).Error; err != nil {
		return nil, err
	}
	if valid == nil {
		return all, nil
	}
	now := s.nowMS()
	out := make([]RegistrationToken, 0, len(all))
	for _, t := range all {
		if t.Valid(now) == *valid {
			out = append(out, t)
		}
	}
	return out, nil
}

// TokenUpdate changes a token's limits; a nil field is left alone.
type TokenUpdate struct {
	UsesAllowed **int
	ExpiryTime  **int64
}

// UpdateRegistrationToken applies u and returns the updated token.
func (s *Store) UpdateRegistrationToken(ctx context.Context, token string, u TokenUpdate) (RegistrationToken, error) {
	var out RegistrationToken
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		updates := map[string]any{}
		if u.UsesAllowed != nil {
			updates["uses_allowed"] = *u.UsesAllowed
		}
		if u.ExpiryTime != nil {
			updates["expiry_time"] = *u.ExpiryTime
		}
		if len(updates) > 0 {
			res := tx.Model(&RegistrationToken{}).Where("token = ?", token).Updates(updates)
			if res.Error != nil {
				return res.Error
			}
		}
		return tx.Where("token = ?", token).Take(&out).Error
	})
	return out, translate(err)
}

// DeleteRegistrationToken deletes a token (and its reservations).
func (s *Store) DeleteRegistrationToken(ctx context.Context, token string) error {
	res := s.db.WithContext(ctx).Where("token = ?", token).Delete(&RegistrationToken{})
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// ErrTokenInvalid means the registration token is unknown, expired or used up.
var ErrTokenInvalid = errors.New("db: registration token invalid")

// ReserveRegistrationToken takes one use of the token for the UIA session
// (pending+1), atomically: the last use cannot be reserved twice. A
// session that already reserved this token keeps its reservation.
func (s *Store) ReserveRegistrationToken(ctx context.Context, token, sessionID string) error {
	now := s.nowMS()
	return translate(s.transaction(ctx, func(tx *gorm.DB) error {
		var existing tokenReservation
		err := tx.Where("session_id = ?", sessionID).Take(&existing).Error
		if err == nil && existing.Token == token {
			return nil
		}
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		res := tx.Exec(`UPDATE registration_tokens SET pending = pending + 1
			WHERE token = ? AND (expiry_time IS NULL OR expiry_time > ?)
			AND (uses_allowed IS NULL OR pending + completed < uses_allowed)`, token, now)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrTokenInvalid
		}
		// A concurrent request of the same session may have reserved
		// first: then this one takes nothing (the transaction rolls back).
		res = tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&tokenReservation{SessionID: sessionID, Token: token, CreatedAt: now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrConflict
		}
		return nil
	}))
}

// completeReservation turns the session's reservation into a completed
// use; exhausted tells whether that was the token's last allowed use.
func completeReservation(tx *gorm.DB, sessionID string) (exhausted bool, err error) {
	var r tokenReservation
	err = forUpdate(tx).Where("session_id = ?", sessionID).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, ErrTokenInvalid
	}
	if err != nil {
		return false, err
	}
	if err := tx.Delete(&r).Error; err != nil {
		return false, err
	}
	var after struct {
		UsesAllowed *int64
		Completed   int64
	}
	err = tx.Raw(`UPDATE registration_tokens SET pending = pending - 1, completed = completed + 1 WHERE token = ?
		RETURNING uses_allowed, completed`, r.Token).Scan(&after).Error
	return after.UsesAllowed != nil && after.Completed >= *after.UsesAllowed, err
}

// ReleaseAbandonedReservations gives back the uses reserved by sessions
// that no longer exist (expired, swept, or never stored) and are older than
// minAgeMS.
func (s *Store) ReleaseAbandonedReservations(ctx context.Context, minAgeMS int64) (int64, error) {
	now := s.nowMS()
	var released int64
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		var stale []tokenReservation
		if err := tx.Where(`created_at < ? AND session_id NOT IN
			(SELECT session_id FROM uia_sessions WHERE expires_at > ?)`, now-minAgeMS, now).Find(&stale).Error; err != nil {
			return err
		}
		for _, r := range stale {
			// Another instance sweeping at once gives each use back once:
			// only the one that deletes the reservation does.
			res := tx.Where("session_id = ?", r.SessionID).Delete(&tokenReservation{})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				continue
			}
			if err := tx.Exec(`UPDATE registration_tokens SET pending = pending - 1 WHERE token = ? AND pending > 0`, r.Token).Error; err != nil {
				return err
			}
			released++
		}
		return nil
	})
	return released, translate(err)
}

// UseNonce consumes a shared-secret registration nonce: true when it
// existed and had not expired.
func (s *Store) UseNonce(ctx context.Context, nonce string) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM registration_nonces WHERE nonce = ? AND expires_at > ?`, nonce, s.nowMS())
	return res.RowsAffected == 1, translate(res.Error)
}

// CreateNonce stores a nonce valid until expiresAtMS, sweeping expired ones.
func (s *Store) CreateNonce(ctx context.Context, nonce string, expiresAtMS int64) error {
	g := s.db.WithContext(ctx)
	if err := g.Exec(`DELETE FROM registration_nonces WHERE expires_at <= ?`, s.nowMS()).Error; err != nil {
		return translate(err)
	}
	return translate(g.Exec(`INSERT INTO registration_nonces (nonce, expires_at) VALUES (?, ?)`, nonce, expiresAtMS).Error)
}
