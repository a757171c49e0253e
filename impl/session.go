package impl

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"registrar/api"
	"registrar/db"
	"registrar/impl/config"
	"registrar/impl/matrix"
	"registrar/impl/passwords"
	"registrar/impl/secrets"
	"registrar/impl/uia"
)

// loginResult is what a new login hands the client.
type loginResult struct {
	AccessToken  string
	RefreshToken string
	DeviceID     string
	ExpiresInMS  *int64
}

// newLogin prepares a device and tokens with the configured lifetimes:
// refreshable_access_token_lifetime when the client asked for a refresh
// token and refresh is enabled, else nonrefreshable_access_token_lifetime;
// session_lifetime caps both.
func (s *Server) newLogin(deviceID, displayName *string, wantRefresh bool) (db.Login, loginResult, error) {
	if err := checkDeviceParams(deviceID, displayName); err != nil {
		return db.Login{}, loginResult{}, err
	}
	now := s.now()
	l := db.Login{DeviceID: secrets.RandomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10)}
	if deviceID != nil {
		l.DeviceID = *deviceID
	}
	if displayName != nil {
		l.DeviceDisplayName = *displayName
	}
	out := loginResult{AccessToken: secrets.NewAccessToken(), DeviceID: l.DeviceID}
	l.AccessTokenHash = secrets.HashToken(out.AccessToken)

	var sessionEnd *time.Time
	if d := s.cfg.SessionLifetime; d != nil {
		t := now.Add(d.Duration)
		sessionEnd = &t
		l.SessionExpiresAt = msPtr(t)
	}
	var accessLifetime *config.Duration
	if wantRefresh && s.cfg.RefreshableAccessTokenLifetime != nil {
		accessLifetime = s.cfg.RefreshableAccessTokenLifetime
		out.RefreshToken = secrets.NewRefreshToken()
		l.RefreshTokenHash = secrets.HashToken(out.RefreshToken)
		if d := s.cfg.RefreshTokenLifetime; d != nil {
			l.RefreshExpiresAt = msPtr(capTime(now.Add(d.Duration), sessionEnd))
		} else if sessionEnd != nil {
			l.RefreshExpiresAt = msPtr(*sessionEnd)
		}
	} else {
		accessLifetime = s.cfg.NonrefreshableAccessTokenLifetime
	}
	var expires *time.Time
	if accessLifetime != nil {
		t := capTime(now.Add(accessLifetime.Duration), sessionEnd)
		expires = &t
	} else if sessionEnd != nil {
		expires = sessionEnd
	}
	if expires != nil {
		l.AccessExpiresAt = msPtr(*expires)
		ms := expires.Sub(now).Milliseconds()
		out.ExpiresInMS = &ms
	}
	return l, out, nil
}

func capTime(t time.Time, limit *time.Time) time.Time {
	if limit != nil && limit.Before(t) {
		return *limit
	}
	return t
}

func msPtr(t time.Time) *int64 {
	ms := t.UnixMilli()
	return &ms
}

var errInvalidLogin = &uia.Failure{Code: matrix.CodeForbidden, Message: "Invalid username or password"}

// VerifyPassword implements uia.PasswordVerifier for the m.login.password
// stage: the identifier's account and its password, which must be the
// requester's when there is one.
func (s *Server) VerifyPassword(ctx context.Context, creds *uia.AuthCredentials, requester string) (string, error) {
	user, err := loginUser(creds)
	if err != nil {
		return "", err
	}
	acct, err := s.checkPassword(ctx, user, *creds.Password, requester)
	if err != nil {
		return "", err
	}
	return acct.UserID, nil
}

// loginUser is the user named by the identifier of a password login or
// stage: m.id.user, or the deprecated top-level user.
func loginUser(creds *uia.AuthCredentials) (string, error) {
	user := ""
	switch {
	case creds.Identifier != nil:
		if creds.Identifier.Type != "m.id.user" {
			return "", uia.Fail(matrix.CodeUnrecognized, "Unknown login identifier type")
		}
		if creds.Identifier.User != nil {
			user = *creds.Identifier.User
		}
	case creds.User != nil:
		user = *creds.User
	}
	if user == "" || creds.Password == nil {
		return "", uia.Fail(matrix.CodeMissingParam, "Missing parameters: identifier and password are required")
	}
	return user, nil
}

// checkPassword resolves user (a user ID or localpart, matched
// case-insensitively) and verifies its password. A wrong user or password
// is errInvalidLogin; a deactivated account is 403 M_USER_DEACTIVATED.
// With expectedUser set, any other account is refused before its password
// is looked at.
func (s *Server) checkPassword(ctx context.Context, user, password, expectedUser string) (db.Account, error) {
	localpart, ok := s.localpartOf(user)
	if !ok || len(password) > 4*passwords.MaxLength {
		return db.Account{}, errInvalidLogin
	}
	// Failed attempts are counted per account (rc_login.failed_attempts),
	// for logins and UIA password stages alike.
	failureKey := s.userID(strings.ToLower(localpart))
	now := s.now()
	if err := s.limits.loginFailures.Check(failureKey, now); err != nil {
		return db.Account{}, err
	}
	acct, err := s.verifyPassword(ctx, localpart, password, expectedUser)
	if err == errInvalidLogin {
		_ = s.limits.loginFailures.Take(failureKey, now)
	}
	return acct, err
}

func (s *Server) verifyPassword(ctx context.Context, localpart, password, expectedUser string) (db.Account, error) {
	acct, err := s.store.Account(ctx, strings.ToLower(localpart))
	if errors.Is(err, db.ErrNotFound) {
		// Spend the time of a hash anyway, so timing does not reveal which
		// user IDs exist.
		_ = s.hasher.VerifyDummy(ctx, password)
		return db.Account{}, errInvalidLogin
	}
	if err != nil {
		return db.Account{}, matrix.Internal(err)
	}
	if expectedUser != "" && acct.UserID != expectedUser {
		return db.Account{}, matrix.Forbidden("Invalid auth: the credentials are not those of the logged-in user")
	}
	if acct.Deactivated() {
		return db.Account{}, matrix.ErrUserDeactivated
	}
	ok, err := s.hasher.Verify(ctx, password, acct.PasswordHash)
	if err != nil {
		return db.Account{}, matrix.Internal(err)
	}
	if !ok {
		return db.Account{}, errInvalidLogin
	}
	return acct, nil
}

// GetLoginFlows is GET /_matrix/client/v3/login (client-server API v1.7).
func (s *Server) GetLoginFlows(ctx context.Context, _ api.GetLoginFlowsRequestObject) (api.GetLoginFlowsResponseObject, error) {
	flows := []api.LoginFlow{{Type: uia.TypePassword}}
	if s.appServices.Any() {
		flows = append(flows, api.LoginFlow{Type: loginTypeAppService})
	}
	return api.GetLoginFlows200JSONResponse{Flows: flows}, nil
}

// Login is POST /_matrix/client/v3/login (client-server API v1.7) with
// m.login.password.
func (s *Server) Login(ctx context.Context, req api.LoginRequestObject) (api.LoginResponseObject, error) {
	body := req.Body
	if err := s.limits.loginAddress.Take(addressKey(ctx), s.now()); err != nil {
		return nil, err
	}
	if body.Type == loginTypeAppService && s.appServices.Any() {
		return s.loginAppService(ctx, body)
	}
	if body.Type != uia.TypePassword {
		return nil, matrix.BadRequest(matrix.CodeUnknown, "Unknown login type")
	}
	creds := &uia.AuthCredentials{Identifier: body.Identifier, User: body.User, Medium: body.Medium, Address: body.Address,
		Password: body.Password}
	user, err := loginUser(creds)
	if err != nil {
		return nil, asLoginError(err)
	}
	acct, err := s.checkPassword(ctx, user, *body.Password, "")
	if err != nil {
		return nil, asLoginError(err)
	}
	if err := s.limits.loginAccount.Take(acct.UserID, s.now()); err != nil {
		return nil, err
	}
	if acct.ApprovalPending {
		return nil, matrix.ErrAwaitingApproval
	}
	return s.issueLoginResponse(ctx, acct.UserID, acct.PasswordHash, body)
}

const loginTypeAppService = "m.login.application_service"

// asLoginError is a stage failure as /login answers it: 403 for wrong
// credentials, 400 for a malformed request.
func asLoginError(err error) error {
	var failure *uia.Failure
	if !errors.As(err, &failure) {
		return err
	}
	if failure.Code == matrix.CodeForbidden {
		return matrix.Forbidden(failure.Message)
	}
	if failure.Code == matrix.CodeUnrecognized {
		return matrix.BadRequest(matrix.CodeUnknown, failure.Message)
	}
	return matrix.BadRequest(failure.Code, failure.Message)
}

// issueLoginResponse creates the device and tokens of a successful login;
// verifiedHash is the password hash the login verified, if any.
func (s *Server) issueLoginResponse(ctx context.Context, userID, verifiedHash string, body *api.LoginJSONRequestBody) (api.LoginResponseObject, error) {
	login, out, err := s.newLogin(body.DeviceId, body.InitialDeviceDisplayName, boolValue(body.RefreshToken))
	if err != nil {
		return nil, err
	}
	login.VerifiedPasswordHash = verifiedHash
	if err := s.issueLogin(ctx, userID, login); err != nil {
		return nil, err
	}
	resp := api.Login200JSONResponse{UserId: userID, AccessToken: out.AccessToken, DeviceId: out.DeviceID,
		ExpiresInMs: out.ExpiresInMS, HomeServer: &s.cfg.ServerName, WellKnown: s.wellKnown()}
	if out.RefreshToken != "" {
		resp.RefreshToken = &out.RefreshToken
	}
	return resp, nil
}

// Logout is POST /_matrix/client/v3/logout: the caller's device and its
// tokens are deleted.
func (s *Server) Logout(ctx context.Context, _ api.LogoutRequestObject) (api.LogoutResponseObject, error) {
	who := requesterFrom(ctx)
	if err := s.store.DeleteDevice(ctx, who.UserID, who.DeviceID); err != nil {
		return nil, matrix.Internal(err)
	}
	return api.Logout200JSONResponse{}, nil
}

// LogoutAll is POST /_matrix/client/v3/logout/all: every device and token
// of the user is deleted, the caller's included.
func (s *Server) LogoutAll(ctx context.Context, _ api.LogoutAllRequestObject) (api.LogoutAllResponseObject, error) {
	who := requesterFrom(ctx)
	if err := s.store.DeleteAllDevices(ctx, who.UserID); err != nil {
		return nil, matrix.Internal(err)
	}
	return api.LogoutAll200JSONResponse{}, nil
}

// Refresh is POST /_matrix/client/v3/refresh (client-server API v1.3):
// rotates the token pair; the old refresh token stays usable until the new
// pair is first used, and reusing it after that revokes the device.
func (s *Server) Refresh(ctx context.Context, req api.RefreshRequestObject) (api.RefreshResponseObject, error) {
	if s.cfg.RefreshableAccessTokenLifetime == nil {
		return nil, &matrix.Error{Status: http.StatusNotFound, Code: matrix.CodeUnrecognized, Message: "Refresh tokens are not enabled on this server"}
	}
	login, out, err := s.newLogin(nil, nil, true)
	if err != nil {
		return nil, err
	}
	res, err := s.store.RotateRefreshToken(ctx, secrets.HashToken(req.Body.RefreshToken), login)
	switch {
	case errors.Is(err, db.ErrRefreshTokenReused):
		s.log.Warn("refresh token reused; device revoked", "user_id", res.UserID, "device_id", res.DeviceID)
		return nil, &matrix.Error{Status: http.StatusUnauthorized, Code: matrix.CodeUnknownToken, Message: "Unknown refresh token"}
	case errors.Is(err, db.ErrNotFound):
		return nil, &matrix.Error{Status: http.StatusUnauthorized, Code: matrix.CodeUnknownToken, Message: "Unknown refresh token"}
	case errors.Is(err, db.ErrTokenExpired):
		return nil, &matrix.Error{Status: http.StatusUnauthorized, Code: matrix.CodeUnknownToken, Message: "Refresh token has expired", SoftLogout: true}
	case errors.Is(err, db.ErrSessionExpired):
		return nil, &matrix.Error{Status: http.StatusUnauthorized, Code: matrix.CodeUnknownToken, Message: "The session has expired; log in again"}
	case err != nil:
		return nil, matrix.Internal(err)
	}
	resp := api.Refresh200JSONResponse{AccessToken: out.AccessToken, RefreshToken: &out.RefreshToken}
	if res.AccessExpiresAt != nil {
		ms := *res.AccessExpiresAt - s.now().UnixMilli()
		resp.ExpiresInMs = &ms
	}
	return resp, nil
}

// GetTokenOwner is GET /_matrix/client/v3/account/whoami.
func (s *Server) GetTokenOwner(ctx context.Context, _ api.GetTokenOwnerRequestObject) (api.GetTokenOwnerResponseObject, error) {
	who := requesterFrom(ctx)
	guest := who.IsGuest
	resp := api.GetTokenOwner200JSONResponse{UserId: who.UserID, IsGuest: &guest}
	if who.DeviceID != "" {
		resp.DeviceId = &who.DeviceID
	}
	return resp, nil
}

// GetCapabilities is GET /_matrix/client/v3/capabilities.
func (s *Server) GetCapabilities(ctx context.Context, _ api.GetCapabilitiesRequestObject) (api.GetCapabilitiesResponseObject, error) {
	return api.GetCapabilities200JSONResponse{Capabilities: api.Capabilities{
		MChangePassword: &api.BooleanCapability{Enabled: s.cfg.PasswordConfig.Enabled},
		M3pidChanges:    &api.BooleanCapability{Enabled: s.cfg.Enable3PIDChanges && (s.mailer != nil || s.cfg.MsisdnEnabled())},
	}}, nil
}

// issueLogin stores a login; an account deactivated, or whose password
// changed, since the login was checked gets no tokens.
func (s *Server) issueLogin(ctx context.Context, userID string, login db.Login) error {
	err := s.store.IssueLogin(ctx, userID, login)
	switch {
	case errors.Is(err, db.ErrDeactivated):
		return matrix.ErrUserDeactivated
	case errors.Is(err, db.ErrCredentialsChanged):
		return matrix.Forbidden(errInvalidLogin.Message)
	case err != nil:
		return matrix.Internal(err)
	}
	return nil
}
