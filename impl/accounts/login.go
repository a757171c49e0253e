package accounts

import (
	"context"
	"errors"
	"net/http"
	"time"

	"registrar/db"
	"registrar/impl/config"
	"registrar/impl/matrix"
	"registrar/impl/secrets"
)

// LoginRequest is what a client asks of a new login.
type LoginRequest struct {
	DeviceID    *string
	DisplayName *string
	// Refresh: the client supports refresh tokens.
	Refresh bool
	// OAuthAccessLifetime, when set, makes an OAuth 2.0 login: a refresh
	// token always, and access tokens of this lifetime.
	OAuthAccessLifetime time.Duration
}

// LoginResult is what a new login hands the client.
type LoginResult struct {
	AccessToken  string
	RefreshToken string
	DeviceID     string
	ExpiresInMS  *int64
}

const (
	maxDeviceIDLength    = 255
	maxDisplayNameLength = 512
)

// CheckDeviceParams bounds a requested device ID and display name.
func CheckDeviceParams(deviceID, displayName *string) *matrix.Error {
	if deviceID != nil && (*deviceID == "" || len(*deviceID) > maxDeviceIDLength) {
		return matrix.BadRequest(matrix.CodeInvalidParam, "device_id must be 1-255 bytes")
	}
	if displayName != nil && len(*displayName) > maxDisplayNameLength {
		return matrix.BadRequest(matrix.CodeInvalidParam, "initial_device_display_name is too long")
	}
	return nil
}

// prepareLogin makes a device and tokens with the configured lifetimes:
// refreshable_access_token_lifetime when the client asked for a refresh
// token and refresh is enabled, else nonrefreshable_access_token_lifetime;
// session_lifetime caps both.
func (s *Service) prepareLogin(req LoginRequest) (db.Login, LoginResult, error) {
	if err := CheckDeviceParams(req.DeviceID, req.DisplayName); err != nil {
		return db.Login{}, LoginResult{}, err
	}
	now := s.now()
	l := db.Login{DeviceID: secrets.RandomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10)}
	if req.DeviceID != nil {
		l.DeviceID = *req.DeviceID
	}
	if req.DisplayName != nil {
		l.DeviceDisplayName = *req.DisplayName
	}
	out := LoginResult{AccessToken: secrets.NewAccessToken(), DeviceID: l.DeviceID}
	l.AccessTokenHash = secrets.HashToken(out.AccessToken)

	var sessionEnd *time.Time
	if d := s.cfg.SessionLifetime; d != nil {
		t := now.Add(d.Duration)
		sessionEnd = &t
		l.SessionExpiresAt = msPtr(t)
	}
	accessLifetime := s.cfg.NonrefreshableAccessTokenLifetime
	if req.OAuthAccessLifetime > 0 {
		accessLifetime = &config.Duration{Duration: req.OAuthAccessLifetime}
	} else if req.Refresh && s.cfg.RefreshableAccessTokenLifetime != nil {
		accessLifetime = s.cfg.RefreshableAccessTokenLifetime
	}
	if req.OAuthAccessLifetime > 0 || (req.Refresh && s.cfg.RefreshableAccessTokenLifetime != nil) {
		out.RefreshToken = secrets.NewRefreshToken()
		l.RefreshTokenHash = secrets.HashToken(out.RefreshToken)
		l.RefreshExpiresAt = expiry(now, s.cfg.RefreshTokenLifetime, sessionEnd)
	}
	if exp := expiry(now, accessLifetime, sessionEnd); exp != nil {
		l.AccessExpiresAt = exp
		ms := *exp - now.UnixMilli()
		out.ExpiresInMS = &ms
	}
	return l, out, nil
}

// PrepareLogin makes the device and tokens of a login issued elsewhere
// (an OAuth 2.0 grant, spent in the same transaction as the login).
func (s *Service) PrepareLogin(req LoginRequest) (db.Login, LoginResult, error) {
	return s.prepareLogin(req)
}

// expiry is now+lifetime capped by the session's end, the session's end
// without a lifetime, or nil for neither.
func expiry(now time.Time, lifetime *config.Duration, sessionEnd *time.Time) *int64 {
	switch {
	case lifetime != nil:
		t := now.Add(lifetime.Duration)
		if sessionEnd != nil && sessionEnd.Before(t) {
			t = *sessionEnd
		}
		return msPtr(t)
	case sessionEnd != nil:
		return msPtr(*sessionEnd)
	}
	return nil
}

func msPtr(t time.Time) *int64 {
	ms := t.UnixMilli()
	return &ms
}

// Login issues a login to an existing account; verifiedHash is the
// password hash the login verified, if any. An account deactivated, or
// whose password changed, since the login was checked gets no tokens.
func (s *Service) Login(ctx context.Context, userID, verifiedHash string, req LoginRequest) (LoginResult, error) {
	login, out, err := s.prepareLogin(req)
	if err != nil {
		return LoginResult{}, err
	}
	login.VerifiedPasswordHash = verifiedHash
	replaced, err := s.store.IssueLogin(ctx, userID, login)
	switch {
	case errors.Is(err, db.ErrDeactivated):
		return LoginResult{}, matrix.ErrUserDeactivated
	case errors.Is(err, db.ErrCredentialsChanged):
		return LoginResult{}, matrix.Forbidden(ErrInvalidLogin.Message)
	case errors.Is(err, db.ErrAccountLocked):
		return LoginResult{}, matrix.ErrUserLocked
	case err != nil:
		return LoginResult{}, matrix.Internal(err)
	}
	if err := s.EnsureSession(ctx, userID, login.DeviceID, !replaced); err != nil {
		return LoginResult{}, err
	}
	return out, nil
}

// PuppetLogin makes an access token for userID on behalf of the admin
// (Synapse's POST /_synapse/admin/v1/users/{userId}/login): on a hidden
// device, so it is in none of the user's device lists, expiring at
// validUntilMS when set.
func (s *Service) PuppetLogin(ctx context.Context, userID, admin string, validUntilMS *int64) (string, error) {
	token := secrets.NewAccessToken()
	l := db.Login{DeviceID: secrets.RandomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10), AccessTokenHash: secrets.HashToken(token),
		AccessExpiresAt: validUntilMS, PuppetedBy: admin}
	replaced, err := s.store.IssueLogin(ctx, userID, l)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return "", ErrNoSuchUser
	case errors.Is(err, db.ErrDeactivated):
		return "", matrix.ErrUserDeactivated
	case err != nil:
		return "", matrix.Internal(err)
	}
	if err := s.EnsureSession(ctx, userID, l.DeviceID, !replaced); err != nil {
		return "", err
	}
	s.log.InfoContext(ctx, "admin logged in as user", "user_id", userID, "admin", admin)
	return token, nil
}

var (
	errUnknownRefreshToken = &matrix.Error{Status: http.StatusUnauthorized, Code: matrix.CodeUnknownToken, Message: "Unknown refresh token"}
	errRefreshDisabled     = &matrix.Error{Status: http.StatusNotFound, Code: matrix.CodeUnrecognized, Message: "Refresh tokens are not enabled on this server"}
)

// Refresh rotates the token pair of refreshToken (client-server API v1.3):
// the old refresh token stays usable until the new pair is first used, and
// reusing it after that revokes the device.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (LoginResult, error) {
	if s.cfg.RefreshableAccessTokenLifetime == nil {
		return LoginResult{}, errRefreshDisabled
	}
	out, _, err := s.rotate(ctx, refreshToken, LoginRequest{Refresh: true}, "")
	return out, err
}

// RefreshOAuth rotates the token pair of an OAuth 2.0 grant of clientID,
// as Refresh does, and returns the grant's scope.
func (s *Service) RefreshOAuth(ctx context.Context, refreshToken, clientID string, accessLifetime time.Duration) (LoginResult, string, error) {
	return s.rotate(ctx, refreshToken, LoginRequest{OAuthAccessLifetime: accessLifetime}, clientID)
}

func (s *Service) rotate(ctx context.Context, refreshToken string, req LoginRequest, clientID string) (_ LoginResult, _ string, err error) {
	defer func() { s.metrics.Refresh(err) }()
	login, out, err := s.prepareLogin(req)
	if err != nil {
		return LoginResult{}, "", err
	}
	login.OAuthClientID = clientID
	res, err := s.store.RotateRefreshToken(ctx, secrets.HashToken(refreshToken), login)
	switch {
	case errors.Is(err, db.ErrRefreshTokenReused):
		s.metrics.RefreshReuse()
		s.log.WarnContext(ctx, "refresh token reused; device revoked", "user_id", res.UserID, "device_id", res.DeviceID)
		return LoginResult{}, "", errUnknownRefreshToken
	case errors.Is(err, db.ErrNotFound):
		return LoginResult{}, "", errUnknownRefreshToken
	case errors.Is(err, db.ErrTokenExpired):
		return LoginResult{}, "", &matrix.Error{Status: http.StatusUnauthorized, Code: matrix.CodeUnknownToken, Message: "Refresh token has expired", SoftLogout: true}
	case errors.Is(err, db.ErrSessionExpired):
		return LoginResult{}, "", &matrix.Error{Status: http.StatusUnauthorized, Code: matrix.CodeUnknownToken, Message: "The session has expired; log in again"}
	case errors.Is(err, db.ErrAccountLocked):
		return LoginResult{}, "", matrix.ErrUserLocked
	case err != nil:
		return LoginResult{}, "", matrix.Internal(err)
	}
	out.DeviceID, out.ExpiresInMS = res.DeviceID, nil
	if res.AccessExpiresAt != nil {
		ms := *res.AccessExpiresAt - s.now().UnixMilli()
		out.ExpiresInMS = &ms
	}
	return out, res.Scope, nil
}

// errInvalidLoginToken is an unknown, used or expired login token.
var errInvalidLoginToken = matrix.Forbidden("Invalid login token")

// NewLoginToken makes a single-use token, valid for lifetime, with which
// another client logs in as userID (m.login.token); it is stored hashed.
func (s *Service) NewLoginToken(ctx context.Context, userID string, lifetime time.Duration) (string, int64, error) {
	token := "syl_" + secrets.RandomString(43)
	if err := s.store.CreateLoginToken(ctx, userID, secrets.HashToken(token), s.now().Add(lifetime).UnixMilli()); err != nil {
		return "", 0, matrix.Internal(err)
	}
	return token, lifetime.Milliseconds(), nil
}

// UseLoginToken spends a login token and returns the account it logs in:
// an unknown, used or expired token is 403, a deactivated account 403
// M_USER_DEACTIVATED.
func (s *Service) UseLoginToken(ctx context.Context, token string) (db.Account, error) {
	userID, err := s.store.UseLoginToken(ctx, secrets.HashToken(token))
	if errors.Is(err, db.ErrNotFound) {
		return db.Account{}, errInvalidLoginToken
	}
	if err != nil {
		return db.Account{}, matrix.Internal(err)
	}
	acct, err := s.store.AccountByUserID(ctx, userID)
	if err != nil {
		return db.Account{}, errInvalidLoginToken
	}
	if acct.Deactivated() {
		return db.Account{}, matrix.ErrUserDeactivated
	}
	return acct, nil
}
