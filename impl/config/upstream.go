package config

import (
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// OIDCProvider is an upstream identity provider people sign in with
// (Synapse's oidc_providers entry), OpenID Connect or plain OAuth 2.0.
type OIDCProvider struct {
	IdpID    string `yaml:"idp_id"`
	IdpName  string `yaml:"idp_name"`
	IdpIcon  string `yaml:"idp_icon"`
	IdpBrand string `yaml:"idp_brand"`
	// Preset fills in a well-known provider's endpoints, scopes and
	// mapping (registrar's): github, google, gitlab or keycloak.
	Preset string `yaml:"preset"`
	// Discover reads the endpoints from the issuer's discovery document
	// (default true; false for a plain OAuth 2.0 provider, which needs
	// the endpoints below).
	Discover *bool  `yaml:"discover"`
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"client_id"`
	// ClientSecret, or ClientSecretPath holding it.
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretPath string `yaml:"client_secret_path"`
	// ClientAuthMethod is client_secret_basic (the default),
	// client_secret_post or none.
	ClientAuthMethod string `yaml:"client_auth_method"`
	// PKCEMethod is auto (when the provider advertises S256; always for a
	// provider without discovery), always or never.
	PKCEMethod            string   `yaml:"pkce_method"`
	Scopes                []string `yaml:"scopes"`
	AuthorizationEndpoint string   `yaml:"authorization_endpoint"`
	TokenEndpoint         string   `yaml:"token_endpoint"`
	UserinfoEndpoint      string   `yaml:"userinfo_endpoint"`
	// UserProfileMethod is auto (the ID token's claims) or
	// userinfo_endpoint (also ask the userinfo endpoint).
	UserProfileMethod string `yaml:"user_profile_method"`
	// AllowExistingUsers links a first sign-in to the local account of the
	// mapped localpart; otherwise that localpart is taken.
	AllowExistingUsers bool `yaml:"allow_existing_users"`
	// EnableRegistration lets a first sign-in create an account (default
	// true).
	EnableRegistration *bool `yaml:"enable_registration"`
	// BackchannelLogoutEnabled ends the sessions a provider's session made
	// when it says so (OpenID Connect Back-Channel Logout 1.0).
	BackchannelLogoutEnabled   bool                   `yaml:"backchannel_logout_enabled"`
	BackchannelLogoutIgnoreSub bool                   `yaml:"backchannel_logout_ignore_sub"`
	UserMappingProvider        UserMappingProvider    `yaml:"user_mapping_provider"`
	AttributeRequirements      []AttributeRequirement `yaml:"attribute_requirements"`
}

// UserMappingProvider maps the provider's claims onto an account
// (Synapse's default module, with Jinja's {{ user.claim | filter }}
// templates: filters lower, upper, trim and localpart_from_email).
type UserMappingProvider struct {
	Module string      `yaml:"module"`
	Config UserMapping `yaml:"config"`
}

// UserMapping is the mapping's configuration.
type UserMapping struct {
	// SubjectClaim identifies the person (default sub; GitHub's is id).
	SubjectClaim        string `yaml:"subject_claim"`
	LocalpartTemplate   string `yaml:"localpart_template"`
	DisplayNameTemplate string `yaml:"display_name_template"`
	EmailTemplate       string `yaml:"email_template"`
	// ConfirmLocalpart lets the person change the mapped localpart.
	ConfirmLocalpart bool `yaml:"confirm_localpart"`
}

// AttributeRequirement is a claim a person must have to sign in: equal to
// Value, or to one of OneOf (a list claim must contain it).
type AttributeRequirement struct {
	Attribute string   `yaml:"attribute"`
	Value     string   `yaml:"value"`
	OneOf     []string `yaml:"one_of"`
}

// SSO is Synapse's sso section: the legacy API's single sign-on.
type SSO struct {
	// ClientWhitelist are the URL prefixes a legacy client's redirectUrl
	// may start with to receive its login token without a confirmation.
	ClientWhitelist []string `yaml:"client_whitelist"`
}

// Module is an entry of Synapse's modules list; registrar knows the LDAP
// module (matrix-synapse-ldap3).
type Module struct {
	Module string     `yaml:"module"`
	Config LDAPConfig `yaml:"config"`
}

// LDAPModule is matrix-synapse-ldap3's module name.
const LDAPModule = "ldap_auth_provider.LdapAuthProviderModule"

// LDAPConfig is matrix-synapse-ldap3's configuration.
type LDAPConfig struct {
	Enabled    bool   `yaml:"enabled"`
	URI        string `yaml:"uri"`
	StartTLS   bool   `yaml:"start_tls"`
	Base       string `yaml:"base"`
	Attributes struct {
		UID  string `yaml:"uid"`
		Mail string `yaml:"mail"`
		Name string `yaml:"name"`
	} `yaml:"attributes"`
	BindDN       string `yaml:"bind_dn"`
	BindPassword string `yaml:"bind_password"`
	// BindPasswordFile holds the bind password instead.
	BindPasswordFile string `yaml:"bind_password_file"`
	Filter           string `yaml:"filter"`
	// ActiveDirectory logs in with user@domain (DefaultDomain when none).
	ActiveDirectory bool   `yaml:"active_directory"`
	DefaultDomain   string `yaml:"default_domain"`
	TLSOptions      struct {
		// Validate checks the server's certificate (default true).
		Validate *bool `yaml:"validate"`
		// CACertsFile is a PEM bundle to check it against.
		CACertsFile string `yaml:"ca_certs_file"`
	} `yaml:"tls_options"`
}

// LDAP is the LDAP directory passwords are checked against, nil for none.
func (c *Config) LDAP() *LDAPConfig {
	for i := range c.Modules {
		if m := &c.Modules[i]; m.Module == LDAPModule && m.Config.Enabled {
			return &m.Config
		}
	}
	return nil
}

// Presets of well-known providers (Synapse's documented configurations).
var oidcPresets = map[string]OIDCProvider{
	"github": {IdpName: "GitHub", IdpBrand: "github", Discover: ptrBool(false),
		AuthorizationEndpoint: "https://github.com/login/oauth/authorize", TokenEndpoint: "https://github.com/login/oauth/access_token",
		UserinfoEndpoint: "https://api.github.com/user", Scopes: []string{"read:user", "user:email"},
		UserMappingProvider: UserMappingProvider{Config: UserMapping{SubjectClaim: "id", LocalpartTemplate: "{{ user.login }}",
			DisplayNameTemplate: "{{ user.name }}", EmailTemplate: "{{ user.email }}"}}},
	"google": {IdpName: "Google", IdpBrand: "google", Issuer: "https://accounts.google.com/", Scopes: []string{"openid", "profile", "email"},
		UserMappingProvider: UserMappingProvider{Config: UserMapping{LocalpartTemplate: "{{ user.given_name | lower }}",
			DisplayNameTemplate: "{{ user.name }}", EmailTemplate: "{{ user.email }}"}}},
	"gitlab": {IdpName: "GitLab", IdpBrand: "gitlab", Issuer: "https://gitlab.com/", Scopes: []string{"openid", "read_user"},
		UserMappingProvider: UserMappingProvider{Config: UserMapping{LocalpartTemplate: "{{ user.nickname }}",
			DisplayNameTemplate: "{{ user.name }}", EmailTemplate: "{{ user.email }}"}}},
	"keycloak": {IdpName: "Keycloak", Scopes: []string{"openid", "profile", "email"},
		UserMappingProvider: UserMappingProvider{Config: UserMapping{LocalpartTemplate: "{{ user.preferred_username }}",
			DisplayNameTemplate: "{{ user.name }}", EmailTemplate: "{{ user.email }}"}}},
}

func ptrBool(b bool) *bool { return &b }

// applyPreset fills what the operator left out from the provider's
// preset.
func (o *OIDCProvider) applyPreset() bool {
	if o.Preset == "" {
		return true
	}
	p, ok := oidcPresets[o.Preset]
	if !ok {
		return false
	}
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&o.IdpName, p.IdpName)
	fill(&o.IdpBrand, p.IdpBrand)
	fill(&o.Issuer, p.Issuer)
	fill(&o.AuthorizationEndpoint, p.AuthorizationEndpoint)
	fill(&o.TokenEndpoint, p.TokenEndpoint)
	fill(&o.UserinfoEndpoint, p.UserinfoEndpoint)
	if o.Discover == nil {
		o.Discover = p.Discover
	}
	if o.Scopes == nil {
		o.Scopes = p.Scopes
	}
	m, pm := &o.UserMappingProvider.Config, p.UserMappingProvider.Config
	fill(&m.SubjectClaim, pm.SubjectClaim)
	fill(&m.LocalpartTemplate, pm.LocalpartTemplate)
	fill(&m.DisplayNameTemplate, pm.DisplayNameTemplate)
	fill(&m.EmailTemplate, pm.EmailTemplate)
	return true
}

// ID is the provider's ID as Synapse names it in the legacy API, its
// external IDs and its URLs: idp_id prefixed with "oidc-" (but "oidc",
// the old single provider's).
func (o OIDCProvider) ID() string {
	if o.IdpID == "oidc" {
		return o.IdpID
	}
	return "oidc-" + o.IdpID
}

// Discovers reports whether the provider's endpoints come from its
// discovery document.
func (o OIDCProvider) Discovers() bool { return o.Discover == nil || *o.Discover }

// RegistrationEnabled reports whether a first sign-in may create an
// account.
func (o OIDCProvider) RegistrationEnabled() bool {
	return o.EnableRegistration == nil || *o.EnableRegistration
}

// Secret is the client secret, from client_secret_path when set.
func (o OIDCProvider) Secret() string {
	if o.ClientSecretPath != "" {
		b, _ := os.ReadFile(o.ClientSecretPath)
		return strings.TrimSpace(string(b))
	}
	return o.ClientSecret
}

var idpIDRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,250}$`)

func (c *Config) validateUpstream(p *problems) {
	seen := map[string]bool{}
	for i := range c.OIDCProviders {
		o := &c.OIDCProviders[i]
		name := "oidc_providers[" + o.IdpID + "]"
		if o.IdpID == "" {
			name = "oidc_providers[" + strconv.Itoa(i) + "]"
		}
		if !o.applyPreset() {
			p.add("%s.preset %q is not one of github, google, gitlab, keycloak", name, o.Preset)
			continue
		}
		if o.IdpName == "" {
			o.IdpName = o.IdpID
		}
		if o.ClientAuthMethod == "" {
			o.ClientAuthMethod = ClientSecretBasic
		}
		if o.PKCEMethod == "" {
			o.PKCEMethod = "auto"
		}
		if o.UserProfileMethod == "" {
			o.UserProfileMethod = "auto"
		}
		if o.UserMappingProvider.Config.SubjectClaim == "" {
			o.UserMappingProvider.Config.SubjectClaim = "sub"
		}
		if len(o.Scopes) == 0 {
			o.Scopes = []string{"openid"}
		}
		switch {
		case !idpIDRE.MatchString(o.IdpID):
			p.add("%s.idp_id must be 1 to 250 letters, digits or . _ ~ -", name)
		case seen[o.IdpID]:
			p.add("%s.idp_id is declared twice", name)
		}
		seen[o.IdpID] = true
		if o.ClientID == "" {
			p.add("%s.client_id is required", name)
		}
		switch o.ClientAuthMethod {
		case ClientSecretBasic, ClientSecretPost:
			if o.ClientSecret == "" && o.ClientSecretPath == "" {
				p.add("%s: client_secret or client_secret_path is required with %s", name, o.ClientAuthMethod)
			}
		case "none":
		default:
			p.add("%s.client_auth_method must be client_secret_basic, client_secret_post or none", name)
		}
		if o.ClientSecretPath != "" {
			if _, err := os.Stat(o.ClientSecretPath); err != nil {
				p.add("%s.client_secret_path: %v", name, err)
			}
		}
		switch o.PKCEMethod {
		case "auto", "always", "never":
		default:
			p.add("%s.pkce_method must be auto, always or never", name)
		}
		switch o.UserProfileMethod {
		case "auto", "userinfo_endpoint":
		default:
			p.add("%s.user_profile_method must be auto or userinfo_endpoint", name)
		}
		if o.Discovers() {
			if !httpURL(o.Issuer) {
				p.add("%s.issuer must be an http(s) URL", name)
			}
		} else {
			for field, u := range map[string]string{"authorization_endpoint": o.AuthorizationEndpoint, "token_endpoint": o.TokenEndpoint,
				"userinfo_endpoint": o.UserinfoEndpoint} {
				if !httpURL(u) {
					p.add("%s.%s must be an http(s) URL when discover is false", name, field)
				}
			}
		}
		if m := o.UserMappingProvider.Module; m != "" && m != "synapse.handlers.oidc.JinjaOidcMappingProvider" {
			p.add("%s.user_mapping_provider.module %q is not supported (only the default Jinja mapping)", name, m)
		}
		for _, r := range o.AttributeRequirements {
			if r.Attribute == "" || (r.Value == "" && len(r.OneOf) == 0) {
				p.add("%s.attribute_requirements: each needs an attribute and a value or one_of", name)
			}
		}
		if o.IdpIcon != "" && !strings.HasPrefix(o.IdpIcon, "mxc://") {
			if u, err := url.Parse(o.IdpIcon); err != nil || u.Scheme != "https" {
				p.add("%s.idp_icon must be an mxc:// or https URL", name)
			}
		}
	}
	for _, prefix := range c.SSO.ClientWhitelist {
		if !httpURL(prefix) && !strings.Contains(prefix, "://") {
			p.add("sso.client_whitelist: %q is not a URL prefix", prefix)
		}
	}
	for i, m := range c.Modules {
		if m.Module != LDAPModule {
			p.add("modules[%d].module %q is not supported (registrar knows %s)", i, m.Module, LDAPModule)
			continue
		}
		l := m.Config
		if !l.Enabled {
			continue
		}
		if u, err := url.Parse(l.URI); err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
			p.add("modules[%d].config.uri %q must be an ldap:// or ldaps:// URL", i, l.URI)
		}
		if l.Base == "" || l.Attributes.UID == "" {
			p.add("modules[%d].config: base and attributes.uid are required", i)
		}
		if l.BindPasswordFile != "" {
			if _, err := os.Stat(l.BindPasswordFile); err != nil {
				p.add("modules[%d].config.bind_password_file: %v", i, err)
			}
		}
	}
}
