package db

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// TokenOwner is what an access token resolves to.
type TokenOwner struct {
	TokenID        int64
	UserID         string
	DeviceID       string
	ExpiresAt      *int64
	RefreshTokenID *int64
	Used           bool
	Kind           string
	Admin          bool
	Deactivated    bool
	Locked         bool
	Suspended      bool
	// Puppet: an admin made this token for the user.
	Puppet bool
	// OAuthClientID is the OAuth 2.0 client the token was issued to (""
	// for the legacy API); CreatedAt when it was issued.
	OAuthClientID string
	CreatedAt     int64
}

// ErrDeactivated means the account is deactivated.
var ErrDeactivated = errors.New("db: account deactivated")

// ErrCredentialsChanged means the account's password changed after a login
// verified it.
var ErrCredentialsChanged = errors.New("db: password changed during login")

// IssueLogin creates the device if needed (keeping an existing device's
// display name), revokes that device's previous tokens, and stores the new
// ones, in one transaction that first re-reads the account under its row
// lock: a deactivated account gives ErrDeactivated, a locked one (but for
// an admin's puppet login) ErrAccountLocked, and a password other than the
// one the login verified (l.VerifiedPasswordHash, when set) gives
// ErrCredentialsChanged. So a login racing a password change or a
// deactivation either commits before it (and is revoked by it) or fails.
func (s *Store) IssueLogin(ctx context.Context, userID string, l Login) (replaced bool, err error) {
	now := s.nowMS()
	err = s.write(ctx, func(tx *gorm.DB) error {
		acct, err := lockAccount(tx, userID)
		if err != nil {
			return err
		}
		if acct.Deactivated() {
			return ErrDeactivated
		}
		if acct.Locked && l.PuppetedBy == "" {
			return ErrAccountLocked
		}
		if l.VerifiedPasswordHash != "" && acct.PasswordHash != l.VerifiedPasswordHash {
			return ErrCredentialsChanged
		}
		replaced, err = issueLogin(tx, userID, l, now)
		return err
	})
	if errors.Is(err, ErrDeactivated) || errors.Is(err, ErrCredentialsChanged) || errors.Is(err, ErrAccountLocked) {
		return false, err
	}
	return replaced, translate(err)
}

// lockAccount reads the account, holding its row lock until the
// transaction ends.
func lockAccount(tx *gorm.DB, userID string) (Account, error) {
	var a Account
	err := forUpdate(tx).Where("user_id = ?", userID).Take(&a).Error
	return a, err
}

// issueLogin stores a login; replaced reports that the device existed
// and lost its previous tokens.
func issueLogin(tx *gorm.DB, userID string, l Login, now int64) (replaced bool, err error) {
	dev := Device{UserID: userID, DeviceID: l.DeviceID, DisplayName: l.DeviceDisplayName, CreatedAt: now, Hidden: l.PuppetedBy != ""}
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&dev)
	if res.Error != nil {
		return false, res.Error
	}
	if res.RowsAffected == 0 {
		replaced = true
		if err := tx.Where("user_id = ? AND device_id = ?", userID, l.DeviceID).Delete(&refreshToken{}).Error; err != nil {
			return true, err
		}
		if err := tx.Where("user_id = ? AND device_id = ?", userID, l.DeviceID).Delete(&accessToken{}).Error; err != nil {
			return true, err
		}
	}
	var refreshID *int64
	if l.RefreshTokenHash != "" {
		rt := refreshToken{TokenHash: l.RefreshTokenHash, UserID: userID, DeviceID: l.DeviceID, CreatedAt: now,
			ExpiresAt: l.RefreshExpiresAt, SessionExpiresAt: l.SessionExpiresAt, OAuthClientID: l.OAuthClientID, Scope: l.Scope}
		if err := tx.Create(&rt).Error; err != nil {
			return replaced, err
		}
		refreshID = &rt.ID
	}
	at := accessToken{TokenHash: l.AccessTokenHash, UserID: userID, DeviceID: l.DeviceID, CreatedAt: now,
		ExpiresAt: l.AccessExpiresAt, RefreshTokenID: refreshID, PuppetedBy: l.PuppetedBy, OAuthClientID: l.OAuthClientID}
	return replaced, tx.Create(&at).Error
}

// MarkAccessTokenUsed records the first use of an access token issued by a
// refresh: from then on the refresh token it replaced is consumed.
func (s *Store) MarkAccessTokenUsed(ctx context.Context, userID string, tokenID, refreshTokenID int64) error {
	return translate(s.transaction(ctx, func(tx *gorm.DB) error {
		if err := tx.Model(&accessToken{}).Where("id = ? AND user_id = ?", tokenID, userID).Update("used", true).Error; err != nil {
			return err
		}
		return consumePredecessor(tx, refreshTokenID)
	}))
}

// consumePredecessor marks the refresh token that was rotated into
// refreshTokenID as consumed and revokes the access tokens it had issued.
func consumePredecessor(tx *gorm.DB, refreshTokenID int64) error {
	var prev []refreshToken
	if err := tx.Where("next_token_id = ? AND NOT consumed", refreshTokenID).Find(&prev).Error; err != nil {
		return err
	}
	for _, p := range prev {
		if err := tx.Model(&refreshToken{}).Where("id = ?", p.ID).Update("consumed", true).Error; err != nil {
			return err
		}
		if err := tx.Where("refresh_token_id = ?", p.ID).Delete(&accessToken{}).Error; err != nil {
			return err
		}
	}
	return nil
}

// ErrRefreshTokenReused means a consumed refresh token was presented again;
// its device has been revoked.
var ErrRefreshTokenReused = errors.New("db: refresh token reused")

// ErrAccountLocked means the account is locked: its refresh tokens stay,
// unusable until it is unlocked.
var ErrAccountLocked = errors.New("db: account locked")

// ErrTokenExpired means the refresh token exists but has expired.
var ErrTokenExpired = errors.New("db: token expired")

// ErrSessionExpired means the login's session_lifetime is over: it cannot
// be refreshed any more.
var ErrSessionExpired = errors.New("db: session expired")

// RefreshResult is the device a refresh rotated tokens on.
type RefreshResult struct {
	UserID           string
	DeviceID         string
	SessionExpiresAt *int64
	// AccessExpiresAt is the new access token's expiry, capped by the
	// session's end.
	AccessExpiresAt *int64
	// Scope is the OAuth 2.0 grant's scope (empty for the legacy API).
	Scope string
}

// RotateRefreshToken exchanges the refresh token with hash oldHash for the
// new pair in next. The old token stays usable until the new pair is first
// used: a retry replaces the unused pair. A consumed token revokes the
// device (reuse detection). The token must have been issued to
// newRefresh.OAuthClientID (empty for the legacy API); another client's
// is ErrNotFound.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash string, newRefresh Login) (RefreshResult, error) {
	now := s.nowMS()
	var out RefreshResult
	reused := false
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		var old refreshToken
		if err := forUpdate(tx).Where("token_hash = ?", oldHash).Take(&old).Error; err != nil {
			return err
		}
		if old.OAuthClientID != newRefresh.OAuthClientID {
			return ErrNotFound
		}
		out = RefreshResult{UserID: old.UserID, DeviceID: old.DeviceID, SessionExpiresAt: old.SessionExpiresAt, Scope: old.Scope}
		if old.Consumed {
			reused = true
			return tx.Where("user_id = ? AND device_id = ?", old.UserID, old.DeviceID).Delete(&Device{}).Error
		}
		if old.SessionExpiresAt != nil && *old.SessionExpiresAt <= now {
			return ErrSessionExpired
		}
		if old.ExpiresAt != nil && *old.ExpiresAt <= now {
			return ErrTokenExpired
		}
		var locked bool
		if err := tx.Raw(`SELECT locked FROM accounts WHERE user_id = ?`, old.UserID).Scan(&locked).Error; err != nil {
			return err
		}
		if locked {
			return ErrAccountLocked
		}
		// A refresh never outlives the session it belongs to.
		capAt := func(t *int64) *int64 {
			if old.SessionExpiresAt == nil || (t != nil && *t <= *old.SessionExpiresAt) {
				return t
			}
			return old.SessionExpiresAt
		}
		newRefresh.AccessExpiresAt = capAt(newRefresh.AccessExpiresAt)
		newRefresh.RefreshExpiresAt = capAt(newRefresh.RefreshExpiresAt)
		out.AccessExpiresAt = newRefresh.AccessExpiresAt
		if old.NextTokenID != nil {
			if err := tx.Where("id = ?", *old.NextTokenID).Delete(&refreshToken{}).Error; err != nil {
				return err
			}
		}
		// Using this token consumes the one it replaced.
		if err := consumePredecessor(tx, old.ID); err != nil {
			return err
		}
		rt := refreshToken{TokenHash: newRefresh.RefreshTokenHash, UserID: old.UserID, DeviceID: old.DeviceID,
			CreatedAt: now, ExpiresAt: newRefresh.RefreshExpiresAt, SessionExpiresAt: old.SessionExpiresAt,
			OAuthClientID: old.OAuthClientID, Scope: old.Scope}
		if err := tx.Create(&rt).Error; err != nil {
			return err
		}
		if err := tx.Model(&refreshToken{}).Where("id = ?", old.ID).Update("next_token_id", rt.ID).Error; err != nil {
			return err
		}
		at := accessToken{TokenHash: newRefresh.AccessTokenHash, UserID: old.UserID, DeviceID: old.DeviceID,
			CreatedAt: now, ExpiresAt: newRefresh.AccessExpiresAt, RefreshTokenID: &rt.ID, OAuthClientID: old.OAuthClientID}
		return tx.Create(&at).Error
	})
	if err == nil && reused {
		return out, ErrRefreshTokenReused
	}
	if errors.Is(err, ErrSessionExpired) || errors.Is(err, ErrAccountLocked) || errors.Is(err, ErrNotFound) {
		return out, err
	}
	return out, translate(err)
}
