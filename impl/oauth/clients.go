package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/secrets"
)

// Grant types registrar supports.
const (
	grantCode    = string(oidc.GrantTypeCode)
	grantRefresh = string(oidc.GrantTypeRefreshToken)
	grantDevice  = string(oidc.GrantTypeDeviceCode)
)

// ClientMetadata is a client's registered metadata (RFC 7591 §2 with
// the Matrix rules). Localized holds the "name#tag" variants of the
// human-readable values.
type ClientMetadata struct {
	ClientID                string            `json:"client_id,omitempty"`
	ClientURI               string            `json:"client_uri"`
	ClientName              string            `json:"client_name,omitempty"`
	LogoURI                 string            `json:"logo_uri,omitempty"`
	TOSURI                  string            `json:"tos_uri,omitempty"`
	PolicyURI               string            `json:"policy_uri,omitempty"`
	RedirectURIs            []string          `json:"redirect_uris,omitempty"`
	ApplicationType         string            `json:"application_type"`
	TokenEndpointAuthMethod string            `json:"token_endpoint_auth_method"`
	GrantTypes              []string          `json:"grant_types"`
	ResponseTypes           []string          `json:"response_types"`
	Contacts                []string          `json:"contacts,omitempty"`
	Localized               map[string]string `json:"-"`
}

// MarshalJSON writes the fields and the localized variants.
func (m ClientMetadata) MarshalJSON() ([]byte, error) {
	type plain ClientMetadata
	b, err := json.Marshal(plain(m))
	if err != nil || len(m.Localized) == 0 {
		return b, err
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range m.Localized {
		all[k] = v
	}
	return json.Marshal(all)
}

// Localize returns the value of field for the language tag, falling back
// to the plain value.
func (m ClientMetadata) Localize(field, plainValue, lang string) string {
	if v, ok := m.Localized[field+"#"+lang]; ok {
		return v
	}
	return plainValue
}

// The human-readable fields that may be localized, and whether they are
// URIs.
var localizable = map[string]bool{"client_name": false, "logo_uri": true, "tos_uri": true, "policy_uri": true}

// RegisterClient validates a registration request and stores the client
// (identical metadata shares a client_id, as the spec suggests).
func (s *Service) RegisterClient(ctx context.Context, m ClientMetadata, clientKey string) (ClientMetadata, error) {
	if err := s.limits.clientRegistration.Take(clientKey, s.now()); err != nil {
		return ClientMetadata{}, err
	}
	if err := normalize(&m); err != nil {
		return ClientMetadata{}, err
	}
	m.ClientID = ""
	canonical, err := json.Marshal(m)
	if err != nil {
		return ClientMetadata{}, matrix.Internal(err)
	}
	if len(canonical) > MaxClientMetadataBytes {
		return ClientMetadata{}, badRequest(CodeInvalidClientMetadata, fmt.Sprintf("the client metadata is larger than %d bytes", MaxClientMetadataBytes))
	}
	if err := s.checkUnusedClients(ctx, clientKey); err != nil {
		return ClientMetadata{}, err
	}
	sum := sha256.Sum256(canonical)
	uris, _ := json.Marshal(m.RedirectURIs)
	grants, _ := json.Marshal(m.GrantTypes)
	stored, err := s.store.RegisterOAuthClient(ctx, db.OAuthClient{ClientID: secrets.RandomFrom(clientIDAlphabet, 26),
		Metadata: string(canonical), MetadataHash: hex.EncodeToString(sum[:]), ApplicationType: m.ApplicationType,
		RedirectURIs: string(uris), GrantTypes: string(grants), RegisteredFrom: clientKey})
	if err != nil {
		return ClientMetadata{}, matrix.Internal(err)
	}
	m.ClientID = stored.ClientID
	return m, nil
}

// MaxClientMetadataBytes bounds a client's registered metadata (as
// stored, in JSON).
const MaxClientMetadataBytes = 8 << 10

// checkUnusedClients refuses a registration from an address that has
// registered oauth.max_unused_clients_per_address clients that never
// completed an authorisation (each is forgotten after
// oauth.unused_client_lifetime, which the 429 says).
func (s *Service) checkUnusedClients(ctx context.Context, clientKey string) error {
	limit := s.cfg.OAuth.MaxUnusedClientsPerAddress
	if limit <= 0 {
		return nil
	}
	n, oldest, err := s.store.UnusedOAuthClients(ctx, clientKey)
	if err != nil {
		return matrix.Internal(err)
	}
	if n < int64(limit) {
		return nil
	}
	wait := oldest + s.cfg.OAuth.UnusedClientLifetime.Milliseconds() - s.now().UnixMilli()
	return &matrix.Error{Status: http.StatusTooManyRequests, Code: matrix.CodeLimitExceeded, RetryAfterMS: max(wait, 1),
		Message: "Too many clients registered from this address that were never used; use one of them, or wait"}
}

// clientIDAlphabet: client IDs look like ULIDs (as other servers').
const clientIDAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// normalize applies the Matrix client metadata rules and defaults.
func normalize(m *ClientMetadata) error {
	base, err := url.Parse(m.ClientURI)
	if m.ClientURI == "" || err != nil || base.Scheme != "https" || base.Host == "" || base.User != nil || base.Fragment != "" {
		return badRequest(CodeInvalidClientMetadata, "client_uri is required: an https URL without user info or fragment")
	}
	switch m.ApplicationType {
	case "":
		m.ApplicationType = "web"
	case "web", "native":
	default:
		return badRequest(CodeInvalidClientMetadata, "application_type must be web or native")
	}
	switch m.TokenEndpointAuthMethod {
	case "", "none":
		m.TokenEndpointAuthMethod = "none"
	default:
		return badRequest(CodeInvalidClientMetadata, "token_endpoint_auth_method must be none: registrar's clients are public")
	}
	if err := normalizeGrants(m); err != nil {
		return err
	}
	for _, f := range []struct {
		name  string
		value *string
	}{{"logo_uri", &m.LogoURI}, {"tos_uri", &m.TOSURI}, {"policy_uri", &m.PolicyURI}} {
		if *f.value != "" && !sameBase(base, *f.value) {
			return badRequest(CodeInvalidClientMetadata, f.name+" must be an https URL under client_uri's host")
		}
	}
	for k, v := range m.Localized {
		field, _, _ := strings.Cut(k, "#")
		isURI, ok := localizable[field]
		switch {
		case !ok:
			delete(m.Localized, k) // not registered (RFC 7591 §2.2)
		case isURI && !sameBase(base, v):
			return badRequest(CodeInvalidClientMetadata, k+" must be an https URL under client_uri's host")
		}
	}
	for _, uri := range m.RedirectURIs {
		if err := checkRedirectURI(base, m.ApplicationType, uri); err != nil {
			return err
		}
	}
	return nil
}

// normalizeGrants keeps the grant and response types registrar supports.
func normalizeGrants(m *ClientMetadata) error {
	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{grantCode}
	}
	var grants []string
	for _, g := range m.GrantTypes {
		if (g == grantCode || g == grantRefresh || g == grantDevice) && !slices.Contains(grants, g) {
			grants = append(grants, g)
		}
	}
	if !slices.Contains(grants, grantCode) && !slices.Contains(grants, grantDevice) {
		return badRequest(CodeInvalidClientMetadata, "grant_types must include authorization_code or urn:ietf:params:oauth:grant-type:device_code")
	}
	sort.Strings(grants)
	m.GrantTypes = grants
	if len(m.ResponseTypes) == 0 && slices.Contains(grants, grantCode) {
		m.ResponseTypes = []string{"code"}
	}
	for _, r := range m.ResponseTypes {
		if r != "code" {
			return badRequest(CodeInvalidClientMetadata, "response_types may only be code")
		}
	}
	if m.ResponseTypes == nil {
		m.ResponseTypes = []string{}
	}
	if slices.Contains(grants, grantCode) && len(m.RedirectURIs) == 0 {
		return badRequest(CodeInvalidRedirectURI, "redirect_uris are required for the authorization_code grant")
	}
	return nil
}

// sameBase reports whether raw is an https URL on base's host or a
// subdomain of it.
func sameBase(base *url.URL, raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && u.User == nil && hostUnder(u.Hostname(), base.Hostname())
}

func hostUnder(host, base string) bool {
	host, base = strings.ToLower(host), strings.ToLower(base)
	return host == base || strings.HasSuffix(host, "."+base)
}

// checkRedirectURI applies the spec's redirect URI rules of an
// application type.
func checkRedirectURI(base *url.URL, appType, raw string) error {
	invalid := func(why string) error { return badRequest(CodeInvalidRedirectURI, raw+": "+why) }
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return invalid("not an absolute URI")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return invalid("a redirect URI must not have a fragment")
	}
	if u.Scheme == "https" {
		if u.User != nil || !hostUnder(u.Hostname(), base.Hostname()) {
			return invalid("an https redirect URI must be on client_uri's host (or a subdomain) without user info")
		}
		return nil
	}
	if appType != "native" {
		return invalid("a web client's redirect URIs must use https")
	}
	if u.Scheme == "http" {
		if !isLoopbackHost(u.Hostname()) {
			return invalid("http is allowed on the loopback interface only")
		}
		if u.Port() != "" {
			return invalid("a loopback redirect URI must not have a port (any port is accepted when authorising)")
		}
		if u.User != nil {
			return invalid("a loopback redirect URI must not have user info")
		}
		return nil
	}
	// A private-use scheme: the client_uri's host reversed, without an
	// authority. Schemes a browser acts on itself are never one, and a
	// host without a dot (or an address) reverses to no domain of the
	// client's.
	scheme := strings.ToLower(u.Scheme)
	if browserSchemes[scheme] {
		return invalid("the " + scheme + " scheme is not a redirect URI scheme")
	}
	host := base.Hostname()
	if !strings.Contains(host, ".") || net.ParseIP(host) != nil {
		return invalid("a private-use URI scheme needs a client_uri on a domain name with a dot, whose reverse the scheme starts with")
	}
	reversed := reverseHost(host)
	if scheme != reversed && !strings.HasPrefix(scheme, reversed+".") {
		return invalid("a private-use URI scheme must start with client_uri's host reversed (" + reversed + ")")
	}
	if u.Host != "" || strings.HasPrefix(strings.TrimPrefix(raw, u.Scheme+":"), "//") {
		return invalid("a private-use URI must not have an authority (one slash after the scheme at most)")
	}
	return nil
}

// redirectMatches reports whether a requested redirect URI is one of the
// registered ones: the same string or, for a loopback URI (http on
// 127.0.0.1, [::1] or localhost, registered without a port), the same
// scheme, host, path and query on any port (RFC 8252 §7.3, RFC 9700
// §4.1.3). Nothing else varies: not the host spelling, not the scheme.
func redirectMatches(registered []string, requested string) bool {
	if slices.Contains(registered, requested) {
		return true
	}
	req, err := url.Parse(requested)
	if err != nil || req.Scheme != "http" || req.User != nil || req.Fragment != "" || strings.Contains(requested, "#") {
		return false
	}
	if port, err := strconv.ParseUint(req.Port(), 10, 16); err != nil || port == 0 {
		return false
	}
	for _, raw := range registered {
		reg, err := url.Parse(raw)
		if err != nil || reg.Scheme != "http" || reg.Port() != "" || !isLoopbackHost(reg.Hostname()) {
			continue
		}
		if reg.Hostname() == req.Hostname() && reg.EscapedPath() == req.EscapedPath() && reg.RawQuery == req.RawQuery {
			return true
		}
	}
	return false
}

func isLoopbackHost(host string) bool { return host == "localhost" || isLoopbackIP(host) }

func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() && (host == "127.0.0.1" || host == "::1")
}

// browserSchemes are schemes that browsers handle themselves: never a
// native client's redirect URI.
var browserSchemes = map[string]bool{"javascript": true, "data": true, "file": true, "vbscript": true, "about": true,
	"blob": true, "filesystem": true, "ftp": true, "ws": true, "wss": true, "mailto": true, "tel": true, "view-source": true,
	"chrome": true, "resource": true, "intent": true}

func reverseHost(host string) string {
	parts := strings.Split(strings.ToLower(host), ".")
	slices.Reverse(parts)
	return strings.Join(parts, ".")
}
