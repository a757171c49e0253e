package db

import (
	"context"
	"errors"

	"gorm.io/gorm"
)

// Threepid mediums.
const (
	MediumEmail  = "email"
	MediumMsisdn = "msisdn"
)

// Threepid is a third-party identifier bound to an account; an address
// belongs to at most one account.
type Threepid struct {
	Medium      string `gorm:"column:medium;primaryKey"`
	Address     string `gorm:"column:address;primaryKey"`
	UserID      string `gorm:"column:user_id"`
	ValidatedAt int64  `gorm:"column:validated_at"`
	AddedAt     int64  `gorm:"column:added_at;autoCreateTime:false"`
}

// TableName implements gorm's Tabler.
func (Threepid) TableName() string { return "threepids" }

// NewThreepid is a validated address to bind, with the validation session
// it came from (consumed by the binding).
type NewThreepid struct {
	Medium, Address string
	ValidatedAt     int64
	SessionID       string
}

// ThreepidSession is a validation session started by a requestToken call.
type ThreepidSession struct {
	Sid            string `gorm:"column:sid;primaryKey"`
	ClientSecret   string `gorm:"column:client_secret"`
	Medium         string `gorm:"column:medium"`
	Address        string `gorm:"column:address"`
	Purpose        string `gorm:"column:purpose"`
	SendAttempt    int64  `gorm:"column:send_attempt"`
	TokenHash      string `gorm:"column:token_hash"`
	TokenExpiresAt int64  `gorm:"column:token_expires_at"`
	NextLink       string `gorm:"column:next_link"`
	ValidatedAt    *int64 `gorm:"column:validated_at"`
	CreatedAt      int64  `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt      int64  `gorm:"column:expires_at"`
}

// TableName implements gorm's Tabler.
func (ThreepidSession) TableName() string { return "threepid_sessions" }

// ErrThreepidInUse means the address is bound to an account already.
var ErrThreepidInUse = errors.New("db: third-party identifier in use")

// StartThreepidValidation records a requestToken call. For the same
// client_secret, medium and address, a send_attempt not above the last one
// returns the existing session with send false (nothing is to be sent); a
// higher one replaces the token. It returns the session to use.
func (s *Store) StartThreepidValidation(ctx context.Context, next ThreepidSession) (ThreepidSession, bool, error) {
	now := s.nowMS()
	var out ThreepidSession
	send := false
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		err := forUpdate(tx).Where("client_secret = ? AND medium = ? AND address = ? AND expires_at > ?",
			next.ClientSecret, next.Medium, next.Address, now).Take(&out).Error
		if err == nil {
			if next.SendAttempt <= out.SendAttempt {
				return nil
			}
			send = true
			out.SendAttempt, out.TokenHash, out.TokenExpiresAt = next.SendAttempt, next.TokenHash, next.TokenExpiresAt
			out.NextLink, out.Purpose = next.NextLink, next.Purpose
			return tx.Model(&ThreepidSession{}).Where("sid = ?", out.Sid).Updates(map[string]any{
				"send_attempt": out.SendAttempt, "token_hash": out.TokenHash, "token_expires_at": out.TokenExpiresAt,
				"next_link": out.NextLink, "purpose": out.Purpose}).Error
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		// An expired session with the same key makes way for the new one.
		if err := tx.Where("client_secret = ? AND medium = ? AND address = ?", next.ClientSecret, next.Medium, next.Address).
			Delete(&ThreepidSession{}).Error; err != nil {
			return err
		}
		next.CreatedAt = now
		send, out = true, next
		return tx.Create(&out).Error
	})
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		// A concurrent request with the same key started the session: use it.
		var existing ThreepidSession
		if rerr := s.db.WithContext(ctx).Where("client_secret = ? AND medium = ? AND address = ?",
			next.ClientSecret, next.Medium, next.Address).Take(&existing).Error; rerr == nil {
			return existing, false, nil
		}
	}
	return out, send, translate(err)
}

// ThreepidSession returns a live validation session.
func (s *Store) ThreepidSession(ctx context.Context, sid string) (ThreepidSession, error) {
	var out ThreepidSession
	err := s.db.WithContext(ctx).Where("sid = ? AND expires_at > ?", sid, s.nowMS()).Take(&out).Error
	return out, translate(err)
}

// MarkThreepidValidated validates the session whose token hash is still
// tokenHash and clears the token, so each token validates once.
func (s *Store) MarkThreepidValidated(ctx context.Context, sid, tokenHash string) (bool, error) {
	res := s.db.WithContext(ctx).Model(&ThreepidSession{}).
		Where("sid = ? AND token_hash = ? AND token_hash <> ''", sid, tokenHash).
		Updates(map[string]any{"validated_at": s.nowMS(), "token_hash": ""})
	return res.RowsAffected == 1, translate(res.Error)
}

// ThreepidOwner returns the user the address is bound to.
func (s *Store) ThreepidOwner(ctx context.Context, medium, address string) (string, error) {
	var t Threepid
	err := s.db.WithContext(ctx).Where("medium = ? AND address = ?", medium, address).Take(&t).Error
	return t.UserID, translate(err)
}

// Threepids lists the user's third-party identifiers.
func (s *Store) Threepids(ctx context.Context, userID string) ([]Threepid, error) {
	var out []Threepid
	err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("medium, address").Find(&out).Error
	return out, err
}

// AddThreepid binds a validated address to the user and consumes its
// validation session.
func (s *Store) AddThreepid(ctx context.Context, userID string, t NewThreepid) error {
	now := s.nowMS()
	err := s.write(ctx, func(tx *gorm.DB) error { return addThreepid(tx, userID, t, now) })
	if errors.Is(err, ErrThreepidInUse) {
		return err
	}
	return translate(err)
}

func addThreepid(tx *gorm.DB, userID string, t NewThreepid, now int64) error {
	err := tx.Create(&Threepid{Medium: t.Medium, Address: t.Address, UserID: userID, ValidatedAt: t.ValidatedAt, AddedAt: now}).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return ErrThreepidInUse
	}
	if err != nil {
		return err
	}
	if t.SessionID != "" {
		return tx.Where("sid = ?", t.SessionID).Delete(&ThreepidSession{}).Error
	}
	return nil
}

// DeleteThreepid unbinds an address from the user; absent is not an error.
func (s *Store) DeleteThreepid(ctx context.Context, userID, medium, address string) error {
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		return tx.Where("user_id = ? AND medium = ? AND address = ?", userID, medium, address).Delete(&Threepid{}).Error
	}))
}

// ConsumeThreepidSession deletes a validation session once it has served.
func (s *Store) ConsumeThreepidSession(ctx context.Context, sid string) error {
	return translate(s.db.WithContext(ctx).Where("sid = ?", sid).Delete(&ThreepidSession{}).Error)
}

// DeleteExpiredThreepidSessions sweeps validation sessions past expiry.
func (s *Store) DeleteExpiredThreepidSessions(ctx context.Context) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at <= ?", s.nowMS()).Delete(&ThreepidSession{})
	return res.RowsAffected, translate(res.Error)
}
