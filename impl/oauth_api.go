package impl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/oauth"
	"registrar/impl/secrets"
	"registrar/impl/web"
)

// errOAuthOff answers the OAuth 2.0 API's operations when it is off.
var errOAuthOff = &matrix.Error{Status: http.StatusNotFound, Code: matrix.CodeUnrecognized,
	Message: "The OAuth 2.0 API is not enabled on this server; use the legacy API."}

// errLegacyAuthOff answers the legacy authentication API's operations
// when oauth.legacy_api is false.
var errLegacyAuthOff = &matrix.Error{Status: http.StatusNotFound, Code: matrix.CodeUnrecognized,
	Message: "The legacy authentication API is disabled on this server; use the OAuth 2.0 API (see /_matrix/client/v1/auth_metadata)."}

func (s *Server) oauthOn() error {
	if s.oauth == nil {
		return errOAuthOff
	}
	return nil
}

// GetAuthMetadata is GET /_matrix/client/v1/auth_metadata (Matrix v1.15).
func (s *Server) GetAuthMetadata(ctx context.Context, _ api.GetAuthMetadataRequestObject) (api.GetAuthMetadataResponseObject, error) {
	m, err := s.authMetadata()
	if err != nil {
		return nil, err
	}
	return api.GetAuthMetadata200JSONResponse(m), nil
}

// GetAuthMetadataUnstable is GET
// /_matrix/client/unstable/org.matrix.msc2965/auth_metadata (MSC2965).
func (s *Server) GetAuthMetadataUnstable(ctx context.Context, _ api.GetAuthMetadataUnstableRequestObject) (api.GetAuthMetadataUnstableResponseObject, error) {
	m, err := s.authMetadata()
	if err != nil {
		return nil, err
	}
	return api.GetAuthMetadataUnstable200JSONResponse(m), nil
}

// GetAuthIssuer is GET /_matrix/client/unstable/org.matrix.msc2965/auth_issuer.
func (s *Server) GetAuthIssuer(ctx context.Context, _ api.GetAuthIssuerRequestObject) (api.GetAuthIssuerResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	return api.GetAuthIssuer200JSONResponse{Issuer: s.cfg.OAuth.Issuer}, nil
}

// GetOpenIDConfiguration is GET /.well-known/openid-configuration, the
// same metadata where OpenID Connect clients look for it.
func (s *Server) GetOpenIDConfiguration(ctx context.Context, _ api.GetOpenIDConfigurationRequestObject) (api.GetOpenIDConfigurationResponseObject, error) {
	m, err := s.authMetadata()
	if err != nil {
		return nil, err
	}
	return api.GetOpenIDConfiguration200JSONResponse(m), nil
}

func (s *Server) authMetadata() (api.AuthMetadata, error) {
	var m api.AuthMetadata
	if err := s.oauthOn(); err != nil {
		return m, err
	}
	if err := json.Unmarshal(mustJSON(s.oauth.Metadata()), &m); err != nil {
		return m, matrix.Internal(err)
	}
	return m, nil
}

// GetOAuthKeys is GET /_registrar/oauth2/keys: the ID token signing key.
func (s *Server) GetOAuthKeys(ctx context.Context, _ api.GetOAuthKeysRequestObject) (api.GetOAuthKeysResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	set, err := s.oauth.KeySet(ctx)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	var out api.GetOAuthKeys200JSONResponse
	if err := json.Unmarshal(mustJSON(set), &out); err != nil {
		return nil, matrix.Internal(err)
	}
	return out, nil
}

// RegisterOAuthClient is POST /_registrar/oauth2/register (RFC 7591).
func (s *Server) RegisterOAuthClient(ctx context.Context, req api.RegisterOAuthClientRequestObject) (api.RegisterOAuthClientResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	m := oauth.ClientMetadata{ClientURI: deref(b.ClientUri), ClientName: deref(b.ClientName), LogoURI: deref(b.LogoUri),
		TOSURI: deref(b.TosUri), PolicyURI: deref(b.PolicyUri), ApplicationType: deref(b.ApplicationType),
		TokenEndpointAuthMethod: deref(b.TokenEndpointAuthMethod), RedirectURIs: derefSlice(b.RedirectUris),
		GrantTypes: derefSlice(b.GrantTypes), ResponseTypes: derefSlice(b.ResponseTypes), Contacts: derefSlice(b.Contacts),
		Localized: map[string]string{}}
	for k, v := range b.AdditionalProperties {
		if str, ok := v.(string); ok && strings.Contains(k, "#") {
			m.Localized[k] = str
		}
	}
	registered, err := s.oauth.RegisterClient(ctx, m, addressKey(ctx))
	if err != nil {
		return nil, err
	}
	return registeredClient{registered}, nil
}

// registeredClient answers a registration with the metadata registered,
// localized variants included (the generated 201 type would drop them).
type registeredClient struct{ oauth.ClientMetadata }

// VisitRegisterOAuthClientResponse implements api.RegisterOAuthClientResponseObject.
func (r registeredClient) VisitRegisterOAuthClientResponse(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	return json.NewEncoder(w).Encode(r.ClientMetadata)
}

func isNotFound(err error) bool { return errors.Is(err, db.ErrNotFound) }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefSlice(s *[]string) []string {
	if s == nil {
		return nil
	}
	return *s
}

// OauthRevoke is POST /_registrar/oauth2/revoke (RFC 7009): the client
// is identified, then the token's device is logged out, access and
// refresh tokens both, if the token was issued to that client (§2.1); an
// unknown or revoked token is not an error.
func (s *Server) OauthRevoke(ctx context.Context, req api.OauthRevokeRequestObject) (api.OauthRevokeResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	clientID := deref(req.Body.ClientId)
	known, err := s.oauth.ClientExists(ctx, clientID)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	if !known {
		return nil, &oauth.Error{Status: http.StatusUnauthorized, Code: oauth.CodeInvalidClient, Description: "client_id is missing or unknown"}
	}
	token := deref(req.Body.Token)
	if token == "" {
		return nil, &oauth.Error{Status: http.StatusBadRequest, Code: oauth.CodeInvalidRequest, Description: "token is required"}
	}
	switch _, err := s.revoking.RevokeOAuthToken(ctx, secrets.HashToken(token), clientID); {
	case err == nil:
		s.metrics.Logout("oauth_revocation")
	case errors.Is(err, db.ErrOtherClient):
		return nil, &oauth.Error{Status: http.StatusUnauthorized, Code: oauth.CodeUnauthorizedClient,
			Description: "the token was not issued to this client"}
	case !isNotFound(err):
		return nil, matrix.Internal(err)
	}
	return api.OauthRevoke200Response{}, nil
}

// protocolResponse hands a request to zitadel/oidc's handler, which
// parses, validates and answers it (RFC 6749 errors and redirects).
type protocolResponse struct {
	handler http.Handler
	request *http.Request
	// errorPage renders an error that cannot go back to the client (the
	// authorisation endpoint's) as a page for the person.
	errorPage func(status int, code, description string) []byte
}

func (p protocolResponse) serve(w http.ResponseWriter) error {
	p.handler.ServeHTTP(w, p.request)
	return nil
}

// VisitOauthAuthorizeResponse implements api.OauthAuthorizeResponseObject:
// a redirect passes; an error the handler could not send back to the
// client (an unknown client, a redirect URI it did not register) becomes
// a page (RFC 6749 §4.1.2.1), never JSON shown to a person.
func (p protocolResponse) VisitOauthAuthorizeResponse(w http.ResponseWriter) error {
	buf := &bufferedResponse{header: http.Header{}}
	p.handler.ServeHTTP(buf, p.request)
	if buf.status < http.StatusBadRequest || p.errorPage == nil {
		for k, v := range buf.header {
			w.Header()[k] = v
		}
		if buf.status == 0 {
			buf.status = http.StatusOK
		}
		w.WriteHeader(buf.status)
		_, err := buf.body.WriteTo(w)
		return err
	}
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(buf.body.Bytes(), &e)
	page := p.errorPage(buf.status, e.Error, e.Description)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(buf.status)
	_, err := w.Write(page)
	return err
}

// bufferedResponse keeps a handler's answer to look at before sending.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// VisitOauthTokenResponse implements api.OauthTokenResponseObject.
func (p protocolResponse) VisitOauthTokenResponse(w http.ResponseWriter) error { return p.serve(w) }

// VisitOauthDeviceAuthorizationResponse implements api.OauthDeviceAuthorizationResponseObject.
func (p protocolResponse) VisitOauthDeviceAuthorizationResponse(w http.ResponseWriter) error {
	return p.serve(w)
}

func (s *Server) protocol(ctx context.Context) (protocolResponse, error) {
	if err := s.oauthOn(); err != nil {
		return protocolResponse{}, err
	}
	return protocolResponse{handler: s.oauth.Protocol(), request: infoFrom(ctx).request}, nil
}

// OauthAuthorize is GET /_registrar/oauth2/authorize (RFC 6749 §4.1).
func (s *Server) OauthAuthorize(ctx context.Context, _ api.OauthAuthorizeRequestObject) (api.OauthAuthorizeResponseObject, error) {
	p, err := s.protocol(ctx)
	p.errorPage = func(status int, code, description string) []byte {
		return s.authorizeErrorPage(ctx, status, code, description)
	}
	return p, err
}

// authorizeErrorPage is an authorisation request the client cannot be told
// about, as a page: what went wrong in words, the protocol's error code
// and description for the app's developer.
func (s *Server) authorizeErrorPage(ctx context.Context, status int, code, description string) []byte {
	text := "authorize_error_request"
	switch {
	case code == oauth.CodeInvalidClient || code == oauth.CodeUnauthorizedClient:
		text = "authorize_error_client"
	case strings.Contains(description, "redirect_uri"):
		text = "authorize_error_redirect"
	case status == http.StatusTooManyRequests:
		text = "error_too_many_attempts"
	case status >= 500:
		text = "error_internal"
	}
	s.log.InfoContext(ctx, "an authorisation request was refused", "status", status, "error", code, "description", description)
	lang := web.Lang(ctx)
	v := &authorizeErrorView{Frame: web.Frame{Title: web.T(lang, "authorize_error_title"), Message: web.T(lang, text)},
		Code: code, Description: description}
	return s.renderPage(ctx, status, "authorize-error", v, nil).HTML
}

// authorizeErrorView is the page of a refused authorisation request.
type authorizeErrorView struct {
	web.Frame
	Code, Description string
}

var _ = web.Register(`
{{define "authorize-error"}}{{template "head" .}}<p id="message">{{.Message}}</p>
<p>{{t "authorize_error_back"}}</p>
{{if .Code}}<details><summary>{{t "authorize_error_details"}}</summary><p><code id="error-code">{{.Code}}</code>{{if .Description}}: <span id="error-description">{{.Description}}</span>{{end}}</p></details>{{end}}
{{template "foot" .}}{{end}}
`)

// OauthToken is POST /_registrar/oauth2/token.
func (s *Server) OauthToken(ctx context.Context, _ api.OauthTokenRequestObject) (api.OauthTokenResponseObject, error) {
	return s.protocol(ctx)
}

// OauthDeviceAuthorization is POST /_registrar/oauth2/device_authorization (RFC 8628).
func (s *Server) OauthDeviceAuthorization(ctx context.Context, _ api.OauthDeviceAuthorizationRequestObject) (api.OauthDeviceAuthorizationResponseObject, error) {
	return s.protocol(ctx)
}

// pageResponse writes an oauth.Page: HTML or a redirect, its cookies and
// its Content-Security-Policy.
type pageResponse struct{ oauth.Page }

func (p pageResponse) write(w http.ResponseWriter) error {
	h := w.Header()
	for _, c := range p.Cookies {
		h.Add("Set-Cookie", c.String())
	}
	web.SetHeaders(h, p.Policy)
	if p.Location != "" {
		h.Set("Location", p.Location)
		w.WriteHeader(p.Status)
		return nil
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(p.Status)
	_, err := bytes.NewReader(p.HTML).WriteTo(w)
	return err
}

// VisitSignInPageResponse implements api.SignInPageResponseObject.
func (p pageResponse) VisitSignInPageResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitSignInSubmitResponse implements api.SignInSubmitResponseObject.
func (p pageResponse) VisitSignInSubmitResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitSignOutSubmitResponse implements api.SignOutSubmitResponseObject.
func (p pageResponse) VisitSignOutSubmitResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitConsentPageResponse implements api.ConsentPageResponseObject.
func (p pageResponse) VisitConsentPageResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitConsentSubmitResponse implements api.ConsentSubmitResponseObject.
func (p pageResponse) VisitConsentSubmitResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitDeviceVerificationPageResponse implements api.DeviceVerificationPageResponseObject.
func (p pageResponse) VisitDeviceVerificationPageResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitDeviceVerificationSubmitResponse implements api.DeviceVerificationSubmitResponseObject.
func (p pageResponse) VisitDeviceVerificationSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitSignUpPageResponse implements api.SignUpPageResponseObject.
func (p pageResponse) VisitSignUpPageResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitSignUpSubmitResponse implements api.SignUpSubmitResponseObject.
func (p pageResponse) VisitSignUpSubmitResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitAccountPageResponse implements api.AccountPageResponseObject.
func (p pageResponse) VisitAccountPageResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitAccountPasswordSubmitResponse implements api.AccountPasswordSubmitResponseObject.
func (p pageResponse) VisitAccountPasswordSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitAccountThreepidAddSubmitResponse implements api.AccountThreepidAddSubmitResponseObject.
func (p pageResponse) VisitAccountThreepidAddSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitAccountThreepidVerifySubmitResponse implements api.AccountThreepidVerifySubmitResponseObject.
func (p pageResponse) VisitAccountThreepidVerifySubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitAccountThreepidRemoveSubmitResponse implements api.AccountThreepidRemoveSubmitResponseObject.
func (p pageResponse) VisitAccountThreepidRemoveSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitAccountDeviceDeleteSubmitResponse implements api.AccountDeviceDeleteSubmitResponseObject.
func (p pageResponse) VisitAccountDeviceDeleteSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitAccountCrossSigningResetSubmitResponse implements api.AccountCrossSigningResetSubmitResponseObject.
func (p pageResponse) VisitAccountCrossSigningResetSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitUpstreamAuthorizeResponse implements api.UpstreamAuthorizeResponseObject.
func (p pageResponse) VisitUpstreamAuthorizeResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitUpstreamLinkResponse implements api.UpstreamLinkResponseObject.
func (p pageResponse) VisitUpstreamLinkResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitUpstreamCallbackResponse implements api.UpstreamCallbackResponseObject.
func (p pageResponse) VisitUpstreamCallbackResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitUpstreamRegisterPageResponse implements api.UpstreamRegisterPageResponseObject.
func (p pageResponse) VisitUpstreamRegisterPageResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitUpstreamRegisterSubmitResponse implements api.UpstreamRegisterSubmitResponseObject.
func (p pageResponse) VisitUpstreamRegisterSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitAccountUpstreamUnlinkSubmitResponse implements api.AccountUpstreamUnlinkSubmitResponseObject.
func (p pageResponse) VisitAccountUpstreamUnlinkSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitRedirectToSSOResponse implements api.RedirectToSSOResponseObject.
func (p pageResponse) VisitRedirectToSSOResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitRedirectToIdPResponse implements api.RedirectToIdPResponseObject.
func (p pageResponse) VisitRedirectToIdPResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitFactorPageResponse implements api.FactorPageResponseObject.
func (p pageResponse) VisitFactorPageResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitFactorSubmitResponse implements api.FactorSubmitResponseObject.
func (p pageResponse) VisitFactorSubmitResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitAccountTotpStartResponse implements api.AccountTotpStartResponseObject.
func (p pageResponse) VisitAccountTotpStartResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitAccountTotpConfirmResponse implements api.AccountTotpConfirmResponseObject.
func (p pageResponse) VisitAccountTotpConfirmResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitAccountRecoveryCodesResponse implements api.AccountRecoveryCodesResponseObject.
func (p pageResponse) VisitAccountRecoveryCodesResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitAccountFactorRemoveResponse implements api.AccountFactorRemoveResponseObject.
func (p pageResponse) VisitAccountFactorRemoveResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitSsoCompleteResponse implements api.SsoCompleteResponseObject.
func (p pageResponse) VisitSsoCompleteResponse(w http.ResponseWriter) error { return p.write(w) }

// VisitAccountProfileSubmitResponse implements api.AccountProfileSubmitResponseObject.
func (p pageResponse) VisitAccountProfileSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitAccountDeviceRenameSubmitResponse implements api.AccountDeviceRenameSubmitResponseObject.
func (p pageResponse) VisitAccountDeviceRenameSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitAccountEndOtherSessionsSubmitResponse implements api.AccountEndOtherSessionsSubmitResponseObject.
func (p pageResponse) VisitAccountEndOtherSessionsSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitAccountDeactivateSubmitResponse implements api.AccountDeactivateSubmitResponseObject.
func (p pageResponse) VisitAccountDeactivateSubmitResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// browser is the page request's cookies and address.
func browser(ctx context.Context) oauth.Browser {
	b := oauth.Browser{ClientKey: addressKey(ctx), IP: clientIP(ctx)}
	if r := infoFrom(ctx).request; r != nil {
		b.Cookies, b.UserAgent = r.Cookies(), r.UserAgent()
	}
	return b
}

// SignInPage is GET /_registrar/login.
func (s *Server) SignInPage(ctx context.Context, req api.SignInPageRequestObject) (api.SignInPageResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	return pageResponse{s.oauth.SignInPage(ctx, browser(ctx), deref(req.Params.Next))}, nil
}

// SignInSubmit is POST /_registrar/login.
func (s *Server) SignInSubmit(ctx context.Context, req api.SignInSubmitRequestObject) (api.SignInSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	return pageResponse{s.oauth.SignIn(ctx, browser(ctx), oauth.SignInForm{Username: deref(b.Username), Password: deref(b.Password),
		CSRF: deref(b.Csrf), Next: deref(b.Next)})}, nil
}

// SignOutSubmit is POST /_registrar/logout.
func (s *Server) SignOutSubmit(ctx context.Context, req api.SignOutSubmitRequestObject) (api.SignOutSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	return pageResponse{s.oauth.SignOut(ctx, browser(ctx), deref(req.Body.Csrf))}, nil
}

// ConsentPage is GET /_registrar/consent/{grantId}.
func (s *Server) ConsentPage(ctx context.Context, req api.ConsentPageRequestObject) (api.ConsentPageResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	return pageResponse{s.oauth.ConsentPage(ctx, browser(ctx), req.GrantId)}, nil
}

// ConsentSubmit is POST /_registrar/consent/{grantId}.
func (s *Server) ConsentSubmit(ctx context.Context, req api.ConsentSubmitRequestObject) (api.ConsentSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	return pageResponse{s.oauth.Consent(ctx, browser(ctx), req.GrantId, deref(req.Body.Action), deref(req.Body.Csrf))}, nil
}

// DeviceVerificationPage is GET /_registrar/device (RFC 8628 verification_uri).
func (s *Server) DeviceVerificationPage(ctx context.Context, req api.DeviceVerificationPageRequestObject) (api.DeviceVerificationPageResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	return pageResponse{s.oauth.DevicePage(ctx, browser(ctx), deref(req.Params.UserCode))}, nil
}

// DeviceVerificationSubmit is POST /_registrar/device.
func (s *Server) DeviceVerificationSubmit(ctx context.Context, req api.DeviceVerificationSubmitRequestObject) (api.DeviceVerificationSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	return pageResponse{s.oauth.DeviceSubmit(ctx, browser(ctx), deref(req.Body.UserCode), deref(req.Body.Csrf))}, nil
}
