package db

import (
	"context"
	"errors"

	"gorm.io/gorm"
)

// Second factor kinds.
const (
	FactorTOTP     = "totp"
	FactorWebAuthn = "webauthn"
	FactorRecovery = "recovery"
)

// ErrFactorUsed is a TOTP code whose time step was used already, or a
// recovery code spent.
var ErrFactorUsed = errors.New("db: the code was used already")

// SecondFactor is one of an account's second factors: a TOTP secret
// (sealed), a WebAuthn credential (its JSON), or one recovery code (its
// hash).
type SecondFactor struct {
	ID           string `gorm:"column:id;primaryKey"`
	UserID       string `gorm:"column:user_id"`
	Kind         string `gorm:"column:kind"`
	Name         string `gorm:"column:name"`
	Secret       string `gorm:"column:secret"`
	CredentialID string `gorm:"column:credential_id"`
	// Confirmed: a TOTP secret proved with a first code (a factor that is
	// not confirmed signs nothing in).
	Confirmed bool `gorm:"column:confirmed"`
	// LastStep is the last TOTP time step used (codes are single-use), or
	// a WebAuthn credential's signature counter.
	LastStep   int64  `gorm:"column:last_step"`
	CreatedAt  int64  `gorm:"column:created_at;autoCreateTime:false"`
	LastUsedAt *int64 `gorm:"column:last_used_at"`
}

// TableName implements gorm's Tabler.
func (SecondFactor) TableName() string { return "second_factors" }

// SecondFactors lists the account's factors, oldest first.
func (s *Store) SecondFactors(ctx context.Context, userID string) ([]SecondFactor, error) {
	var out []SecondFactor
	err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&out).Error
	return out, translate(err)
}

// AddSecondFactors stores factors of one account in one transaction (and
// the audit entry ctx carries); replacing drops the account's factors of
// the first one's kind first (a new set of recovery codes).
func (s *Store) AddSecondFactors(ctx context.Context, factors []SecondFactor, replacing bool) error {
	if len(factors) == 0 {
		return nil
	}
	now := s.nowMS()
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		if replacing {
			if err := tx.Where("user_id = ? AND kind = ?", factors[0].UserID, factors[0].Kind).Delete(&SecondFactor{}).Error; err != nil {
				return err
			}
		}
		for i := range factors {
			factors[i].CreatedAt = now
		}
		return tx.Create(&factors).Error
	}))
}

// ConfirmSecondFactor marks a factor proved (a TOTP secret's first code at
// step) and names it.
func (s *Store) ConfirmSecondFactor(ctx context.Context, userID, id, name string, step int64) error {
	now := s.nowMS()
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE second_factors SET confirmed = TRUE, name = ?, last_step = ?, last_used_at = ? WHERE user_id = ? AND id = ? AND NOT confirmed`,
			name, step, now, userID, id)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	}))
}

// UseTOTPStep records a TOTP factor's code of step as used: ErrFactorUsed
// when that step (or a later one) was used already, so a code works once.
func (s *Store) UseTOTPStep(ctx context.Context, userID, id string, step int64) error {
	res := s.db.WithContext(ctx).Exec(`UPDATE second_factors SET last_step = ?, last_used_at = ? WHERE user_id = ? AND id = ? AND confirmed
		AND last_step < ?`, step, s.nowMS(), userID, id, step)
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrFactorUsed
	}
	return nil
}

// UseRecoveryCode spends one of the account's recovery codes by its hash:
// ErrFactorUsed when it is not (or no longer) one.
func (s *Store) UseRecoveryCode(ctx context.Context, userID, codeHash string) error {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM second_factors WHERE user_id = ? AND kind = ? AND secret = ?`, userID, FactorRecovery, codeHash)
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrFactorUsed
	}
	return nil
}

// UseWebAuthnCredential records a WebAuthn credential's use: its new
// signature counter and credential JSON.
func (s *Store) UseWebAuthnCredential(ctx context.Context, userID, id, credential string, counter int64) error {
	return translate(s.db.WithContext(ctx).Exec(`UPDATE second_factors SET secret = ?, last_step = ?, last_used_at = ? WHERE user_id = ? AND id = ?`,
		credential, counter, s.nowMS(), userID, id).Error)
}

// SecondFactorByCredential is the WebAuthn factor of a credential ID.
func (s *Store) SecondFactorByCredential(ctx context.Context, credentialID string) (SecondFactor, error) {
	var f SecondFactor
	err := s.db.WithContext(ctx).Where("credential_id = ? AND kind = ?", credentialID, FactorWebAuthn).Take(&f).Error
	return f, translate(err)
}

// RemoveSecondFactor deletes one of the account's factors (with the audit
// entry ctx carries); removing the last factor that signs in (TOTP or
// WebAuthn) drops the recovery codes too.
func (s *Store) RemoveSecondFactor(ctx context.Context, userID, id string) error {
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("user_id = ? AND id = ?", userID, id).Delete(&SecondFactor{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		var left int64
		if err := tx.Model(&SecondFactor{}).Where("user_id = ? AND kind <> ? AND confirmed", userID, FactorRecovery).Count(&left).Error; err != nil {
			return err
		}
		if left == 0 {
			return tx.Where("user_id = ? AND kind = ?", userID, FactorRecovery).Delete(&SecondFactor{}).Error
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return err
	}
	return translate(err)
}

// ResetSecondFactors deletes every factor of the account (an admin's
// reset, audited through ctx); it reports how many went.
func (s *Store) ResetSecondFactors(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("user_id = ?", userID).Delete(&SecondFactor{})
		n = res.RowsAffected
		return res.Error
	})
	return n, translate(err)
}

// WebAuthnHandle is the account's WebAuthn user handle, made (from
// candidate) the first time it is asked for.
func (s *Store) WebAuthnHandle(ctx context.Context, userID, candidate string) (string, error) {
	g := s.db.WithContext(ctx)
	if err := g.Exec(`INSERT INTO webauthn_handles (user_id, handle) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING`, userID, candidate).Error; err != nil {
		return "", translate(err)
	}
	var handle string
	err := g.Raw(`SELECT handle FROM webauthn_handles WHERE user_id = ?`, userID).Scan(&handle).Error
	return handle, translate(err)
}

// UserByWebAuthnHandle is the account of a WebAuthn user handle.
func (s *Store) UserByWebAuthnHandle(ctx context.Context, handle string) (string, error) {
	var userID string
	err := s.db.WithContext(ctx).Raw(`SELECT user_id FROM webauthn_handles WHERE handle = ?`, handle).Scan(&userID).Error
	if err == nil && userID == "" {
		return "", ErrNotFound
	}
	return userID, translate(err)
}

// FactorChallenge is a sign-in waiting for a second factor, a step-up, or
// a WebAuthn ceremony in progress, by the hash of its cookie.
type FactorChallenge struct {
	IDHash    string `gorm:"column:id_hash;primaryKey"`
	UserID    string `gorm:"column:user_id"`
	Purpose   string `gorm:"column:purpose"`
	Next      string `gorm:"column:next"`
	Ceremony  string `gorm:"column:ceremony"`
	CreatedAt int64  `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt int64  `gorm:"column:expires_at"`
}

// TableName implements gorm's Tabler.
func (FactorChallenge) TableName() string { return "factor_challenges" }

// SaveFactorChallenge stores (or replaces) a challenge.
func (s *Store) SaveFactorChallenge(ctx context.Context, c FactorChallenge) error {
	c.CreatedAt = s.nowMS()
	return translate(s.db.WithContext(ctx).Save(&c).Error)
}

// FactorChallengeByID is a live challenge.
func (s *Store) FactorChallengeByID(ctx context.Context, idHash string) (FactorChallenge, error) {
	var c FactorChallenge
	err := s.db.WithContext(ctx).Where("id_hash = ? AND expires_at > ?", idHash, s.nowMS()).Take(&c).Error
	return c, translate(err)
}

// EndFactorChallenge deletes a challenge; false when another request
// ended it first (a challenge is passed once).
func (s *Store) EndFactorChallenge(ctx context.Context, idHash string) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM factor_challenges WHERE id_hash = ?`, idHash)
	return res.RowsAffected == 1, translate(res.Error)
}

// MarkFactorProved records that a browser session proved a second factor
// now (step-up for sensitive actions).
func (s *Store) MarkFactorProved(ctx context.Context, idHash string) error {
	return translate(s.db.WithContext(ctx).Exec(`UPDATE browser_sessions SET factor_at = ? WHERE id_hash = ?`, s.nowMS(), idHash).Error)
}

// BrowserFactorAt is when a browser session last proved a second factor
// (nil: never).
func (s *Store) BrowserFactorAt(ctx context.Context, idHash string) (*int64, error) {
	var at *int64
	err := s.db.WithContext(ctx).Raw(`SELECT factor_at FROM browser_sessions WHERE id_hash = ?`, idHash).Scan(&at).Error
	return at, translate(err)
}

// DeleteExpiredFactorChallenges sweeps challenges never passed.
func (s *Store) DeleteExpiredFactorChallenges(ctx context.Context) (int64, error) {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM factor_challenges WHERE expires_at <= ?`, s.nowMS())
	return res.RowsAffected, translate(res.Error)
}
