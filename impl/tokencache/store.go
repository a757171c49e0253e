package tokencache

import (
	"context"
	"time"

	"registrar/db"
)

// Store is the database as the server uses it: lookups of access tokens
// go through the cache, and every write that can revoke a user's tokens
// announces the revocation once it has committed (so that no read racing
// it can cache the old state). Handlers never revoke by hand.
type Store struct {
	*db.Store
	cache *Cache
	now   func() time.Time
	// announce, when set, tells other processes sharing the database.
	announce func(userID string)
}

// Wrap returns the revoking, caching view of store.
func Wrap(store *db.Store, cache *Cache, now func() time.Time) *Store {
	return &Store{Store: store, cache: cache, now: now}
}

// OnRevoke sets a function told of every revocation this process makes
// (to pass it to other processes).
func (s *Store) OnRevoke(f func(userID string)) { s.announce = f }

// CacheStats returns the token cache's counts.
func (s *Store) CacheStats() Stats { return s.cache.Stats() }

// Revoked invalidates the cached tokens of a user whose tokens another
// process revoked.
func (s *Store) Revoked(userID string) { s.cache.RevokeUser(userID) }

// Lost invalidates every cached token: revocations by other processes may
// have been missed.
func (s *Store) Lost() { s.cache.RevokeAll() }

func (s *Store) revoke(userID string) {
	if userID == "" {
		return
	}
	s.cache.RevokeUser(userID)
	if s.announce != nil {
		s.announce(userID)
	}
}

// LookupAccessToken resolves a token hash through the cache. Tokens of a
// refreshed pair are cached only once used, so their first use always
// reaches the database.
func (s *Store) LookupAccessToken(ctx context.Context, hash string) (db.TokenOwner, error) {
	now := s.now()
	if owner, ok := s.cache.get(hash, now); ok {
		return owner, nil
	}
	seq := s.cache.readSeq()
	owner, err := s.Store.LookupAccessToken(ctx, hash)
	if err != nil {
		return owner, err
	}
	if owner.RefreshTokenID == nil || owner.Used {
		s.cache.put(hash, owner, seq, now)
	}
	return owner, nil
}

// Register implements db.Store.Register; upgrading a guest revokes its
// guest tokens' cached state.
func (s *Store) Register(ctx context.Context, r db.Registration) (db.Registered, error) {
	if r.UpgradeGuest {
		defer s.revoke(r.Account.UserID)
	}
	return s.Store.Register(ctx, r)
}

// IssueLogin implements db.Store.IssueLogin; a reused device loses its
// tokens (a new device revokes nothing).
func (s *Store) IssueLogin(ctx context.Context, userID string, l db.Login) (bool, error) {
	replaced, err := s.Store.IssueLogin(ctx, userID, l)
	if replaced {
		s.revoke(userID)
	}
	return replaced, err
}

// MarkAccessTokenUsed implements db.Store.MarkAccessTokenUsed; the
// replaced pair's tokens go.
func (s *Store) MarkAccessTokenUsed(ctx context.Context, userID string, tokenID, refreshTokenID int64) error {
	defer s.revoke(userID)
	return s.Store.MarkAccessTokenUsed(ctx, userID, tokenID, refreshTokenID)
}

// RotateRefreshToken implements db.Store.RotateRefreshToken; a reused
// token revokes its device.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash string, next db.Login) (db.RefreshResult, error) {
	res, err := s.Store.RotateRefreshToken(ctx, oldHash, next)
	s.revoke(res.UserID)
	return res, err
}

// DeleteDevice implements db.Store.DeleteDevice.
func (s *Store) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	defer s.revoke(userID)
	return s.Store.DeleteDevice(ctx, userID, deviceID)
}

// DeleteAllDevices implements db.Store.DeleteAllDevices.
func (s *Store) DeleteAllDevices(ctx context.Context, userID string) error {
	defer s.revoke(userID)
	return s.Store.DeleteAllDevices(ctx, userID)
}

// EndOtherSessions implements db.Store.EndOtherSessions.
func (s *Store) EndOtherSessions(ctx context.Context, userID, keepIDHash string) error {
	defer s.revoke(userID)
	return s.Store.EndOtherSessions(ctx, userID, keepIDHash)
}

// EndUpstreamSessions implements db.Store.EndUpstreamSessions.
func (s *Store) EndUpstreamSessions(ctx context.Context, idpID, subject, sid string, ignoreSubject bool) ([]string, error) {
	users, err := s.Store.EndUpstreamSessions(ctx, idpID, subject, sid, ignoreSubject)
	for _, u := range users {
		s.revoke(u)
	}
	return users, err
}

// SetPassword implements db.Store.SetPassword; other devices may be
// logged out.
func (s *Store) SetPassword(ctx context.Context, userID, hash string, logout db.PasswordLogout) error {
	defer s.revoke(userID)
	return s.Store.SetPassword(ctx, userID, hash, logout)
}

// Deactivate implements db.Store.Deactivate.
func (s *Store) Deactivate(ctx context.Context, userID string, erase bool) error {
	defer s.revoke(userID)
	return s.Store.Deactivate(ctx, userID, erase)
}

// SetApproved implements db.Store.SetApproved; cached tokens carry the
// account's state.
func (s *Store) SetApproved(ctx context.Context, userID string, approved bool) error {
	defer s.revoke(userID)
	return s.Store.SetApproved(ctx, userID, approved)
}

// DeleteDevices implements db.Store.DeleteDevices.
func (s *Store) DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error {
	defer s.revoke(userID)
	return s.Store.DeleteDevices(ctx, userID, deviceIDs)
}

// UpdateAccount implements db.Store.UpdateAccount; cached tokens carry
// the account's admin, lock and suspension state, and a password change
// or deactivation may log devices out.
func (s *Store) UpdateAccount(ctx context.Context, userID string, c db.AccountChanges) (db.Account, error) {
	defer s.revoke(userID)
	return s.Store.UpdateAccount(ctx, userID, c)
}

// ExchangeOAuthCode implements db.Store.ExchangeOAuthCode; a replayed
// code logs its device out, and a reused device loses its tokens.
func (s *Store) ExchangeOAuthCode(ctx context.Context, codeHash string, l db.Login) (db.OAuthGrant, bool, error) {
	g, replaced, err := s.Store.ExchangeOAuthCode(ctx, codeHash, l)
	if (replaced || err == db.ErrCodeReplayed) && g.UserID != nil {
		s.revoke(*g.UserID)
	}
	return g, replaced, err
}

// PollDeviceGrant implements db.Store.PollDeviceGrant; a reused device
// loses its tokens.
func (s *Store) PollDeviceGrant(ctx context.Context, deviceCodeHash, clientID string, l db.Login) (db.OAuthGrant, bool, error) {
	g, replaced, err := s.Store.PollDeviceGrant(ctx, deviceCodeHash, clientID, l)
	if replaced && g.UserID != nil {
		s.revoke(*g.UserID)
	}
	return g, replaced, err
}

// RevokeOAuthToken implements db.Store.RevokeOAuthToken.
func (s *Store) RevokeOAuthToken(ctx context.Context, tokenHash, clientID string) (string, error) {
	userID, err := s.Store.RevokeOAuthToken(ctx, tokenHash, clientID)
	s.revoke(userID)
	return userID, err
}
