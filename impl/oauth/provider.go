package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/matrix"
	"registrar/impl/secrets"
)

// provider is registrar's op.Server: zitadel/oidc parses and answers the
// protocol; these methods decide.
type provider struct {
	op.UnimplementedServer
	s *Service
}

// client is a registered client as zitadel/oidc sees it.
type client struct {
	id        string
	appType   string
	redirects []string
	grants    []oidc.GrantType
}

func (c *client) GetID() string                    { return c.id }
func (c *client) RedirectURIs() []string           { return c.redirects }
func (c *client) PostLogoutRedirectURIs() []string { return nil }
func (c *client) ApplicationType() op.ApplicationType {
	if c.appType == "native" {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}
func (c *client) AuthMethod() oidc.AuthMethod { return oidc.AuthMethodNone }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType         { return c.grants }
func (c *client) LoginURL(string) string               { return "" }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return idTokenLifetime }
func (c *client) DevMode() bool                        { return false }
func (c *client) IsScopeAllowed(scope string) bool     { return allowedScope(scope) }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) allows(g oidc.GrantType) bool {
	for _, have := range c.grants {
		if have == g {
			return true
		}
	}
	return false
}

// loadClient returns a registered client; refresh tokens come with every
// grant (the spec requires them).
func (s *Service) loadClient(ctx context.Context, clientID string) (*client, error) {
	row, err := s.store.OAuthClient(ctx, clientID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, op.NewStatusError(oidc.ErrInvalidClient().WithDescription("unknown client_id; register the client first"), http.StatusUnauthorized)
	}
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	c := &client{id: row.ClientID, appType: row.ApplicationType}
	var grants []string
	if err := json.Unmarshal([]byte(row.RedirectURIs), &c.redirects); err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	if err := json.Unmarshal([]byte(row.GrantTypes), &grants); err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	for _, g := range grants {
		c.grants = append(c.grants, oidc.GrantType(g))
	}
	if !c.allows(oidc.GrantTypeRefreshToken) {
		c.grants = append(c.grants, oidc.GrantTypeRefreshToken)
	}
	return c, nil
}

// Health implements op.Server.
func (p *provider) Health(context.Context, *op.Request[struct{}]) (*op.Response, error) {
	return op.NewResponse(op.Status{Status: "ok"}), nil
}

// Ready implements op.Server.
func (p *provider) Ready(context.Context, *op.Request[struct{}]) (*op.Response, error) {
	return op.NewResponse(op.Status{Status: "ok"}), nil
}

// Discovery implements op.Server (also served at the issuer's
// /.well-known/openid-configuration by registrar's own route).
func (p *provider) Discovery(context.Context, *op.Request[struct{}]) (*op.Response, error) {
	return op.NewResponse(p.s.Metadata()), nil
}

// VerifyClient implements op.Server: every client is public.
func (p *provider) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	if r.Data.ClientSecret != "" || r.Data.ClientAssertion != "" {
		return nil, op.NewStatusError(oidc.ErrInvalidClient().WithDescription("registrar's clients are public: send client_id only"), http.StatusUnauthorized)
	}
	return p.s.loadClient(ctx, r.Data.ClientID)
}

// VerifyAuthRequest implements op.Server: the request is rate limited
// and its stored parameters bounded, then the client is looked up and the
// redirect URI matched exactly (errors here are not redirected).
func (p *provider) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	s := p.s
	if err := s.limits.authorization.Take(s.clientKey(ctx), s.now()); err != nil {
		return nil, op.NewStatusError((&oidc.Error{ErrorType: "temporarily_unavailable", Description: err.Message}), http.StatusTooManyRequests)
	}
	if problem := oversized(r.Data); problem != "" {
		return nil, op.NewStatusError(oidc.ErrInvalidRequest().WithDescription("%s", problem), http.StatusBadRequest)
	}
	c, err := s.loadClient(ctx, r.Data.ClientID)
	if err != nil {
		return nil, err
	}
	if r.Data.RedirectURI != "" && !redirectMatches(c.redirects, r.Data.RedirectURI) {
		return nil, op.NewStatusError(oidc.ErrInvalidRequestRedirectURI().
			WithDescription("the redirect_uri is not one the client registered"), http.StatusBadRequest)
	}
	return &op.ClientRequest[oidc.AuthRequest]{Request: r, Client: c}, nil
}

// Bounds of the authorisation request parameters that are stored with
// the pending authorisation.
const (
	maxStateLength         = 512
	maxNonceLength         = 512
	maxCodeChallengeLength = 128 // RFC 7636 §4.1: a verifier has at most 128 characters
	maxScopeLength         = 2048
	maxPromptLength        = 64
)

// oversized names the first stored parameter past its bound, or "".
func oversized(r *oidc.AuthRequest) string {
	for _, p := range []struct {
		name   string
		length int
		max    int
	}{
		{"state", len(r.State), maxStateLength},
		{"nonce", len(r.Nonce), maxNonceLength},
		{"code_challenge", len(r.CodeChallenge), maxCodeChallengeLength},
		{"scope", len(strings.Join(r.Scopes, " ")), maxScopeLength},
		{"prompt", len(strings.Join(r.Prompt, " ")), maxPromptLength},
	} {
		if p.length > p.max {
			return fmt.Sprintf("%s is longer than %d bytes", p.name, p.max)
		}
	}
	return ""
}

// grantLifetime is how long a user has to sign in and consent.
const grantLifetime = 30 * time.Minute

// Authorize implements op.Server: with the redirect URI checked, the
// request is recorded and the browser sent to the consent page (which
// asks to sign in first). Errors go back to the client's redirect URI.
func (p *provider) Authorize(ctx context.Context, cr *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	r := cr.Data
	switch {
	case r.RequestParam != "":
		return nil, oidc.ErrRequestNotSupported()
	case r.ResponseType != oidc.ResponseTypeCode:
		return nil, &oidc.Error{ErrorType: "unsupported_response_type", Description: "only response_type=code is supported"}
	case r.CodeChallenge == "" || r.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE is required, with code_challenge_method S256")
	case r.ResponseMode != "" && r.ResponseMode != oidc.ResponseModeQuery && r.ResponseMode != oidc.ResponseModeFragment:
		return nil, oidc.ErrInvalidRequest().WithDescription("response_mode must be query or fragment")
	case !cr.Client.(*client).allows(oidc.GrantTypeCode):
		return nil, oidc.ErrUnauthorizedClient().WithDescription("the client did not register the authorization_code grant")
	}
	for _, prompt := range r.Prompt {
		if prompt == oidc.PromptNone {
			return nil, oidc.ErrLoginRequired().WithDescription("registrar always asks the user (prompt=none is not supported)")
		}
	}
	scope, problem := ParseScope(r.Scopes)
	if problem != "" {
		return nil, oidc.ErrInvalidScope().WithDescription("%s", problem)
	}
	now := p.s.now()
	g := db.OAuthGrant{ID: secrets.RandomString(22), Kind: db.GrantCode, ClientID: cr.Client.GetID(), Scope: scope.String(),
		DeviceID: scope.DeviceID, RedirectURI: r.RedirectURI, ResponseMode: string(r.ResponseMode), State: r.State,
		Nonce: r.Nonce, CodeChallenge: r.CodeChallenge, Prompt: strings.Join(r.Prompt, " "), Status: db.GrantPending,
		PollInterval: 0, ExpiresAt: now.Add(grantLifetime).UnixMilli()}
	if err := p.s.store.CreateOAuthGrant(ctx, g); err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	if slices.Contains(r.Prompt, "create") && p.s.cfg.EnableRegistration {
		return op.NewRedirect(p.s.url(PathSignUp + "?grant=" + g.ID)), nil
	}
	return op.NewRedirect(p.s.url(PathConsent + g.ID)), nil
}

// CodeExchange implements op.Server: an approved code of this client and
// redirect URI, with the PKCE verifier, is spent once for a login.
func (p *provider) CodeExchange(ctx context.Context, cr *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	s := p.s
	codeHash := secrets.HashToken(cr.Data.Code)
	g, err := s.store.OAuthGrantByCode(ctx, codeHash)
	if errors.Is(err, db.ErrNotFound) {
		return nil, oidc.ErrInvalidGrant().WithDescription("unknown authorisation code")
	}
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	if g.ClientID != cr.Client.GetID() || g.RedirectURI != cr.Data.RedirectURI {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code was issued to another client or redirect_uri")
	}
	if g.Status != db.GrantExchanged {
		if err := op.AuthorizeCodeChallenge(cr.Data.CodeVerifier, &oidc.CodeChallenge{Challenge: g.CodeChallenge,
			Method: oidc.CodeChallengeMethodS256}); err != nil {
			return nil, err
		}
	}
	login, out, err := s.accounts.PrepareLogin(accounts.LoginRequest{OAuthAccessLifetime: s.cfg.OAuth.AccessTokenLifetime.Duration})
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	g, replaced, err := s.store.ExchangeOAuthCode(ctx, codeHash, login)
	if err != nil {
		return nil, s.grantError(err, g)
	}
	if err := s.accounts.EnsureSession(ctx, *g.UserID, g.DeviceID, !replaced); err != nil {
		return nil, homeserverDown(err)
	}
	return s.tokenResponse(ctx, g, out)
}

// grantError maps a failed exchange or poll onto RFC 6749's errors.
func (s *Service) grantError(err error, g db.OAuthGrant) error {
	switch {
	case errors.Is(err, db.ErrCodeReplayed):
		s.log.Warn("authorisation code replayed; its device is logged out", "client_id", g.ClientID, "device_id", g.DeviceID)
		return oidc.ErrInvalidGrant().WithDescription("the code was used before; the tokens it gave are revoked")
	case errors.Is(err, db.ErrGrantExpired):
		return oidc.ErrInvalidGrant().WithDescription("the code has expired")
	case errors.Is(err, db.ErrDeactivated):
		return oidc.ErrInvalidGrant().WithDescription("the account is deactivated")
	case errors.Is(err, db.ErrAccountLocked):
		return oidc.ErrInvalidGrant().WithDescription("the account is locked")
	case errors.Is(err, db.ErrNotFound):
		return oidc.ErrInvalidGrant().WithDescription("unknown or spent grant")
	}
	return oidc.ErrServerError().WithParent(err)
}

// tokenResponse answers a grant's login, with an ID token when openid
// was granted.
func (s *Service) tokenResponse(ctx context.Context, g db.OAuthGrant, out accounts.LoginResult) (*op.Response, error) {
	resp := oidc.AccessTokenResponse{AccessToken: out.AccessToken, TokenType: oidc.BearerToken, RefreshToken: out.RefreshToken,
		Scope: strings.Fields(g.Scope)}
	if out.ExpiresInMS != nil {
		resp.ExpiresIn = uint64(*out.ExpiresInMS / 1000)
	}
	if scope, _ := ParseScope(resp.Scope); scope.OpenID && g.UserID != nil {
		var authTime int64
		if g.AuthTime != nil {
			authTime = *g.AuthTime
		}
		idToken, err := s.idToken(ctx, *g.UserID, g.ClientID, g.Nonce, authTime)
		if err != nil {
			return nil, oidc.ErrServerError().WithParent(err)
		}
		resp.IDToken = idToken
	}
	return op.NewResponse(resp), nil
}

// RefreshToken implements op.Server: the refresh token grant, with the
// rotation and reuse detection of the legacy /refresh.
func (p *provider) RefreshToken(ctx context.Context, cr *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	s := p.s
	out, scope, err := s.accounts.RefreshOAuth(ctx, cr.Data.RefreshToken, cr.Client.GetID(), s.cfg.OAuth.AccessTokenLifetime.Duration)
	if err != nil {
		if merr, ok := matrix.As(err); ok && merr.Status < 500 {
			return nil, oidc.ErrInvalidGrant().WithDescription("%s", merr.Message)
		}
		return nil, oidc.ErrServerError().WithParent(err)
	}
	resp := oidc.AccessTokenResponse{AccessToken: out.AccessToken, TokenType: oidc.BearerToken, RefreshToken: out.RefreshToken,
		Scope: strings.Fields(scope)}
	if out.ExpiresInMS != nil {
		resp.ExpiresIn = uint64(*out.ExpiresInMS / 1000)
	}
	return op.NewResponse(resp), nil
}

// DeviceAuthorization implements op.Server (RFC 8628 §3.1-3.2).
func (p *provider) DeviceAuthorization(ctx context.Context, cr *op.ClientRequest[oidc.DeviceAuthorizationRequest]) (*op.Response, error) {
	s := p.s
	if err := s.limits.deviceAuthorization.Take(s.clientKey(ctx), s.now()); err != nil {
		return nil, op.NewStatusError(oidc.ErrSlowDown().WithDescription("%s", err.Message), http.StatusTooManyRequests)
	}
	if !cr.Client.(*client).allows(oidc.GrantTypeDeviceCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("the client did not register the device_code grant")
	}
	scope, problem := ParseScope(cr.Data.Scopes)
	if problem != "" {
		return nil, oidc.ErrInvalidScope().WithDescription("%s", problem)
	}
	deviceCode := secrets.RandomString(32)
	lifetime := s.cfg.OAuth.DeviceCodeLifetime.Duration
	interval := int(s.cfg.OAuth.DevicePollInterval.Seconds())
	hash := secrets.HashToken(deviceCode)
	for attempt := 0; ; attempt++ {
		userCode := secrets.RandomFrom(userCodeAlphabet, 8)
		g := db.OAuthGrant{ID: secrets.RandomString(22), Kind: db.GrantDevice, ClientID: cr.Client.GetID(), Scope: scope.String(),
			DeviceID: scope.DeviceID, Status: db.GrantPending, DeviceCodeHash: &hash, UserCode: &userCode,
			PollInterval: interval, ExpiresAt: s.now().Add(lifetime).UnixMilli()}
		err := s.store.CreateOAuthGrant(ctx, g)
		if errors.Is(err, db.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, oidc.ErrServerError().WithParent(err)
		}
		shown := FormatUserCode(userCode)
		return op.NewResponse(oidc.DeviceAuthorizationResponse{DeviceCode: deviceCode, UserCode: shown,
			VerificationURI: s.url(PathDevice), VerificationURIComplete: s.url(PathDevice) + "?user_code=" + shown,
			ExpiresIn: int(lifetime.Seconds()), Interval: interval}), nil
	}
}

// userCodeAlphabet: consonants only (no words, no 0/O or 1/I confusion),
// 20^8 codes.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// FormatUserCode shows a user code as XXXX-XXXX.
func FormatUserCode(code string) string {
	if len(code) != 8 {
		return code
	}
	return code[:4] + "-" + code[4:]
}

// normalizeUserCode reads a typed user code: case, spaces and dashes do
// not matter.
func normalizeUserCode(typed string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		if r != '-' && r != ' ' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// DeviceToken implements op.Server (RFC 8628 §3.4-3.5).
func (p *provider) DeviceToken(ctx context.Context, cr *op.ClientRequest[oidc.DeviceAccessTokenRequest]) (*op.Response, error) {
	s := p.s
	login, out, err := s.accounts.PrepareLogin(accounts.LoginRequest{OAuthAccessLifetime: s.cfg.OAuth.AccessTokenLifetime.Duration})
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	g, replaced, err := s.store.PollDeviceGrant(ctx, secrets.HashToken(cr.Data.DeviceCode), cr.Client.GetID(), login)
	switch {
	case errors.Is(err, db.ErrGrantPending):
		return nil, oidc.ErrAuthorizationPending()
	case errors.Is(err, db.ErrSlowDown):
		return nil, oidc.ErrSlowDown()
	case errors.Is(err, db.ErrGrantDenied):
		return nil, oidc.ErrAccessDenied().WithDescription("the user denied the authorisation")
	case errors.Is(err, db.ErrGrantExpired):
		return nil, oidc.ErrExpiredDeviceCode()
	case err != nil:
		return nil, s.grantError(err, g)
	}
	if err := s.accounts.EnsureSession(ctx, *g.UserID, g.DeviceID, !replaced); err != nil {
		return nil, homeserverDown(err)
	}
	return s.tokenResponse(ctx, g, out)
}

// homeserverDown answers a grant whose session the homeserver could not
// be told of: 503 temporarily_unavailable (the grant is spent; the client
// starts again).
func homeserverDown(err error) error {
	msg := "the homeserver could not be reached; try again shortly"
	if merr, ok := matrix.As(err); ok && merr.Status != http.StatusServiceUnavailable {
		return oidc.ErrServerError().WithParent(err)
	}
	return op.NewStatusError(&oidc.Error{ErrorType: "temporarily_unavailable", Description: msg}, http.StatusServiceUnavailable)
}
