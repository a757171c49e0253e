package db

import (
	"context"
	"errors"

	"gorm.io/gorm"
)

// ErrExternalIDTaken is an upstream identity linked to another account.
var ErrExternalIDTaken = errors.New("db: the external ID is linked to another account")

// ErrLastWayIn is the unlinking of an account's last upstream identity
// while it has no password: nothing would sign it in any more.
var ErrLastWayIn = errors.New("db: the account's last way to sign in")

// Upstream sign-in purposes.
const (
	UpstreamSignIn = "signin" // sign in (or up) on the pages
	UpstreamLink   = "link"   // link the signed-in account
	UpstreamSSO    = "sso"    // the legacy API's m.login.sso
	UpstreamUIA    = "uia"    // re-authenticate for a UIA stage
)

// Upstream sign-in states.
const (
	UpstreamStarted  = "started"  // sent to the provider
	UpstreamReturned = "returned" // back, awaiting a username
)

// UpstreamSession is a sign-in at an upstream provider in progress: its
// state (the ID), nonce and PKCE verifier, bound to the browser that
// started it, and what it is for.
type UpstreamSession struct {
	ID           string `gorm:"column:id;primaryKey"`
	BindingHash  string `gorm:"column:binding_hash"`
	IdpID        string `gorm:"column:idp_id"`
	Purpose      string `gorm:"column:purpose"`
	Nonce        string `gorm:"column:nonce"`
	CodeVerifier string `gorm:"column:code_verifier"`
	// Next is where the sign-in continues: a page of registrar, or the
	// legacy client's redirectUrl.
	Next       string `gorm:"column:next"`
	UserID     string `gorm:"column:user_id"`
	UIASession string `gorm:"column:uia_session"`
	// Subject, UpstreamSID and Claims are the provider's answer.
	Subject     string `gorm:"column:subject"`
	UpstreamSID string `gorm:"column:upstream_sid"`
	Claims      string `gorm:"column:claims"`
	Status      string `gorm:"column:status"`
	CreatedAt   int64  `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt   int64  `gorm:"column:expires_at"`
}

// TableName implements gorm's Tabler.
func (UpstreamSession) TableName() string { return "upstream_sessions" }

// CreateUpstreamSession stores a sign-in sent to a provider.
func (s *Store) CreateUpstreamSession(ctx context.Context, u UpstreamSession) error {
	u.CreatedAt = s.nowMS()
	return translate(s.db.WithContext(ctx).Create(&u).Error)
}

// UpstreamSessionByID returns a sign-in in progress; ErrNotFound once it
// expired or ended.
func (s *Store) UpstreamSessionByID(ctx context.Context, id string) (UpstreamSession, error) {
	var u UpstreamSession
	err := s.db.WithContext(ctx).Where("id = ? AND expires_at > ?", id, s.nowMS()).Take(&u).Error
	return u, translate(err)
}

// ReturnUpstreamSession records the provider's answer on a sign-in that
// was sent there; ErrNotFound when it is not (any more): a state is
// spent once.
func (s *Store) ReturnUpstreamSession(ctx context.Context, id, subject, sid, claims string) error {
	res := s.db.WithContext(ctx).Exec(`UPDATE upstream_sessions SET status = ?, subject = ?, upstream_sid = ?, claims = ?
		WHERE id = ? AND status = ? AND expires_at > ?`, UpstreamReturned, subject, sid, claims, id, UpstreamStarted, s.nowMS())
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// EndUpstreamSession deletes a sign-in in progress; false when another
// request ended it first.
func (s *Store) EndUpstreamSession(ctx context.Context, id string) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM upstream_sessions WHERE id = ?`, id)
	return res.RowsAffected == 1, translate(res.Error)
}

// ExternalIDOwner is the account linked to an upstream identity.
func (s *Store) ExternalIDOwner(ctx context.Context, provider, externalID string) (string, error) {
	var e ExternalID
	err := s.db.WithContext(ctx).Where("auth_provider = ? AND external_id = ?", provider, externalID).Take(&e).Error
	return e.UserID, translate(err)
}

// LinkExternalID links an upstream identity to an account; linked to
// another account already it is ErrExternalIDTaken, to this one a no-op.
func (s *Store) LinkExternalID(ctx context.Context, e ExternalID) error {
	err := s.write(ctx, func(tx *gorm.DB) error { return linkExternalID(tx, e) })
	if errors.Is(err, ErrExternalIDTaken) {
		return err
	}
	return translate(err)
}

func linkExternalID(tx *gorm.DB, e ExternalID) error {
	res := tx.Exec(`INSERT INTO external_ids (auth_provider, external_id, user_id) VALUES (?, ?, ?)
		ON CONFLICT (auth_provider, external_id) DO NOTHING`, e.AuthProvider, e.ExternalID, e.UserID)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var owner string
	if err := tx.Raw(`SELECT user_id FROM external_ids WHERE auth_provider = ? AND external_id = ?`, e.AuthProvider, e.ExternalID).
		Scan(&owner).Error; err != nil {
		return err
	}
	if owner != e.UserID {
		return ErrExternalIDTaken
	}
	return nil
}

// UnlinkExternalID removes one of the account's upstream identities,
// under the account's row lock: refused with ErrLastWayIn when it is the
// last one and the account has no password.
func (s *Store) UnlinkExternalID(ctx context.Context, userID, provider, externalID string) error {
	err := s.write(ctx, func(tx *gorm.DB) error {
		acct, err := lockAccount(tx, userID)
		if err != nil {
			return err
		}
		var links int64
		if err := tx.Model(&ExternalID{}).Where("user_id = ?", userID).Count(&links).Error; err != nil {
			return err
		}
		if links <= 1 && acct.PasswordHash == "" {
			return ErrLastWayIn
		}
		res := tx.Exec(`DELETE FROM external_ids WHERE user_id = ? AND auth_provider = ? AND external_id = ?`, userID, provider, externalID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
	if errors.Is(err, ErrLastWayIn) || errors.Is(err, ErrNotFound) {
		return err
	}
	return translate(err)
}

// UpstreamLogin is a session a provider's session made: a browser signed
// in to the pages, a legacy login token (then its device), or a device.
type UpstreamLogin struct {
	IdpID, Subject, SID, UserID          string
	BrowserSession, LoginToken, DeviceID string
}

// RecordUpstreamLogin notes a session a provider's session made.
func (s *Store) RecordUpstreamLogin(ctx context.Context, l UpstreamLogin) error {
	return translate(s.db.WithContext(ctx).Exec(`INSERT INTO upstream_logins (idp_id, subject, sid, user_id, browser_session, login_token,
		device_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, l.IdpID, l.Subject, l.SID, l.UserID, l.BrowserSession, l.LoginToken, l.DeviceID,
		s.nowMS()).Error)
}

// AttachUpstreamDevice notes the device a login token of a provider's
// session logged in.
func (s *Store) AttachUpstreamDevice(ctx context.Context, loginTokenHash, deviceID string) error {
	return translate(s.db.WithContext(ctx).Exec(`UPDATE upstream_logins SET device_id = ?, login_token = '' WHERE login_token = ?`,
		deviceID, loginTokenHash).Error)
}

// InheritUpstreamLogin notes that the browser session (made by a
// provider's session) authorised a device: the provider's logout ends it
// too.
func (s *Store) InheritUpstreamLogin(ctx context.Context, browserSession, userID, deviceID string) error {
	return translate(s.db.WithContext(ctx).Exec(`INSERT INTO upstream_logins (idp_id, subject, sid, user_id, browser_session, login_token,
		device_id, created_at) SELECT idp_id, subject, sid, user_id, '', '', ?, ? FROM upstream_logins
		WHERE browser_session = ? AND user_id = ?`, deviceID, s.nowMS(), browserSession, userID).Error)
}

// EndUpstreamSessions ends every session a provider's session made (by
// sid, and subject unless ignoreSubject; by subject alone when sid is
// ""): browser sessions and devices with their tokens, in one
// transaction. It returns the users whose sessions ended.
func (s *Store) EndUpstreamSessions(ctx context.Context, idpID, subject, sid string, ignoreSubject bool) ([]string, error) {
	var users []string
	err := s.write(ctx, func(tx *gorm.DB) error {
		users = nil
		where, args := "idp_id = ? AND sid = ?", []any{idpID, sid}
		switch {
		case sid == "":
			where, args = "idp_id = ? AND subject = ?", []any{idpID, subject}
		case !ignoreSubject && subject != "":
			where, args = where+" AND subject = ?", append(args, subject)
		}
		var rows []struct {
			UserID         string `gorm:"column:user_id"`
			BrowserSession string `gorm:"column:browser_session"`
			DeviceID       string `gorm:"column:device_id"`
		}
		if err := tx.Raw(`SELECT user_id, browser_session, device_id FROM upstream_logins WHERE `+where, args...).Scan(&rows).Error; err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, r := range rows {
			if !seen[r.UserID] {
				seen[r.UserID] = true
				users = append(users, r.UserID)
			}
			if r.BrowserSession != "" {
				if err := tx.Exec(`DELETE FROM browser_sessions WHERE id_hash = ? AND user_id = ?`, r.BrowserSession, r.UserID).Error; err != nil {
					return err
				}
			}
			if r.DeviceID != "" {
				if err := tx.Where("user_id = ? AND device_id = ?", r.UserID, r.DeviceID).Delete(&Device{}).Error; err != nil {
					return err
				}
			}
		}
		return tx.Exec(`DELETE FROM upstream_logins WHERE `+where, args...).Error
	})
	return users, translate(err)
}

// DeleteExpiredUpstream sweeps sign-ins that were never finished and the
// records of sessions that ended otherwise.
func (s *Store) DeleteExpiredUpstream(ctx context.Context) (int64, error) {
	var total int64
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`DELETE FROM upstream_sessions WHERE expires_at <= ?`, s.nowMS())
		if res.Error != nil {
			return res.Error
		}
		total = res.RowsAffected
		// A device an authorisation named is made when the client exchanges
		// its code: records are kept an hour before they may look ended.
		res = tx.Exec(`DELETE FROM upstream_logins WHERE created_at < ? AND
			(browser_session = '' OR browser_session NOT IN (SELECT id_hash FROM browser_sessions))
			AND (login_token = '' OR login_token NOT IN (SELECT token_hash FROM login_tokens))
			AND (device_id = '' OR NOT EXISTS (SELECT 1 FROM devices d WHERE d.user_id = upstream_logins.user_id AND d.device_id = upstream_logins.device_id))`, s.nowMS()-3600_000)
		total += res.RowsAffected
		return res.Error
	})
	return total, translate(err)
}
