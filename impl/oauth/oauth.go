// Package oauth is registrar's OAuth 2.0 authorisation server (Matrix
// client-server API v1.15+, "OAuth 2.0 API"): client registration (RFC
// 7591 with the Matrix rules), the authorisation code grant with PKCE, the
// device authorisation grant (RFC 8628), refresh and revocation, ID tokens
// for OpenID Connect clients, and the sign-in, consent and device pages.
//
// The protocol machinery (request parsing, client authentication, the
// token endpoint's grant dispatch, error answers and redirects, PKCE) is
// zitadel/oidc's op.Server; this package supplies its semantics over
// registrar's store, issuing the same access and refresh tokens as the
// legacy API so that every endpoint accepts them.
package oauth

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"

	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/config"
	"registrar/impl/metrics"
	"registrar/impl/ratelimit"
	"registrar/impl/web"
)

// Paths of the endpoints and pages, under the server's root.
const (
	PathAuthorize           = "/_registrar/oauth2/authorize"
	PathToken               = "/_registrar/oauth2/token"
	PathRevoke              = "/_registrar/oauth2/revoke"
	PathIntrospect          = "/_registrar/oauth2/introspect"
	PathRegister            = "/_registrar/oauth2/register"
	PathDeviceAuthorization = "/_registrar/oauth2/device_authorization"
	PathKeys                = "/_registrar/oauth2/keys"
	PathLogin               = "/_registrar/login"
	PathLogout              = "/_registrar/logout"
	PathConsent             = "/_registrar/consent/"
	PathDevice              = "/_registrar/device"
	PathSignUp              = "/_registrar/signup"
	PathAccount             = "/_registrar/account"
	// CookiePath scopes the browser's cookies to the pages.
	CookiePath = "/_registrar/"
)

// Store is what the authorisation server needs of the database.
type Store interface {
	RegisterOAuthClient(ctx context.Context, c db.OAuthClient) (db.OAuthClient, error)
	UnusedOAuthClients(ctx context.Context, from string) (n, oldestCreated int64, err error)
	OAuthClient(ctx context.Context, clientID string) (db.OAuthClient, error)
	CreateOAuthGrant(ctx context.Context, g db.OAuthGrant) error
	OAuthGrant(ctx context.Context, id string) (db.OAuthGrant, error)
	OAuthGrantByCode(ctx context.Context, codeHash string) (db.OAuthGrant, error)
	PendingDeviceGrant(ctx context.Context, userCode string) (db.OAuthGrant, error)
	DecideOAuthGrant(ctx context.Context, id, userID string, approve bool, codeHash *string, expiresAt int64) error
	ExchangeOAuthCode(ctx context.Context, codeHash string, l db.Login) (db.OAuthGrant, bool, error)
	PollDeviceGrant(ctx context.Context, deviceCodeHash, clientID string, l db.Login) (db.OAuthGrant, bool, error)
	OAuthConsent(ctx context.Context, userID, clientID string) (string, error)
	SaveOAuthConsent(ctx context.Context, userID, clientID, scope string) error
	CreateBrowserSession(ctx context.Context, idHash, userID string, expiresAt int64, verifiedPasswordHash string) error
	BrowserSession(ctx context.Context, idHash string) (db.LiveBrowserSession, error)
	DeleteBrowserSession(ctx context.Context, idHash string) error
	TouchBrowserSession(ctx context.Context, idHash, userAgent, ip string) error
	InheritUpstreamLogin(ctx context.Context, browserSession, userID, deviceID string) error
	ServerSecret(ctx context.Context, name string, generate func() string) (string, error)
	AccountByUserID(ctx context.Context, userID string) (db.Account, error)
}

// Service is the authorisation server.
type Service struct {
	cfg      *config.Config
	store    Store
	accounts *accounts.Service
	limits   limits
	now      func() time.Time
	log      *slog.Logger
	metrics  *metrics.Set
	// clientKey is the rate-limit key of a request's client address.
	clientKey func(ctx context.Context) string
	// secret keys the CSRF tokens.
	secret        []byte
	site          *web.Site
	images        LogoSource
	providers     func(next string) []web.ProviderLink
	afterPassword func(ctx context.Context, b Browser, acct db.Account, next string) *Page
	gate          func(ctx context.Context, acct db.Account) string
	passkeys      bool

	keyOnce sync.Once
	key     *signingKey
	keyErr  error

	handlerOnce sync.Once
	handler     http.Handler
}

type limits struct {
	clientRegistration, deviceAuthorization, userCode, authorization *ratelimit.Limiter
}

// Limiters lists the service's limiters (for reclaiming idle buckets).
func (s *Service) Limiters() []*ratelimit.Limiter {
	return []*ratelimit.Limiter{s.limits.clientRegistration, s.limits.deviceAuthorization, s.limits.userCode, s.limits.authorization}
}

// Options are New's dependencies.
type Options struct {
	Store    Store
	Accounts *accounts.Service
	Remote   *ratelimit.Remote
	// ClientKey is the rate-limit key of a request's client address.
	ClientKey func(ctx context.Context) string
	// Secret keys the CSRF tokens (the server's secret key).
	Secret []byte
	Now    func() time.Time
	Log    *slog.Logger
	// Metrics counts sign-ins; nil counts nothing.
	Metrics *metrics.Set
	// Site renders the pages.
	Site *web.Site
	// Logos tells whether a client's logo can be served; nil shows none.
	Logos LogoSource
	// Providers are the upstream identity providers' buttons of a sign-in
	// that goes on to next; nil for none.
	Providers func(next string) []web.ProviderLink
	// AfterPassword runs once a sign-in's password is right, before the
	// session starts: a page to answer instead (the second factor), or
	// nil to go on.
	AfterPassword func(ctx context.Context, b Browser, acct db.Account, next string) *Page
	// Gate is where a signed-in account must go before an authorisation
	// (to enrol a required second factor), "" for nowhere.
	Gate func(ctx context.Context, acct db.Account) string
	// Passkeys shows the sign-in page's passkey button.
	Passkeys bool
}

// LogoSource knows whether the image at a URL can be served.
type LogoSource interface {
	Ready(ctx context.Context, url string) bool
}

// New builds the authorisation server of cfg (cfg.OAuth.Enabled).
func New(cfg *config.Config, o Options) *Service {
	s := &Service{cfg: cfg, store: o.Store, accounts: o.Accounts, now: o.Now, log: o.Log, metrics: o.Metrics, clientKey: o.ClientKey, secret: o.Secret,
		site: o.Site, images: o.Logos, providers: o.Providers, afterPassword: o.AfterPassword, gate: o.Gate, passkeys: o.Passkeys,
		limits: limits{
			clientRegistration:  ratelimit.Shared("oauth.rc_client_registration", cfg.OAuth.RcClientRegistration, o.Remote),
			deviceAuthorization: ratelimit.Shared("oauth.rc_device_authorization", cfg.OAuth.RcDeviceAuthorization, o.Remote),
			userCode:            ratelimit.Shared("oauth.rc_user_code", cfg.OAuth.RcUserCode, o.Remote),
			authorization:       ratelimit.Shared("oauth.rc_authorization", cfg.OAuth.RcAuthorization, o.Remote),
		}}
	return s
}

// Protocol is the handler of the endpoints whose parsing and answers
// zitadel/oidc does: authorize, token and device_authorization (built on
// first use).
func (s *Service) Protocol() http.Handler {
	s.handlerOnce.Do(func() {
		s.handler = op.RegisterServer(&provider{s: s}, op.Endpoints{
			Authorization:       op.NewEndpoint(PathAuthorize),
			Token:               op.NewEndpoint(PathToken),
			DeviceAuthorization: op.NewEndpoint(PathDeviceAuthorization),
		}, op.WithServerCORSOptions(nil))
	})
	return s.handler
}

// url is the absolute URL of a path of this server.
func (s *Service) url(path string) string {
	return strings.TrimSuffix(s.cfg.PublicBaseURL, "/") + path
}

// secureCookies: the browser's cookies are Secure when the pages are
// served over https.
func (s *Service) secureCookies() bool { return strings.HasPrefix(s.cfg.PublicBaseURL, "https://") }

// Metadata is the authorisation server metadata (RFC 8414 with the
// Matrix extensions and the OpenID Connect discovery fields).
type Metadata struct {
	Issuer                                 string   `json:"issuer"`
	AuthorizationEndpoint                  string   `json:"authorization_endpoint"`
	TokenEndpoint                          string   `json:"token_endpoint"`
	RevocationEndpoint                     string   `json:"revocation_endpoint"`
	IntrospectionEndpoint                  string   `json:"introspection_endpoint"`
	RegistrationEndpoint                   string   `json:"registration_endpoint"`
	DeviceAuthorizationEndpoint            string   `json:"device_authorization_endpoint"`
	JWKSURI                                string   `json:"jwks_uri"`
	ResponseTypesSupported                 []string `json:"response_types_supported"`
	ResponseModesSupported                 []string `json:"response_modes_supported"`
	GrantTypesSupported                    []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported          []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported      []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionAuthMethodsSupported      []string `json:"introspection_endpoint_auth_methods_supported"`
	ScopesSupported                        []string `json:"scopes_supported"`
	SubjectTypesSupported                  []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported       []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported                        []string `json:"claims_supported"`
	PromptValuesSupported                  []string `json:"prompt_values_supported,omitempty"`
	AccountManagementURI                   string   `json:"account_management_uri"`
	AccountManagementActionsSupported      []string `json:"account_management_actions_supported"`
}

// AccountActions are the account management actions the account page
// opens at (Matrix v1.18).
var AccountActions = []string{"org.matrix.profile", "org.matrix.devices_list", "org.matrix.device_view",
	"org.matrix.device_delete", "org.matrix.account_deactivate"}

// ActionCrossSigningReset is the account management action a homeserver
// under delegation sends people to before they replace their
// cross-signing keys.
const ActionCrossSigningReset = "org.matrix.cross_signing_reset"

// accountActions are the actions offered: the cross-signing reset only
// for a homeserver registrar provisions.
func (s *Service) accountActions() []string {
	if s.cfg.Matrix.Enabled() {
		return append(slices.Clone(AccountActions), ActionCrossSigningReset)
	}
	return AccountActions
}

// Metadata describes this server.
func (s *Service) Metadata() Metadata {
	return Metadata{
		Issuer:                                 s.cfg.OAuth.Issuer,
		AuthorizationEndpoint:                  s.url(PathAuthorize),
		TokenEndpoint:                          s.url(PathToken),
		RevocationEndpoint:                     s.url(PathRevoke),
		IntrospectionEndpoint:                  s.url(PathIntrospect),
		RegistrationEndpoint:                   s.url(PathRegister),
		DeviceAuthorizationEndpoint:            s.url(PathDeviceAuthorization),
		JWKSURI:                                s.url(PathKeys),
		ResponseTypesSupported:                 []string{"code"},
		ResponseModesSupported:                 []string{"query", "fragment"},
		GrantTypesSupported:                    []string{grantCode, grantRefresh, grantDevice},
		CodeChallengeMethodsSupported:          []string{"S256"},
		TokenEndpointAuthMethodsSupported:      []string{"none"},
		RevocationEndpointAuthMethodsSupported: []string{"none"},
		IntrospectionAuthMethodsSupported:      []string{"client_secret_basic", "client_secret_post"},
		ScopesSupported:                        []string{scopeOpenID, ScopeAPI, ScopeDevicePrefix + "*"},
		SubjectTypesSupported:                  []string{"public"},
		IDTokenSigningAlgValuesSupported:       []string{"RS256"},
		ClaimsSupported:                        []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce"},
		PromptValuesSupported:                  s.promptValues(),
		AccountManagementURI:                   s.url(PathAccount),
		AccountManagementActionsSupported:      s.accountActions(),
	}
}

// promptValues: prompt=create (the sign-up page) while registration is
// open.
func (s *Service) promptValues() []string {
	if s.cfg.EnableRegistration {
		return []string{"create"}
	}
	return nil
}
