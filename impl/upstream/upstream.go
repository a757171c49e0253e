// Package upstream signs people in with the identities they have
// elsewhere: OpenID Connect providers and plain OAuth 2.0 ones (GitHub),
// configured as Synapse's oidc_providers. zitadel/oidc's relying party
// does the protocol (discovery, the code exchange, the ID token's
// signature, issuer, audience, expiry and nonce); this package builds the
// authorisation request (state, nonce and PKCE come from the caller, who
// keeps them), maps the claims onto an account with the provider's
// templates, checks the attribute requirements, and verifies back-channel
// logout tokens.
package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"registrar/impl/config"
)

// Errors of a sign-in at a provider.
var (
	// ErrUnavailable: the provider could not be reached or answered
	// nonsense; nothing was written, the person may try again.
	ErrUnavailable = errors.New("upstream: the provider is unavailable")
	// ErrRefused: the provider refused the sign-in, or its answer did not
	// verify (a forged or replayed code, a wrong nonce).
	ErrRefused = errors.New("upstream: the sign-in was refused")
	// ErrRequirements: the person does not meet the provider's
	// attribute_requirements.
	ErrRequirements = errors.New("upstream: the attribute requirements are not met")
)

// Identity is a person as a provider vouched for them, mapped.
type Identity struct {
	// Subject identifies them at the provider (the subject claim).
	Subject string
	// SID is the provider's session, for back-channel logout ("" when it
	// gave none).
	SID                           string
	Localpart, DisplayName, Email string
}

// Info is a provider as the pages and GET /login show it.
type Info struct {
	ID, Name, Icon, Brand string
}

// Service is the configured providers.
type Service struct {
	providers []*Provider
	byID      map[string]*Provider
}

// New prepares the providers; callbackURL is registrar's redirect URI.
// A template that cannot be read is an error naming the provider.
func New(cfgs []config.OIDCProvider, callbackURL string, httpClient *http.Client, log *slog.Logger) (*Service, error) {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Service{byID: map[string]*Provider{}}
	for _, c := range cfgs {
		p := &Provider{cfg: c, callback: callbackURL, client: httpClient, log: log}
		m := c.UserMappingProvider.Config
		var err error
		prefix := "oidc_providers[" + c.IdpID + "].user_mapping_provider.config."
		if p.localpart, err = compileMapping(prefix+"localpart_template", m.LocalpartTemplate); err != nil {
			return nil, err
		}
		if p.displayName, err = compileMapping(prefix+"display_name_template", m.DisplayNameTemplate); err != nil {
			return nil, err
		}
		if p.email, err = compileMapping(prefix+"email_template", m.EmailTemplate); err != nil {
			return nil, err
		}
		s.providers = append(s.providers, p)
		s.byID[c.ID()] = p
	}
	return s, nil
}

// Any reports whether a provider is configured.
func (s *Service) Any() bool { return s != nil && len(s.providers) > 0 }

// Infos lists the providers in configuration order.
func (s *Service) Infos() []Info {
	if s == nil {
		return nil
	}
	out := make([]Info, 0, len(s.providers))
	for _, p := range s.providers {
		out = append(out, p.Info())
	}
	return out
}

// Provider is the provider of an ID (config.OIDCProvider.ID).
func (s *Service) Provider(id string) (*Provider, bool) {
	if s == nil {
		return nil, false
	}
	p, ok := s.byID[id]
	return p, ok
}

// Provider is one upstream provider; its relying party is built on first
// use (discovery is a request) and kept.
type Provider struct {
	cfg      config.OIDCProvider
	callback string
	client   *http.Client
	log      *slog.Logger

	localpart, displayName, email *template.Template

	mu   sync.Mutex
	rp   rp.RelyingParty
	pkce bool
	// failedAt and failure are the provider's last unavailability, until
	// a call succeeds (for /readyz).
	failedAt time.Time
	failure  string
}

// note records the outcome of a call to the provider.
func (p *Provider) note(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err == nil:
		p.failure = ""
	case errors.Is(err, ErrUnavailable):
		p.failedAt, p.failure = time.Now(), err.Error()
	}
	return err
}

// Unavailable lists the providers whose last call failed for want of
// them, with why (for /readyz).
func (s *Service) Unavailable() []string {
	var out []string
	if s == nil {
		return nil
	}
	for _, p := range s.providers {
		p.mu.Lock()
		if p.failure != "" {
			out = append(out, p.cfg.ID()+" since "+p.failedAt.UTC().Format(time.RFC3339)+": "+p.failure)
		}
		p.mu.Unlock()
	}
	return out
}

// Info is the provider as the pages show it.
func (p *Provider) Info() Info {
	return Info{ID: p.cfg.ID(), Name: p.cfg.IdpName, Icon: p.cfg.IdpIcon, Brand: p.cfg.IdpBrand}
}

// Config is the provider's configuration.
func (p *Provider) Config() config.OIDCProvider { return p.cfg }

type nonceKey struct{}

// party returns the relying party, building it the first time.
func (p *Provider) party(ctx context.Context) (rp.RelyingParty, bool, error) {
	p.mu.Lock()
	party, pkce := p.rp, p.pkce
	p.mu.Unlock()
	if party != nil {
		return party, pkce, nil
	}
	party, pkce, err := p.build(ctx)
	if err != nil {
		return nil, false, p.note(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rp == nil {
		p.rp, p.pkce = party, pkce
	}
	return p.rp, p.pkce, nil
}

// build makes the relying party (discovery is a request: it is made
// outside the lock).
func (p *Provider) build(ctx context.Context) (rp.RelyingParty, bool, error) {
	c := p.cfg
	opts := []rp.Option{rp.WithHTTPClient(p.client),
		rp.WithVerifierOpts(rp.WithNonce(func(ctx context.Context) string { n, _ := ctx.Value(nonceKey{}).(string); return n }),
			rp.WithIssuedAtOffset(time.Minute))}
	switch c.ClientAuthMethod {
	case config.ClientSecretPost:
		opts = append(opts, rp.WithAuthStyle(oauth2.AuthStyleInParams))
	case config.ClientSecretBasic:
		opts = append(opts, rp.WithAuthStyle(oauth2.AuthStyleInHeader))
	}
	var party rp.RelyingParty
	pkce := c.PKCEMethod == "always"
	var err error
	if c.Discovers() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var disc *oidc.DiscoveryConfiguration
		disc, err = client.Discover(ctx, c.Issuer, p.client)
		if err != nil {
			return nil, false, fmt.Errorf("%w: discovery: %v", ErrUnavailable, err)
		}
		if c.PKCEMethod == "auto" {
			pkce = slices.Contains(disc.CodeChallengeMethodsSupported, oidc.CodeChallengeMethodS256)
		}
		party, err = rp.NewRelyingPartyOIDC(ctx, c.Issuer, c.ClientID, c.Secret(), p.callback, c.Scopes, opts...)
	} else {
		party, err = rp.NewRelyingPartyOAuth(&oauth2.Config{ClientID: c.ClientID, ClientSecret: c.Secret(), RedirectURL: p.callback,
			Scopes: c.Scopes, Endpoint: oauth2.Endpoint{AuthURL: c.AuthorizationEndpoint, TokenURL: c.TokenEndpoint}}, opts...)
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return party, pkce, nil
}

// AuthOrigin is the origin of the provider's authorisation endpoint (for
// a page's CSP form-action), "" when it cannot be had.
func (p *Provider) AuthOrigin(ctx context.Context) string {
	party, _, err := p.party(ctx)
	if err != nil {
		return ""
	}
	u := party.OAuthConfig().Endpoint.AuthURL
	if i := strings.Index(u, "://"); i > 0 {
		if j := strings.IndexAny(u[i+3:], "/?#"); j >= 0 {
			return u[:i+3+j]
		}
		return u
	}
	return ""
}

// Challenge is the S256 code challenge of a PKCE verifier.
func Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// AuthURL is where to send the person: the provider's authorisation
// endpoint with the state, the nonce (OpenID Connect) and the PKCE
// challenge when the provider takes one.
func (p *Provider) AuthURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	party, pkce, err := p.party(ctx)
	if err != nil {
		return "", err
	}
	var opts []rp.AuthURLOpt
	if !party.IsOAuth2Only() {
		opts = append(opts, func() []oauth2.AuthCodeOption { return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("nonce", nonce)} })
	}
	if pkce {
		opts = append(opts, rp.WithCodeChallenge(Challenge(verifier)))
	}
	return rp.AuthURL(state, party, opts...), nil
}

// Exchange spends the code the provider returned, verifies what it
// answers and maps the person: ErrUnavailable, ErrRefused or
// ErrRequirements when not.
func (p *Provider) Exchange(ctx context.Context, code, nonce, verifier string) (Identity, error) {
	party, pkce, err := p.party(ctx)
	if err != nil {
		return Identity{}, err
	}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, nonceKey{}, nonce), 15*time.Second)
	defer cancel()
	var opts []rp.CodeExchangeOpt
	if pkce {
		opts = append(opts, rp.WithCodeVerifier(verifier))
	}
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, code, party, opts...)
	if err != nil {
		return Identity{}, p.note(classify(err))
	}
	claims := map[string]any{}
	if tokens.IDToken != "" {
		if claims, err = payloadClaims(tokens.IDToken); err != nil {
			return Identity{}, fmt.Errorf("%w: %v", ErrRefused, err)
		}
	}
	if party.IsOAuth2Only() || p.cfg.UserProfileMethod == "userinfo_endpoint" {
		info, err := p.userinfo(ctx, party, tokens.Token)
		if err != nil {
			return Identity{}, p.note(err)
		}
		for k, v := range info {
			if _, ok := claims[k]; !ok || party.IsOAuth2Only() {
				claims[k] = v
			}
		}
	}
	_ = p.note(nil)
	return p.identity(claims)
}

// classify sorts a failed exchange: the provider's refusal (a 4xx
// answer, a token that does not verify) or its unavailability.
func classify(err error) error {
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500:
		return fmt.Errorf("%w: %v", ErrRefused, err)
	case errors.As(err, &re):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connection refused") ||
		strings.Contains(err.Error(), "no such host"):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %v", ErrRefused, err)
}

// payloadClaims are a verified JWT's claims as a map (numbers kept as
// written).
func payloadClaims(jwt string) (map[string]any, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, errors.New("the ID token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	return decodeClaims(raw)
}

func decodeClaims(raw []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// userinfo asks the userinfo endpoint with the access token.
func (p *Provider) userinfo(ctx context.Context, party rp.RelyingParty, token *oauth2.Token) (map[string]any, error) {
	endpoint := party.UserinfoEndpoint()
	if endpoint == "" {
		endpoint = p.cfg.UserinfoEndpoint
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	req.Header.Set("Authorization", "Bearer "+token.AccessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: userinfo: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil || resp.StatusCode >= 500:
		return nil, fmt.Errorf("%w: userinfo answered %d", ErrUnavailable, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: userinfo answered %d", ErrRefused, resp.StatusCode)
	}
	m, err := decodeClaims(body)
	if err != nil {
		return nil, fmt.Errorf("%w: userinfo: %v", ErrUnavailable, err)
	}
	return m, nil
}

// identity maps the claims onto an account after the requirements.
func (p *Provider) identity(claims map[string]any) (Identity, error) {
	for _, r := range p.cfg.AttributeRequirements {
		if !meets(claims, r) {
			return Identity{}, fmt.Errorf("%w: %s", ErrRequirements, r.Attribute)
		}
	}
	id := Identity{Subject: claimString(claims, p.cfg.UserMappingProvider.Config.SubjectClaim), SID: claimString(claims, "sid")}
	if id.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no %s claim", ErrRefused, p.cfg.UserMappingProvider.Config.SubjectClaim)
	}
	var err error
	if id.Localpart, err = render(p.localpart, claims); err != nil {
		return Identity{}, err
	}
	id.Localpart = strings.ToLower(id.Localpart)
	if id.DisplayName, err = render(p.displayName, claims); err != nil {
		return Identity{}, err
	}
	if id.Email, err = render(p.email, claims); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// meets reports whether claims satisfy a requirement: the claim equals the
// value (or one of one_of), or, a list, contains it.
func meets(claims map[string]any, r config.AttributeRequirement) bool {
	wanted := r.OneOf
	if r.Value != "" {
		wanted = append([]string{r.Value}, wanted...)
	}
	v, ok := claimValue(claims, r.Attribute)
	if !ok {
		return false
	}
	values := []any{v}
	if list, isList := v.([]any); isList {
		values = list
	}
	for _, x := range values {
		if slices.Contains(wanted, claimString(map[string]any{"v": x}, "v")) {
			return true
		}
	}
	return false
}

// backchannelEvent is the event a logout token carries.
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// VerifyLogoutToken checks a back-channel logout token (OpenID Connect
// Back-Channel Logout 1.0 §2.6): signed by the provider's keys, for this
// client, recent, with the event, a sid or a sub, and no nonce. It
// returns the subject and the provider's session.
func (p *Provider) VerifyLogoutToken(ctx context.Context, token string) (subject, sid string, err error) {
	party, _, err := p.party(ctx)
	if err != nil {
		return "", "", err
	}
	if party.IsOAuth2Only() {
		return "", "", fmt.Errorf("%w: the provider is not an OpenID Connect provider", ErrRefused)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512,
		jose.PS256, jose.PS384, jose.PS512, jose.EdDSA})
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrRefused, err)
	}
	payload, err := party.IDTokenVerifier().KeySet.VerifySignature(ctx, jws)
	if err != nil {
		return "", "", fmt.Errorf("%w: signature: %v", ErrRefused, err)
	}
	var claims oidc.LogoutTokenClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrRefused, err)
	}
	now := time.Now()
	switch {
	case claims.Issuer != party.Issuer():
		return "", "", fmt.Errorf("%w: issuer %q", ErrRefused, claims.Issuer)
	case !slices.Contains(claims.Audience, p.cfg.ClientID):
		return "", "", fmt.Errorf("%w: audience %v", ErrRefused, claims.Audience)
	case claims.IssuedAt.AsTime().After(now.Add(time.Minute)) || claims.IssuedAt.AsTime().Before(now.Add(-10*time.Minute)):
		return "", "", fmt.Errorf("%w: issued at %v", ErrRefused, claims.IssuedAt.AsTime())
	case !claims.Expiration.AsTime().IsZero() && claims.Expiration.AsTime().Before(now.Add(-time.Minute)):
		return "", "", fmt.Errorf("%w: expired", ErrRefused)
	case claims.Events[backchannelEvent] == nil:
		return "", "", fmt.Errorf("%w: no back-channel logout event", ErrRefused)
	case claims.Claims["nonce"] != nil:
		return "", "", fmt.Errorf("%w: a logout token has no nonce", ErrRefused)
	case claims.SessionID == "" && claims.Subject == "":
		return "", "", fmt.Errorf("%w: neither sid nor sub", ErrRefused)
	}
	return claims.Subject, claims.SessionID, nil
}
