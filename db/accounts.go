package db

import (
	"context"
	"errors"
	"strconv"

	"gorm.io/gorm"
)

// Login is a device and the tokens to issue on it. A device that already
// exists keeps its display name and loses its previous tokens.
type Login struct {
	DeviceID          string
	DeviceDisplayName string
	AccessTokenHash   string
	AccessExpiresAt   *int64
	// RefreshTokenHash is empty when no refresh token is issued.
	RefreshTokenHash string
	RefreshExpiresAt *int64
	SessionExpiresAt *int64
	// VerifiedPasswordHash, when set, is the password hash the login
	// verified; the login fails if the account's is another by now.
	VerifiedPasswordHash string
	// PuppetedBy, when set, is the admin this login is made for: the
	// device is hidden from the user's device lists.
	PuppetedBy string
	// OAuthClientID and Scope are set on logins of the OAuth 2.0 API.
	OAuthClientID string
	Scope         string
}

// Registration is everything a successful registration writes, in one
// transaction: the account, optionally a login, and the UIA session's
// record of the registered user.
type Registration struct {
	Account Account
	// UpgradeGuest turns the existing guest account Account.UserID into
	// this account instead of inserting a new one.
	UpgradeGuest bool
	Login        *Login
	// Session, when set, is the UIA session that authorised the
	// registration, stored (created or updated) with the record of the
	// registered user, so that a retry returns the same account.
	Session *UIASession
	// TokenSessionID, when set, is the UIA session whose registration
	// token reservation becomes a completed use.
	TokenSessionID string
	// Threepids are validated addresses to bind to the account; each one's
	// validation session is consumed. An address bound meanwhile gives
	// ErrThreepidInUse and nothing is written.
	Threepids []NewThreepid
	// ExternalIDs link the account to upstream identities (single sign-on,
	// LDAP); one linked meanwhile to another account gives
	// ErrExternalIDTaken and nothing is written.
	ExternalIDs []ExternalID
}

// Registered is what a registration did besides writing the account.
type Registered struct {
	// TokenExhausted is true when the registration took its registration
	// token's last allowed use.
	TokenExhausted bool
}

// Register creates (or upgrades) the account and its login atomically.
// A taken localpart gives ErrUserExists and writes nothing.
func (s *Store) Register(ctx context.Context, r Registration) (Registered, error) {
	now := s.nowMS()
	var out Registered
	err := s.write(ctx, func(tx *gorm.DB) error {
		out = Registered{}
		acct := r.Account
		acct.CreatedAt = now
		if acct.ConsentVersion != "" {
			acct.ConsentAt = &now
		}
		if r.UpgradeGuest {
			res := tx.Model(&Account{}).
				Where("user_id = ? AND kind = ? AND deactivated_at IS NULL", acct.UserID, KindGuest).
				Updates(map[string]any{"kind": acct.Kind, "password_hash": acct.PasswordHash, "consent_version": acct.ConsentVersion,
					"consent_at": acct.ConsentAt})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return ErrUserExists
			}
		} else if err := tx.Create(&acct).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return ErrUserExists
			}
			return err
		}
		if r.TokenSessionID != "" {
			exhausted, err := completeReservation(tx, r.TokenSessionID)
			if err != nil {
				return err
			}
			out.TokenExhausted = exhausted
		}
		for _, t := range r.Threepids {
			if err := addThreepid(tx, acct.UserID, t, now); err != nil {
				return err
			}
		}
		for _, e := range r.ExternalIDs {
			e.UserID = acct.UserID
			if err := linkExternalID(tx, e); err != nil {
				return err
			}
		}
		if r.Login != nil {
			if _, err := issueLogin(tx, acct.UserID, *r.Login, now); err != nil {
				return err
			}
		}
		if r.Session != nil {
			return saveUIASession(tx, *r.Session)
		}
		return nil
	})
	if errors.Is(err, ErrUserExists) || errors.Is(err, ErrTokenInvalid) || errors.Is(err, ErrThreepidInUse) || errors.Is(err, ErrExternalIDTaken) {
		return Registered{}, err
	}
	if err != nil {
		return Registered{}, translate(err)
	}
	return out, nil
}

// Account returns the account whose localpart matches case-insensitively.
func (s *Store) Account(ctx context.Context, localpartLower string) (Account, error) {
	var a Account
	err := s.db.WithContext(ctx).Where("localpart_lower = ?", localpartLower).Take(&a).Error
	return a, translate(err)
}

// MaxNumericLocalpart returns the largest purely numeric localpart in use,
// or 0; generated user IDs continue from it.
func (s *Store) MaxNumericLocalpart(ctx context.Context) (int64, error) {
	numeric := `localpart_lower <> '' AND localpart_lower NOT GLOB '*[^0-9]*'`
	if s.engine == Postgres {
		numeric = `localpart_lower ~ '^[0-9]+$'`
	}
	var v *string
	err := s.db.WithContext(ctx).Raw(
		`SELECT localpart_lower FROM accounts WHERE ` + numeric + `
		 ORDER BY length(localpart_lower) DESC, localpart_lower DESC LIMIT 1`).Scan(&v).Error
	if err != nil || v == nil {
		return 0, err
	}
	n, err := strconv.ParseInt(*v, 10, 64)
	if err != nil {
		return 0, nil
	}
	return n, nil
}

// PasswordLogout says what a password change ends besides the password.
type PasswordLogout struct {
	// Devices logs out every device but KeepDevice (all when it is
	// empty), with their tokens.
	Devices    bool
	KeepDevice string
	// SignIns ends the account's browser sign-ins, remembered OAuth
	// consents and pending login tokens (always done with Devices).
	SignIns bool
}

// SetPassword replaces the account's password hash and ends what logout
// says, in one transaction.
func (s *Store) SetPassword(ctx context.Context, userID, hash string, logout PasswordLogout) error {
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Account{}).Where("user_id = ? AND deactivated_at IS NULL", userID).Update("password_hash", hash)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if logout.Devices || logout.SignIns {
			if err := endSignIns(tx, userID); err != nil {
				return err
			}
		}
		if !logout.Devices {
			return nil
		}
		return tx.Where("user_id = ? AND device_id <> ?", userID, logout.KeepDevice).Delete(&Device{}).Error
	}))
}

// ReplacePasswordHash swaps the account's password hash for a new one of
// the same password, if it is still old (a login upgrading the hash);
// it reports whether it did.
func (s *Store) ReplacePasswordHash(ctx context.Context, userID, old, replacement string) (bool, error) {
	var done bool
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Account{}).Where("user_id = ? AND password_hash = ?", userID, old).Update("password_hash", replacement)
		done = res.RowsAffected == 1
		return res.Error
	})
	return done, translate(err)
}

// endSignIns ends what lets a browser or a client sign in again without
// the password: the user's browser sessions, remembered OAuth consents
// and unspent login tokens.
func endSignIns(tx *gorm.DB, userID string) error {
	for _, table := range []string{"browser_sessions", "oauth_consents", "login_tokens"} {
		if err := tx.Exec(`DELETE FROM `+table+` WHERE user_id = ?`, userID).Error; err != nil {
			return err
		}
	}
	return nil
}

// Deactivate marks the account deactivated, clears its password and deletes
// all its devices, tokens and addresses in one transaction; with erase it
// also wipes the profile. An account deactivated already gives ErrNotFound.
func (s *Store) Deactivate(ctx context.Context, userID string, erase bool) error {
	now := s.nowMS()
	return translate(s.write(ctx, func(tx *gorm.DB) error { return deactivate(tx, userID, erase, now) }))
}

func deactivate(tx *gorm.DB, userID string, erase bool, now int64) error {
	updates := map[string]any{"deactivated_at": now, "password_hash": ""}
	if erase {
		updates["display_name"] = ""
		updates["avatar_url"] = ""
		updates["erased"] = true
	}
	res := tx.Model(&Account{}).Where("user_id = ? AND deactivated_at IS NULL", userID).Updates(updates)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	if err := tx.Where("user_id = ?", userID).Delete(&Threepid{}).Error; err != nil {
		return err
	}
	if err := endSignIns(tx, userID); err != nil {
		return err
	}
	return tx.Where("user_id = ?", userID).Delete(&Device{}).Error
}

// AccountByUserID returns the account with exactly this user ID.
func (s *Store) AccountByUserID(ctx context.Context, userID string) (Account, error) {
	var a Account
	err := s.db.WithContext(ctx).Where("user_id = ?", userID).Take(&a).Error
	return a, translate(err)
}

// SetApproved approves (or un-approves) an account.
func (s *Store) SetApproved(ctx context.Context, userID string, approved bool) error {
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Account{}).Where("user_id = ?", userID).Update("approval_pending", !approved)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	}))
}
