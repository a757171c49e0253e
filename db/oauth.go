package db

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// OAuthClient is a client registered with the OAuth 2.0 API (RFC 7591).
// Metadata is the registered metadata as the registration answered it
// (JSON); identical metadata shares one client (MetadataHash).
type OAuthClient struct {
	ClientID        string `gorm:"column:client_id;primaryKey"`
	Metadata        string `gorm:"column:metadata"`
	MetadataHash    string `gorm:"column:metadata_hash"`
	ApplicationType string `gorm:"column:application_type"`
	// RedirectURIs and GrantTypes are JSON arrays.
	RedirectURIs string `gorm:"column:redirect_uris"`
	GrantTypes   string `gorm:"column:grant_types"`
	CreatedAt    int64  `gorm:"column:created_at;autoCreateTime:false"`
	// RegisteredFrom is the rate-limit key of the address that registered
	// the client; FirstUsedAt is when it first completed an authorisation
	// (nil: never, and it is forgotten after a while).
	RegisteredFrom string `gorm:"column:registered_from"`
	FirstUsedAt    *int64 `gorm:"column:first_used_at"`
}

// TableName implements gorm's Tabler.
func (OAuthClient) TableName() string { return "oauth_clients" }

// OAuth grant kinds and statuses.
const (
	GrantCode   = "code"
	GrantDevice = "device"

	GrantPending   = "pending"
	GrantApproved  = "approved"
	GrantDenied    = "denied"
	GrantExchanged = "exchanged"
)

// OAuthGrant is one authorisation in progress: an authorisation request
// (kind code) or a device authorisation (kind device), from the client's
// request to the tokens it yields once.
type OAuthGrant struct {
	ID            string  `gorm:"column:id;primaryKey"`
	Kind          string  `gorm:"column:kind"`
	ClientID      string  `gorm:"column:client_id"`
	Scope         string  `gorm:"column:scope"`
	DeviceID      string  `gorm:"column:device_id"`
	RedirectURI   string  `gorm:"column:redirect_uri"`
	ResponseMode  string  `gorm:"column:response_mode"`
	State         string  `gorm:"column:state"`
	Nonce         string  `gorm:"column:nonce"`
	CodeChallenge string  `gorm:"column:code_challenge"`
	Prompt        string  `gorm:"column:prompt"`
	Status        string  `gorm:"column:status"`
	UserID        *string `gorm:"column:user_id"`
	AuthTime      *int64  `gorm:"column:auth_time"`
	// CodeHash is the authorisation code's hash, set on approval.
	CodeHash *string `gorm:"column:code_hash"`
	// DeviceCodeHash and UserCode are the device grant's codes.
	DeviceCodeHash *string `gorm:"column:device_code_hash"`
	UserCode       *string `gorm:"column:user_code"`
	LastPollAt     *int64  `gorm:"column:last_poll_at"`
	PollInterval   int     `gorm:"column:poll_interval"`
	CreatedAt      int64   `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt      int64   `gorm:"column:expires_at"`
}

// TableName implements gorm's Tabler.
func (OAuthGrant) TableName() string { return "oauth_grants" }

type oauthConsent struct {
	UserID    string `gorm:"column:user_id;primaryKey"`
	ClientID  string `gorm:"column:client_id;primaryKey"`
	Scope     string `gorm:"column:scope"`
	CreatedAt int64  `gorm:"column:created_at;autoCreateTime:false"`
}

func (oauthConsent) TableName() string { return "oauth_consents" }

type browserSession struct {
	IDHash       string `gorm:"column:id_hash;primaryKey"`
	UserID       string `gorm:"column:user_id"`
	CreatedAt    int64  `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt    int64  `gorm:"column:expires_at"`
	UserAgent    string `gorm:"column:user_agent"`
	IP           string `gorm:"column:ip"`
	LastActiveAt *int64 `gorm:"column:last_active_at"`
}

func (browserSession) TableName() string { return "browser_sessions" }

// Errors of the OAuth 2.0 grants.
var (
	// ErrGrantExpired: the code, device code or grant is past its expiry.
	ErrGrantExpired = errors.New("db: grant expired")
	// ErrCodeReplayed: the authorisation code was exchanged before; the
	// device it yielded has been logged out.
	ErrCodeReplayed = errors.New("db: authorisation code replayed")
	// ErrGrantPending, ErrGrantDenied: a device grant not approved (yet).
	ErrGrantPending = errors.New("db: grant pending")
	ErrGrantDenied  = errors.New("db: grant denied")
	// ErrSlowDown: a device grant polled sooner than its interval.
	ErrSlowDown = errors.New("db: polled too soon")
	// ErrDeviceTaken: the device ID is another user's.
	ErrDeviceTaken = errors.New("db: device ID belongs to another user")
)

// RegisterOAuthClient stores a client, or returns the existing client
// with the same metadata hash.
func (s *Store) RegisterOAuthClient(ctx context.Context, c OAuthClient) (OAuthClient, error) {
	c.CreatedAt = s.nowMS()
	g := s.db.WithContext(ctx)
	if err := g.Clauses(clause.OnConflict{DoNothing: true}).Create(&c).Error; err != nil {
		return c, translate(err)
	}
	var out OAuthClient
	err := g.Where("metadata_hash = ?", c.MetadataHash).Take(&out).Error
	return out, translate(err)
}

// UnusedOAuthClients counts the clients registered from the address key
// that never completed an authorisation, and returns when the oldest of
// them was registered (0 when there are none).
func (s *Store) UnusedOAuthClients(ctx context.Context, from string) (n, oldestCreated int64, err error) {
	var out struct {
		N      int64
		Oldest *int64
	}
	err = s.db.WithContext(ctx).Raw(`SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM oauth_clients
		WHERE registered_from = ? AND first_used_at IS NULL`, from).Scan(&out).Error
	if out.Oldest != nil {
		oldestCreated = *out.Oldest
	}
	return out.N, oldestCreated, translate(err)
}

// OAuthClient returns a registered client.
func (s *Store) OAuthClient(ctx context.Context, clientID string) (OAuthClient, error) {
	var c OAuthClient
	err := s.db.WithContext(ctx).Where("client_id = ?", clientID).Take(&c).Error
	return c, translate(err)
}

// CreateOAuthGrant stores a new grant; a user code taken meanwhile gives
// ErrConflict (draw another).
func (s *Store) CreateOAuthGrant(ctx context.Context, g OAuthGrant) error {
	g.CreatedAt = s.nowMS()
	err := s.db.WithContext(ctx).Create(&g).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return ErrConflict
	}
	return translate(err)
}

// OAuthGrant returns a grant that has not expired.
func (s *Store) OAuthGrant(ctx context.Context, id string) (OAuthGrant, error) {
	var g OAuthGrant
	err := s.db.WithContext(ctx).Where("id = ? AND expires_at > ?", id, s.nowMS()).Take(&g).Error
	return g, translate(err)
}

// OAuthGrantByCode returns the grant of an authorisation code, whatever
// its state.
func (s *Store) OAuthGrantByCode(ctx context.Context, codeHash string) (OAuthGrant, error) {
	var g OAuthGrant
	err := s.db.WithContext(ctx).Where("code_hash = ?", codeHash).Take(&g).Error
	return g, translate(err)
}

// PendingDeviceGrant returns the pending device grant of a user code.
func (s *Store) PendingDeviceGrant(ctx context.Context, userCode string) (OAuthGrant, error) {
	var g OAuthGrant
	err := s.db.WithContext(ctx).Where("user_code = ? AND kind = ? AND status = ? AND expires_at > ?",
		userCode, GrantDevice, GrantPending, s.nowMS()).Take(&g).Error
	return g, translate(err)
}

// DecideOAuthGrant approves (for userID) or denies a pending grant. An
// approved code grant gets codeHash and expiresAt (the code's lifetime).
// A device ID another user holds gives ErrDeviceTaken and changes nothing.
func (s *Store) DecideOAuthGrant(ctx context.Context, id, userID string, approve bool, codeHash *string, expiresAt int64) error {
	now := s.nowMS()
	return s.write(ctx, func(tx *gorm.DB) error {
		var g OAuthGrant
		if err := forUpdate(tx).Where("id = ? AND status = ? AND expires_at > ?", id, GrantPending, now).Take(&g).Error; err != nil {
			return err
		}
		updates := map[string]any{"status": GrantDenied, "user_id": userID, "auth_time": now}
		if approve {
			var other int64
			if err := tx.Model(&Device{}).Where("device_id = ? AND user_id <> ?", g.DeviceID, userID).Count(&other).Error; err != nil {
				return err
			}
			if other > 0 {
				return ErrDeviceTaken
			}
			updates["status"] = GrantApproved
			if codeHash != nil {
				updates["code_hash"], updates["expires_at"] = *codeHash, expiresAt
			}
		}
		return tx.Model(&OAuthGrant{}).Where("id = ?", id).Updates(updates).Error
	})
}

// ExchangeOAuthCode spends an approved authorisation code: in one
// transaction the grant becomes exchanged and the login (device and
// tokens) is issued under the account's row lock. A code exchanged before
// logs out the device it yielded and gives ErrCodeReplayed (RFC 6749
// §4.1.2); of concurrent exchanges one wins and the others are replays.
func (s *Store) ExchangeOAuthCode(ctx context.Context, codeHash string, l Login) (OAuthGrant, bool, error) {
	now := s.nowMS()
	var g OAuthGrant
	var replaced, replayed bool
	err := s.write(ctx, func(tx *gorm.DB) error {
		if err := forUpdate(tx).Where("code_hash = ?", codeHash).Take(&g).Error; err != nil {
			return err
		}
		switch {
		case g.Status == GrantExchanged:
			replayed = true
			return tx.Where("user_id = ? AND device_id = ?", deref2(g.UserID), g.DeviceID).Delete(&Device{}).Error
		case g.Status != GrantApproved || g.UserID == nil:
			return ErrNotFound
		case g.ExpiresAt <= now:
			return ErrGrantExpired
		}
		var err error
		if replaced, err = s.issueFor(tx, *g.UserID, g, l, now); err != nil {
			return err
		}
		return tx.Model(&OAuthGrant{}).Where("id = ?", g.ID).Update("status", GrantExchanged).Error
	})
	if err == nil && replayed {
		return g, true, ErrCodeReplayed
	}
	if err != nil {
		return g, false, oauthErr(err)
	}
	return g, replaced, nil
}

// PollDeviceGrant answers a device grant's poll: ErrGrantPending,
// ErrSlowDown (sooner than the interval, which grows by 5 s),
// ErrGrantDenied, ErrGrantExpired; once approved, the login is issued in
// the same transaction that spends the grant. Another client's device
// code is ErrNotFound.
func (s *Store) PollDeviceGrant(ctx context.Context, deviceCodeHash, clientID string, l Login) (OAuthGrant, bool, error) {
	now := s.nowMS()
	var g OAuthGrant
	var replaced bool
	var outcome error
	err := s.write(ctx, func(tx *gorm.DB) error {
		if err := forUpdate(tx).Where("device_code_hash = ? AND client_id = ?", deviceCodeHash, clientID).Take(&g).Error; err != nil {
			return err
		}
		if g.ExpiresAt <= now {
			outcome = ErrGrantExpired
			return nil
		}
		switch g.Status {
		case GrantExchanged:
			return ErrNotFound
		case GrantDenied:
			outcome = ErrGrantDenied
			return nil
		case GrantPending:
			poll := map[string]any{"last_poll_at": now}
			outcome = ErrGrantPending
			if g.LastPollAt != nil && now-*g.LastPollAt < int64(g.PollInterval)*1000 {
				outcome = ErrSlowDown
				poll["poll_interval"] = g.PollInterval + 5
			}
			return tx.Model(&OAuthGrant{}).Where("id = ?", g.ID).Updates(poll).Error
		}
		var err error
		if replaced, err = s.issueFor(tx, *g.UserID, g, l, now); err != nil {
			return err
		}
		return tx.Model(&OAuthGrant{}).Where("id = ?", g.ID).Update("status", GrantExchanged).Error
	})
	if err != nil {
		return g, false, oauthErr(err)
	}
	return g, replaced, outcome
}

// issueFor issues the login of a grant to userID, re-checking the account
// under its row lock.
func (s *Store) issueFor(tx *gorm.DB, userID string, g OAuthGrant, l Login, now int64) (bool, error) {
	acct, err := lockAccount(tx, userID)
	if err != nil {
		return false, err
	}
	switch {
	case acct.Deactivated():
		return false, ErrDeactivated
	case acct.Locked:
		return false, ErrAccountLocked
	}
	l.DeviceID, l.OAuthClientID, l.Scope = g.DeviceID, g.ClientID, g.Scope
	if err := tx.Model(&OAuthClient{}).Where("client_id = ? AND first_used_at IS NULL", g.ClientID).
		Update("first_used_at", now).Error; err != nil {
		return false, err
	}
	return issueLogin(tx, userID, l, now)
}

func oauthErr(err error) error {
	for _, known := range []error{ErrGrantExpired, ErrDeactivated, ErrAccountLocked, ErrDeviceTaken} {
		if errors.Is(err, known) {
			return err
		}
	}
	return translate(err)
}

func deref2(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ErrOtherClient means a token was not issued to the client presenting it.
var ErrOtherClient = errors.New("db: the token was issued to another client")

// RevokeOAuthToken logs out the device of an access or refresh token
// (RFC 7009: both go) issued to clientID; it returns the user, ErrNotFound
// for a token that is unknown or revoked already, and ErrOtherClient
// (revoking nothing) for a token issued to another client or by the
// legacy API.
func (s *Store) RevokeOAuthToken(ctx context.Context, tokenHash, clientID string) (string, error) {
	var userID string
	err := s.write(ctx, func(tx *gorm.DB) error {
		var owner struct{ UserID, DeviceID, Client string }
		err := tx.Raw(`SELECT user_id, device_id, oauth_client_id AS client FROM access_tokens WHERE token_hash = ?
			UNION ALL SELECT user_id, device_id, oauth_client_id AS client FROM refresh_tokens WHERE token_hash = ?`, tokenHash, tokenHash).Scan(&owner).Error
		if err != nil {
			return err
		}
		if owner.UserID == "" {
			return ErrNotFound
		}
		if owner.Client != clientID {
			return ErrOtherClient
		}
		userID = owner.UserID
		return tx.Where("user_id = ? AND device_id = ?", owner.UserID, owner.DeviceID).Delete(&Device{}).Error
	})
	if errors.Is(err, ErrOtherClient) {
		return "", err
	}
	return userID, translate(err)
}

// OAuthConsent returns the scope the user consented to for the client,
// or "".
func (s *Store) OAuthConsent(ctx context.Context, userID, clientID string) (string, error) {
	var c oauthConsent
	err := s.db.WithContext(ctx).Where("user_id = ? AND client_id = ?", userID, clientID).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", nil
	}
	return c.Scope, translate(err)
}

// SaveOAuthConsent remembers the scope the user consented to.
func (s *Store) SaveOAuthConsent(ctx context.Context, userID, clientID, scope string) error {
	c := oauthConsent{UserID: userID, ClientID: clientID, Scope: scope, CreatedAt: s.nowMS()}
	return translate(s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "user_id"}, {Name: "client_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"scope", "created_at"}),
	}).Create(&c).Error)
}

// CreateBrowserSession stores a sign-in of the browser, under the
// account's row lock: a deactivated or locked account, or one whose
// password is no longer verifiedPasswordHash (when set: the hash the
// sign-in checked), gives ErrDeactivated, ErrAccountLocked or
// ErrCredentialsChanged and stores nothing. So a sign-in racing a
// password change or a lock either commits first (and is ended by it) or
// fails.
func (s *Store) CreateBrowserSession(ctx context.Context, idHash, userID string, expiresAt int64, verifiedPasswordHash string) error {
	now := s.nowMS()
	err := s.write(ctx, func(tx *gorm.DB) error {
		acct, err := lockAccount(tx, userID)
		if err != nil {
			return err
		}
		switch {
		case acct.Deactivated():
			return ErrDeactivated
		case acct.Locked:
			return ErrAccountLocked
		case verifiedPasswordHash != "" && acct.PasswordHash != verifiedPasswordHash:
			return ErrCredentialsChanged
		}
		return tx.Create(&browserSession{IDHash: idHash, UserID: userID, CreatedAt: now, ExpiresAt: expiresAt}).Error
	})
	for _, known := range []error{ErrDeactivated, ErrAccountLocked, ErrCredentialsChanged} {
		if errors.Is(err, known) {
			return err
		}
	}
	return translate(err)
}

// LiveBrowserSession is a live browser session: its user, and the browser,
// address and time of its last use.
type LiveBrowserSession struct {
	UserID, UserAgent, IP string
	LastActiveAt          *int64
}

// BrowserSession returns a live browser session.
func (s *Store) BrowserSession(ctx context.Context, idHash string) (LiveBrowserSession, error) {
	var b browserSession
	err := s.db.WithContext(ctx).Where("id_hash = ? AND expires_at > ?", idHash, s.nowMS()).Take(&b).Error
	return LiveBrowserSession{UserID: b.UserID, UserAgent: b.UserAgent, IP: b.IP, LastActiveAt: b.LastActiveAt}, translate(err)
}

// DeleteBrowserSession ends a browser session.
func (s *Store) DeleteBrowserSession(ctx context.Context, idHash string) error {
	return translate(s.db.WithContext(ctx).Where("id_hash = ?", idHash).Delete(&browserSession{}).Error)
}

// DeleteExpiredOAuth sweeps expired grants and browser sessions, and the
// clients registered before unusedClientsBefore that never completed an
// authorisation (with their grants).
func (s *Store) DeleteExpiredOAuth(ctx context.Context, unusedClientsBefore int64) (int64, error) {
	now := s.nowMS()
	var total int64
	err := s.write(ctx, func(tx *gorm.DB) error {
		total = 0
		for _, q := range []struct {
			model any
			where string
			arg   int64
		}{
			{&OAuthGrant{}, "expires_at <= ?", now},
			{&browserSession{}, "expires_at <= ?", now},
			{&OAuthClient{}, "first_used_at IS NULL AND created_at < ?", unusedClientsBefore},
		} {
			res := tx.Where(q.where, q.arg).Delete(q.model)
			if res.Error != nil {
				return res.Error
			}
			total += res.RowsAffected
		}
		return nil
	})
	return total, translate(err)
}
