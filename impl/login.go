package impl

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"registrar/api"
	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/matrix"
	"registrar/impl/secrets"
	"registrar/impl/uia"
)

// GetLoginFlows is GET /_matrix/client/v3/login (client-server API v1.7).
func (s *Server) GetLoginFlows(ctx context.Context, _ api.GetLoginFlowsRequestObject) (api.GetLoginFlowsResponseObject, error) {
	var flows []api.LoginFlow
	if s.passwordLogins() {
		flows = append(flows, api.LoginFlow{Type: uia.TypePassword})
	}
	if s.upstream.Any() || s.ownSSO() {
		oauthAware := s.cfg.OAuth.Enabled
		providers := []identityProvider{}
		sso := api.LoginFlow{Type: loginTypeSSO, OauthAwarePreferred: &oauthAware, IdentityProviders: &providers}
		for _, p := range s.upstream.Infos() {
			idp := identityProvider{Id: p.ID, Name: p.Name}
			if p.Brand != "" {
				idp.Brand = ptrTo(p.Brand)
			}
			if strings.HasPrefix(p.Icon, "mxc://") {
				idp.Icon = ptrTo(p.Icon)
			}
			providers = append(providers, idp)
		}
		sso.IdentityProviders = &providers
		flows = append(flows, sso)
	}
	if s.cfg.LoginViaExistingSession.Enabled {
		yes := true
		flows = append(flows, api.LoginFlow{Type: loginTypeToken, GetLoginToken: &yes})
	} else if s.upstream.Any() || s.ownSSO() {
		flows = append(flows, api.LoginFlow{Type: loginTypeToken})
	}
	if s.appServices.Any() {
		flows = append(flows, api.LoginFlow{Type: loginTypeAppService})
	}
	return api.GetLoginFlows200JSONResponse{Flows: flows}, nil
}

// Login is POST /_matrix/client/v3/login (client-server API v1.7) with
// m.login.password.
func (s *Server) Login(ctx context.Context, req api.LoginRequestObject) (resp api.LoginResponseObject, err error) {
	body := req.Body
	defer func() { s.metrics.Login(loginMetricType(body.Type), err) }()
	if err := s.accounts.LoginLimits(addressKey(ctx)); err != nil {
		return nil, err
	}
	if body.Type == loginTypeAppService && s.appServices.Any() {
		return s.loginAppService(ctx, body)
	}
	if body.Type == loginTypeToken && (s.cfg.LoginViaExistingSession.Enabled || s.upstream.Any() || s.ownSSO()) {
		return s.loginWithToken(ctx, body)
	}
	if body.Type != uia.TypePassword {
		return nil, matrix.BadRequest(matrix.CodeUnknown, "Unknown login type")
	}
	creds := &uia.AuthCredentials{Identifier: body.Identifier, User: body.User, Medium: body.Medium, Address: body.Address,
		Password: body.Password}
	acct, err := s.accounts.CheckPasswordLogin(ctx, creds, "")
	if err != nil {
		return nil, asLoginError(err)
	}
	if err := s.accounts.SuccessfulLoginLimit(acct.UserID); err != nil {
		return nil, err
	}
	if err := loginAllowed(acct); err != nil {
		return nil, err
	}
	if s.factors != nil {
		// A password alone does not log in an account with a second
		// factor: its clients sign in through the pages (m.login.sso).
		if sum, err := s.factors.Of(ctx, acct.UserID); err != nil {
			return nil, err
		} else if sum.Enrolled() {
			return nil, errSecondFactorRequired
		}
	}
	return s.loginResponse(ctx, acct.UserID, acct.PasswordHash, body)
}

// loginMetricType is the type label of a login: one of the types the
// server knows, "other" for anything a client made up.
func loginMetricType(t string) string {
	switch t {
	case uia.TypePassword, loginTypeAppService, loginTypeToken:
		return t
	}
	return "other"
}

// Login types besides m.login.password.
const (
	loginTypeAppService = "m.login.application_service"
	loginTypeToken      = "m.login.token"
	loginTypeSSO        = "m.login.sso"
)

// ownSSO reports whether legacy clients may sign in through registrar's
// own pages (m.login.sso without an identity provider, for accounts with
// a second factor).
func (s *Server) ownSSO() bool { return s.factors != nil && s.oauth != nil }

// identityProvider is an entry of m.login.sso's identity_providers.
type identityProvider = struct {
	Brand *string `json:"brand,omitempty"`
	Icon  *string `json:"icon,omitempty"`
	Id    string  `json:"id"`
	Name  string  `json:"name"`
}

// passwordLogins reports whether m.login.password is offered: passwords
// kept here, or an LDAP directory.
func (s *Server) passwordLogins() bool {
	return s.cfg.PasswordConfig.Enabled && (s.cfg.PasswordConfig.LocalDB() || s.cfg.LDAP() != nil)
}

// loginWithToken is POST /login with m.login.token: a token a logged-in
// client made with /login/get_token, spent once.
func (s *Server) loginWithToken(ctx context.Context, body *api.LoginJSONRequestBody) (api.LoginResponseObject, error) {
	if body.Token == nil || *body.Token == "" {
		return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing parameter: token")
	}
	acct, err := s.accounts.UseLoginToken(ctx, *body.Token)
	if err != nil {
		return nil, err
	}
	if err := loginAllowed(acct); err != nil {
		return nil, err
	}
	resp, err := s.loginResponse(ctx, acct.UserID, "", body)
	if ok, isOK := resp.(api.Login200JSONResponse); isOK && err == nil {
		// A token of a provider's session: its device ends with it.
		if err := s.store.AttachUpstreamDevice(ctx, secrets.HashToken(*body.Token), ok.DeviceId); err != nil {
			s.log.WarnContext(ctx, "recording an upstream login's device failed", "error", err)
		}
	}
	return resp, err
}

// loginAllowed refuses a login, once its credentials are proven, to an
// account awaiting approval or locked (Matrix v1.12); a suspended account
// logs in (v1.13).
func loginAllowed(acct db.Account) error {
	switch {
	case acct.ApprovalPending:
		return matrix.ErrAwaitingApproval
	case acct.Locked:
		return matrix.ErrUserLocked
	}
	return nil
}

const getTokenPath = "/_matrix/client/v1/login/get_token"

// GenerateLoginToken is POST /_matrix/client/v1/login/get_token (Matrix
// v1.7): a single-use, short-lived m.login.token token for another
// client, after User-Interactive Authentication (every time) when
// login_via_existing_session.require_ui_auth is set.
func (s *Server) GenerateLoginToken(ctx context.Context, req api.GenerateLoginTokenRequestObject) (api.GenerateLoginTokenResponseObject, error) {
	opts := s.cfg.LoginViaExistingSession
	if !opts.Enabled {
		return nil, &matrix.Error{Status: http.StatusNotFound, Code: matrix.CodeUnrecognized, Message: "Login via an existing session is not enabled"}
	}
	who := requesterFrom(ctx)
	if who.IsGuest {
		return nil, matrix.ErrGuestForbidden
	}
	if err := s.limits.loginTokens.Check(who.UserID, s.now()); err != nil {
		return nil, err
	}
	var token string
	var expiresIn int64
	issue := func(*uia.Session) error {
		if err := s.limits.loginTokens.Take(who.UserID, s.now()); err != nil {
			return err
		}
		var err error
		token, expiresIn, err = s.accounts.NewLoginToken(ctx, who.UserID, opts.TokenTimeout.Duration)
		return err
	}
	var err error
	if opts.RequireUIAuth {
		err = s.protect(ctx, s.uiaRequest(ctx, http.MethodPost, getTokenPath, req.Body.Auth, s.reauthFlows(ctx)), issue)
	} else {
		err = issue(nil)
	}
	if err != nil {
		return nil, err
	}
	return api.GenerateLoginToken200JSONResponse{LoginToken: token, ExpiresInMs: expiresIn}, nil
}

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

// loginResponse issues the device and tokens of a successful login;
// verifiedHash is the password hash the login verified, if any.
func (s *Server) loginResponse(ctx context.Context, userID, verifiedHash string, body *api.LoginJSONRequestBody) (api.LoginResponseObject, error) {
	out, err := s.accounts.Login(ctx, userID, verifiedHash, accounts.LoginRequest{DeviceID: body.DeviceId,
		DisplayName: body.InitialDeviceDisplayName, Refresh: boolValue(body.RefreshToken)})
	if err != nil {
		return nil, err
	}
	s.noteLogin(ctx, userID, out.DeviceID)
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
	s.metrics.Logout("device")
	return api.Logout200JSONResponse{}, nil
}

// LogoutAll is POST /_matrix/client/v3/logout/all: every device and token
// of the user is deleted, the caller's included.
func (s *Server) LogoutAll(ctx context.Context, _ api.LogoutAllRequestObject) (api.LogoutAllResponseObject, error) {
	who := requesterFrom(ctx)
	if err := s.store.DeleteAllDevices(ctx, who.UserID); err != nil {
		return nil, matrix.Internal(err)
	}
	s.metrics.Logout("all")
	return api.LogoutAll200JSONResponse{}, nil
}

// Refresh is POST /_matrix/client/v3/refresh (client-server API v1.3).
func (s *Server) Refresh(ctx context.Context, req api.RefreshRequestObject) (api.RefreshResponseObject, error) {
	out, err := s.accounts.Refresh(ctx, req.Body.RefreshToken)
	if err != nil {
		return nil, err
	}
	return api.Refresh200JSONResponse{AccessToken: out.AccessToken, RefreshToken: &out.RefreshToken, ExpiresInMs: out.ExpiresInMS}, nil
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

// GetCapabilities is GET /_matrix/client/v3/capabilities; server admins
// see m.account_moderation (Matrix v1.18).
func (s *Server) GetCapabilities(ctx context.Context, _ api.GetCapabilitiesRequestObject) (api.GetCapabilitiesResponseObject, error) {
	legacy := s.cfg.OAuth.LegacyAPI
	caps := api.Capabilities{
		MChangePassword: &api.BooleanCapability{Enabled: legacy && s.cfg.PasswordConfig.Enabled},
		M3pidChanges:    &api.BooleanCapability{Enabled: legacy && s.cfg.Enable3PIDChanges && (s.threepids.EmailEnabled() || s.threepids.MsisdnEnabled())},
		MGetLoginToken:  &api.BooleanCapability{Enabled: legacy && s.cfg.LoginViaExistingSession.Enabled},
	}
	if requireAdmin(ctx) == nil {
		caps.MAccountModeration = &api.AccountModerationCapability{Lock: ptrTo(true), Suspend: ptrTo(true)}
	}
	return api.GetCapabilities200JSONResponse{Capabilities: caps}, nil
}

// noteLogin records a login as its device's first use: the address and
// user agent it came from (for the sessions page and the devices API).
func (s *Server) noteLogin(ctx context.Context, userID, deviceID string) {
	userAgent := ""
	if r := infoFrom(ctx).request; r != nil {
		userAgent = r.UserAgent()
	}
	s.seen.Record(userID, deviceID, clientIP(ctx), userAgent)
}
