// Package config is registrar's configuration: option names and shapes
// follow Synapse's homeserver.yaml wherever Synapse has the option. A
// configuration is read from YAML over the defaults (set here, in one
// place), overridden from the environment, completed (options derived
// from others), validated section by section (every problem reported at
// once, each naming its option), and resolved (secrets read or generated,
// application services loaded).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"registrar/db"
	"registrar/impl/appservice"
	"registrar/impl/passwords"
	"registrar/impl/ratelimit"
	"registrar/impl/uia"
	"registrar/impl/web"
)

// Config is registrar's configuration.
type Config struct {
	ServerName    string     `yaml:"server_name"`
	PublicBaseURL string     `yaml:"public_baseurl"`
	Listeners     []Listener `yaml:"listeners"`
	// DataDirectory holds the SQLite database and generated secrets.
	DataDirectory string   `yaml:"data_directory"`
	Database      Database `yaml:"database"`
	// MaxRequestBodySize bounds every request body, in bytes.
	MaxRequestBodySize int64 `yaml:"max_request_body_size"`
	// MaxConnections bounds the client connections held open at once; idle
	// keep-alive connections are closed when it is reached. 0 picks 80% of
	// the process's file descriptor limit (at most 10000).
	MaxConnections int `yaml:"max_connections"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is json (one object per line, the default) or text
	// (slog's key=value lines).
	LogFormat string `yaml:"log_format"`
	// AccessLog writes one line per request when true.
	AccessLog bool `yaml:"access_log"`
	// EnableMetrics serves Prometheus metrics on the listeners of type
	// metrics (and on an http listener with a metrics resource), as Synapse.
	EnableMetrics bool `yaml:"enable_metrics"`
	// EnablePprof serves Go's profiler under /debug/pprof/ on the metrics
	// listeners.
	EnablePprof bool `yaml:"enable_pprof"`

	EnableRegistration                    bool     `yaml:"enable_registration"`
	EnableRegistrationWithoutVerification bool     `yaml:"enable_registration_without_verification"`
	AllowGuestAccess                      bool     `yaml:"allow_guest_access"`
	RegistrationRequiresToken             bool     `yaml:"registration_requires_token"`
	RegistrationsRequire3PID              []string `yaml:"registrations_require_3pid"`
	EnableRegistrationCaptcha             bool     `yaml:"enable_registration_captcha"`
	// Captcha holds the recaptcha_* options (top-level keys, as Synapse).
	Captcha                          Captcha `yaml:",inline"`
	AllowUnderscorePrefixedLocalpart bool    `yaml:"allow_underscore_prefixed_localpart"`
	// ForbiddenUsernames are regular expressions a new localpart may not
	// match (registration and availability checks).
	ForbiddenUsernames []ForbiddenUsername `yaml:"forbidden_usernames"`
	ServerNotices      ServerNotices       `yaml:"server_notices"`
	// RegistrationTerms are the policies of the m.login.terms stage, keyed
	// by policy ID; when empty the stage is not offered.
	RegistrationTerms map[string]uia.TermsPolicy `yaml:"registration_terms"`
	AllowDeactivation bool                       `yaml:"allow_deactivation"`
	// LegacyClientAPIs serves the registration APIs before r0: v1
	// (/_matrix/client/api/v1/register) and v2_alpha.
	LegacyClientAPIs bool `yaml:"legacy_client_apis"`
	// RequireApprovalForNewAccounts keeps accounts registered through
	// /register from logging in until an admin approves them.
	RequireApprovalForNewAccounts bool `yaml:"require_approval_for_new_accounts"`
	// MacaroonSecretKey seals secrets the server keeps between requests
	// (UIA session IDs). Generated under DataDirectory when neither it nor
	// MacaroonSecretKeyPath is set.
	MacaroonSecretKey     string `yaml:"macaroon_secret_key"`
	MacaroonSecretKeyPath string `yaml:"macaroon_secret_key_path"`
	// RegistrationSharedSecret enables /_synapse/admin/v1/register (what
	// register_new_matrix_user speaks); or read it from the _path file.
	RegistrationSharedSecret     string `yaml:"registration_shared_secret"`
	RegistrationSharedSecretPath string `yaml:"registration_shared_secret_path"`
	// AppServiceConfigFiles are application service registration files.
	AppServiceConfigFiles []string `yaml:"app_service_config_files"`

	BcryptRounds   int              `yaml:"bcrypt_rounds"`
	PasswordConfig passwords.Config `yaml:"password_config"`
	UIAuth         UIAuth           `yaml:"ui_auth"`

	// Rate limits, Synapse's rc_* settings; rc_registration_global,
	// rc_username_availability and rc_uia_start are registrar's own.
	RcRegistration              ratelimit.Rate          `yaml:"rc_registration"`
	RcRegistrationGlobal        GlobalRegistrationLimit `yaml:"rc_registration_global"`
	RcLogin                     LoginRateLimits         `yaml:"rc_login"`
	Rc3PIDValidation            ratelimit.Rate          `yaml:"rc_3pid_validation"`
	RcRegistrationTokenValidity ratelimit.Rate          `yaml:"rc_registration_token_validity"`
	RcUsernameAvailability      ratelimit.Rate          `yaml:"rc_username_availability"`
	// RcUIAStart charges each new User-Interactive Authentication session
	// to its client's address.
	RcUIAStart ratelimit.Rate `yaml:"rc_uia_start"`
	// Email configures SMTP for validating email addresses; when absent,
	// email verification is off.
	Email *Email `yaml:"email"`
	// SMSGateway sends SMS for validating phone numbers; when absent,
	// phone verification is off.
	SMSGateway                    *SMSGateway       `yaml:"sms_gateway"`
	AccountThreepidDelegates      ThreepidDelegates `yaml:"account_threepid_delegates"`
	DisableMsisdnRegistration     bool              `yaml:"disable_msisdn_registration"`
	Enable3PIDChanges             bool              `yaml:"enable_3pid_changes"`
	RequestTokenInhibit3PIDErrors bool              `yaml:"request_token_inhibit_3pid_errors"`
	NextLinkDomainWhitelist       *[]string         `yaml:"next_link_domain_whitelist"`
	AllowedLocal3PIDs             []AllowedThreepid `yaml:"allowed_local_3pids"`

	// Redis shares the rate limits of every instance (Synapse's redis
	// section); without it each process limits on its own.
	Redis Redis `yaml:"redis"`

	// TrustedProxies are the CIDRs whose X-Forwarded-For header names the
	// client; from anyone else the header is ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// LoginViaExistingSession lets a logged-in client make a single-use
	// token for another client to log in with (Synapse's option).
	LoginViaExistingSession LoginViaExistingSession `yaml:"login_via_existing_session"`

	// OAuth is the OAuth 2.0 API (Matrix v1.15+): registrar as the
	// authorisation server, beside the legacy API.
	OAuth OAuth `yaml:"oauth"`
	// Clients are confidential clients declared here (MAS's static
	// clients): a homeserver introspecting tokens.
	Clients []Client `yaml:"clients"`
	// Matrix is the homeserver registrar is the authentication service
	// of, when set: it introspects registrar's tokens and registrar
	// provisions its users and devices.
	Matrix Matrix `yaml:"matrix"`

	// OIDCProviders are the upstream identity providers people may sign in
	// with (Synapse's oidc_providers).
	OIDCProviders []OIDCProvider `yaml:"oidc_providers"`
	// SSO is the legacy API's single sign-on (Synapse's sso section).
	SSO SSO `yaml:"sso"`
	// Modules are Synapse's modules; registrar knows matrix-synapse-ldap3's
	// LDAP password provider.
	Modules []Module `yaml:"modules"`

	// SecondFactors are the second factors (TOTP, passkeys) people may
	// enrol, and who must.
	SecondFactors SecondFactors `yaml:"second_factors"`

	// Branding is how the pages present the service (MAS's branding
	// section): its name, logo, colour, policy, terms and imprint.
	Branding web.Branding `yaml:"branding"`
	// CustomTemplateDirectory holds page templates (NAME.html) that
	// replace the built-in ones (Synapse's option); they are checked when
	// the server starts.
	CustomTemplateDirectory string `yaml:"custom_template_directory"`
	// IPRangeBlacklist are the networks registrar's own fetches (client
	// and branding logos) may not reach, IPRangeWhitelist the exceptions
	// (Synapse's options; unset blocks loopback, private, link-local and
	// reserved networks).
	IPRangeBlacklist []string `yaml:"ip_range_blacklist"`
	IPRangeWhitelist []string `yaml:"ip_range_whitelist"`

	// UserIPsMaxAge is how long the addresses and user agents each device
	// was used from are kept (whois); null keeps them for ever.
	UserIPsMaxAge *Duration `yaml:"user_ips_max_age"`
	// UserTypes are the user types beyond bot and support that the admin
	// API accepts (Synapse's user_types).
	UserTypes UserTypes `yaml:"user_types"`

	SessionLifetime                   *Duration `yaml:"session_lifetime"`
	RefreshableAccessTokenLifetime    *Duration `yaml:"refreshable_access_token_lifetime"`
	RefreshTokenLifetime              *Duration `yaml:"refresh_token_lifetime"`
	NonrefreshableAccessTokenLifetime *Duration `yaml:"nonrefreshable_access_token_lifetime"`

	built    built
	resolved resolved
}

// built holds what validation compiled (patterns, networks).
type built struct {
	forbidden      []compiledForbidden
	allowed3PIDs   []compiledAllowed
	trustedProxies []*net.IPNet
}

// resolved holds what Resolve read from outside the configuration.
type resolved struct {
	done          bool
	secretKey     []byte
	sharedSecret  []byte
	captchaSecret string
	appServices   []*appservice.Service
}

// Listener is one HTTP listener (Synapse's listeners entry): type http
// (the default) serves the client API, type metrics serves Prometheus
// metrics (and pprof when enabled) and nothing else.
type Listener struct {
	Port          int      `yaml:"port"`
	BindAddresses []string `yaml:"bind_addresses"`
	Type          string   `yaml:"type"`
	TLS           bool     `yaml:"tls"`
	XForwarded    bool     `yaml:"x_forwarded"`
	// Resources are what an http listener serves (Synapse's); a
	// "metrics" name adds /_synapse/metrics to it.
	Resources []ListenerResource `yaml:"resources"`
}

// ListenerResource is one entry of a listener's resources.
type ListenerResource struct {
	Names    []string `yaml:"names"`
	Compress bool     `yaml:"compress"`
}

// Listener types.
const (
	ListenerHTTP    = "http"
	ListenerMetrics = "metrics"
)

// IsMetrics reports whether l serves only metrics.
func (l Listener) IsMetrics() bool { return l.Type == ListenerMetrics }

// ServesMetrics reports whether an http listener also serves
// /_synapse/metrics (a metrics resource).
func (l Listener) ServesMetrics() bool {
	for _, r := range l.Resources {
		for _, n := range r.Names {
			if n == "metrics" {
				return true
			}
		}
	}
	return false
}

// Addresses are the host:port addresses the listener binds.
func (l Listener) Addresses() []string {
	hosts := l.BindAddresses
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = net.JoinHostPort(h, strconv.Itoa(l.Port))
	}
	return out
}

// Database selects the store (Synapse's database section): name sqlite3
// (the default) with args.database the file, or psycopg2 (postgres,
// postgresql) with libpq's connection arguments or one args.dsn.
type Database struct {
	Name string       `yaml:"name"`
	Args DatabaseArgs `yaml:"args"`
}

// DatabaseArgs are Synapse's database.args.
type DatabaseArgs struct {
	// Database is SQLite's file, or PostgreSQL's database name.
	Database string `yaml:"database"`
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	Sslmode  string `yaml:"sslmode"`
	// CpMin and CpMax bound the connection pool.
	CpMin int `yaml:"cp_min"`
	CpMax int `yaml:"cp_max"`
	// DSN is a whole connection string or URL instead of the fields.
	DSN string `yaml:"dsn"`
	// Keepalives* are Synapse's TCP keepalive options, accepted so that a
	// Synapse database section works as is; the driver's defaults apply.
	KeepalivesIdle     int `yaml:"keepalives_idle"`
	KeepalivesInterval int `yaml:"keepalives_interval"`
	KeepalivesCount    int `yaml:"keepalives_count"`
}

// ServerNotices reserves the server-notices user's localpart.
type ServerNotices struct {
	SystemMXIDLocalpart string `yaml:"system_mxid_localpart"`
}

// ForbiddenUsername is a pattern new localparts may not match. In YAML it is
// a plain regular expression (refused with M_INVALID_USERNAME) or
// {pattern: ..., exclusive: true} (refused with M_EXCLUSIVE, "reserved").
type ForbiddenUsername struct {
	Pattern   string `yaml:"pattern"`
	Exclusive bool   `yaml:"exclusive"`
}

// UnmarshalYAML accepts a plain string or the mapping form.
func (f *ForbiddenUsername) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		f.Pattern = n.Value
		return nil
	}
	type plain ForbiddenUsername
	return n.Decode((*plain)(f))
}

type compiledForbidden struct {
	re        *regexp.Regexp
	exclusive bool
}

// LoginViaExistingSession is Synapse's login_via_existing_session:
// POST /login/get_token and m.login.token.
type LoginViaExistingSession struct {
	Enabled bool `yaml:"enabled"`
	// RequireUIAuth re-prompts for the password before each token.
	RequireUIAuth bool `yaml:"require_ui_auth"`
	// TokenTimeout is how long a token stays valid.
	TokenTimeout Duration `yaml:"token_timeout"`
}

// Redis is Synapse's redis section.
type Redis struct {
	Enabled  bool   `yaml:"enabled"`
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	Password string `yaml:"password"`
	Dbid     int    `yaml:"dbid"`
}

// Address is host:port.
func (r Redis) Address() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// UIAuth tunes User-Interactive Authentication (Synapse's ui_auth).
type UIAuth struct {
	// SessionLifetime is how long a UIA session lives (default 48h).
	SessionLifetime Duration `yaml:"session_lifetime"`
	// MaxSessionsPerAddress caps the stored sessions in progress (no flow
	// complete yet) of one client address, and of one logged-in user for
	// their own sessions; 0 means no cap.
	MaxSessionsPerAddress int `yaml:"max_sessions_per_address"`
}

// OAuth configures the OAuth 2.0 API.
type OAuth struct {
	// Enabled serves the OAuth 2.0 API (auth_metadata and its endpoints).
	Enabled bool `yaml:"enabled"`
	// Issuer is the authorisation server's identifier; public_baseurl by
	// default.
	Issuer string `yaml:"issuer"`
	// LegacyAPI keeps the legacy login and registration API (UIA /register,
	// /login, /refresh) beside it.
	LegacyAPI bool `yaml:"legacy_api"`
	// AccessTokenLifetime is how long an OAuth access token lives before
	// it is refreshed.
	AccessTokenLifetime Duration `yaml:"access_token_lifetime"`
	// CodeLifetime is how long an authorisation code may be exchanged.
	CodeLifetime Duration `yaml:"code_lifetime"`
	// DeviceCodeLifetime is how long a device authorisation waits for the
	// user; DevicePollInterval the least time between polls.
	DeviceCodeLifetime Duration `yaml:"device_code_lifetime"`
	DevicePollInterval Duration `yaml:"device_poll_interval"`
	// BrowserSessionLifetime is how long a sign-in in the browser lasts.
	BrowserSessionLifetime Duration `yaml:"browser_session_lifetime"`
	// RcClientRegistration, RcDeviceAuthorization and RcUserCode limit
	// client registrations, device authorisations and wrong user codes
	// per client address.
	RcClientRegistration  ratelimit.Rate `yaml:"rc_client_registration"`
	RcDeviceAuthorization ratelimit.Rate `yaml:"rc_device_authorization"`
	RcUserCode            ratelimit.Rate `yaml:"rc_user_code"`
	// RcAuthorization limits authorisation requests per client address.
	RcAuthorization ratelimit.Rate `yaml:"rc_authorization"`
	// UnusedClientLifetime is how long a registered client that never
	// completed an authorisation is kept; MaxUnusedClientsPerAddress caps
	// how many such clients one address may have registered.
	UnusedClientLifetime       Duration `yaml:"unused_client_lifetime"`
	MaxUnusedClientsPerAddress int      `yaml:"max_unused_clients_per_address"`
}

// UserTypes is Synapse's user_types.
type UserTypes struct {
	ExtraUserTypes []string `yaml:"extra_user_types"`
}

// ValidUserType reports whether t is bot, support or an extra user type.
func (c *Config) ValidUserType(t string) bool {
	return t == "bot" || t == "support" || slices.Contains(c.UserTypes.ExtraUserTypes, t)
}

// LoginRateLimits is Synapse's rc_login.
type LoginRateLimits struct {
	Address        ratelimit.Rate `yaml:"address"`
	Account        ratelimit.Rate `yaml:"account"`
	FailedAttempts ratelimit.Rate `yaml:"failed_attempts"`
}

// GlobalRegistrationLimit caps registrations across all addresses
// (rc_registration_global); 0 means no cap.
type GlobalRegistrationLimit struct {
	PerHour int `yaml:"per_hour"`
	PerDay  int `yaml:"per_day"`
}

// Default returns the configuration used when no file is given: loopback
// only, registration closed, a ./data directory.
func Default() Config {
	return Config{
		ServerName:         "localhost",
		Listeners:          []Listener{{Port: 8008, BindAddresses: []string{"127.0.0.1"}, Type: "http"}},
		DataDirectory:      "data",
		Database:           Database{Name: "sqlite3"},
		MaxRequestBodySize: 64 << 10,
		LogLevel:           "info",
		LogFormat:          "json",
		AccessLog:          true,
		AllowDeactivation:  true,
		Enable3PIDChanges:  true,
		BcryptRounds:       12,
		PasswordConfig: passwords.Config{
			Enabled:   true,
			Algorithm: "argon2id",
			Argon2:    passwords.Argon2Config{MemoryKiB: 19456, Iterations: 2, Parallelism: 1},
		},
		UIAuth: UIAuth{SessionLifetime: Duration{48 * time.Hour}, MaxSessionsPerAddress: 50},
		Captcha: Captcha{
			RecaptchaSiteverifyAPI: "https://www.recaptcha.net/recaptcha/api/siteverify",
			RecaptchaAPIJSURL:      "https://www.recaptcha.net/recaptcha/api.js",
			RecaptchaSitekeyClass:  "g-recaptcha",
		},
		RcRegistration: ratelimit.Rate{PerSecond: 0.17, BurstCount: 3},
		RcLogin: LoginRateLimits{
			Address:        ratelimit.Rate{PerSecond: 0.003, BurstCount: 5},
			Account:        ratelimit.Rate{PerSecond: 0.003, BurstCount: 5},
			FailedAttempts: ratelimit.Rate{PerSecond: 0.17, BurstCount: 3},
		},
		Rc3PIDValidation:               ratelimit.Rate{PerSecond: 0.003, BurstCount: 5},
		RcRegistrationTokenValidity:    ratelimit.Rate{PerSecond: 0.1, BurstCount: 5},
		RcUsernameAvailability:         ratelimit.Rate{PerSecond: 0.5, BurstCount: 10},
		RcUIAStart:                     ratelimit.Rate{PerSecond: 0.5, BurstCount: 20},
		RefreshableAccessTokenLifetime: &Duration{5 * time.Minute},
		UserIPsMaxAge:                  &Duration{28 * 24 * time.Hour},
		OAuth: OAuth{Enabled: true, LegacyAPI: true, AccessTokenLifetime: Duration{5 * time.Minute},
			CodeLifetime: Duration{10 * time.Minute}, DeviceCodeLifetime: Duration{30 * time.Minute},
			DevicePollInterval: Duration{5 * time.Second}, BrowserSessionLifetime: Duration{24 * time.Hour},
			RcClientRegistration:  ratelimit.Rate{PerSecond: 0.1, BurstCount: 10},
			RcDeviceAuthorization: ratelimit.Rate{PerSecond: 0.1, BurstCount: 10},
			RcUserCode:            ratelimit.Rate{PerSecond: 0.05, BurstCount: 5},
			RcAuthorization:       ratelimit.Rate{PerSecond: 0.2, BurstCount: 30},
			UnusedClientLifetime:  Duration{24 * time.Hour}, MaxUnusedClientsPerAddress: 50},
		Redis:                   Redis{Host: "localhost", Port: 6379},
		LoginViaExistingSession: LoginViaExistingSession{RequireUIAuth: true, TokenTimeout: Duration{5 * time.Minute}},
	}
}

// Load reads the YAML file (when path is not empty) over the defaults,
// applies environment overrides and prepares the result. Errors are one
// line naming the option.
func Load(path string, getenv func(string) string) (Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		if err := decodeYAML(data, &cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(reflect.ValueOf(&cfg).Elem(), EnvPrefix, getenv); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Prepare(); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// decodeYAML reads data over cfg, refusing unknown options.
func decodeYAML(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return errors.New(oneLine(err.Error()))
	}
	return nil
}

// Prepare completes, validates and resolves the configuration; it is
// idempotent, so a configuration built in code can be handed over as is.
func (c *Config) Prepare() error {
	c.complete()
	if err := c.Validate(); err != nil {
		return err
	}
	return c.resolve()
}

// complete sets the options whose defaults derive from other options.
func (c *Config) complete() {
	if c.PublicBaseURL == "" && validServerName(c.ServerName) {
		c.PublicBaseURL = "http://" + c.ServerName + "/"
		if l := c.firstListener(); l != nil && l.Port != 80 {
			host := c.ServerName
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			c.PublicBaseURL = fmt.Sprintf("http://%s:%d/", host, l.Port)
		}
	}
	if c.PublicBaseURL != "" && !strings.HasSuffix(c.PublicBaseURL, "/") {
		c.PublicBaseURL += "/"
	}
	if c.OAuth.Issuer == "" {
		c.OAuth.Issuer = c.PublicBaseURL
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = defaultMaxConnections()
	}
	if c.Email != nil {
		c.Email.complete()
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// firstListener is the first client (http) listener, nil for none.
func (c *Config) firstListener() *Listener {
	for i := range c.Listeners {
		if !c.Listeners[i].IsMetrics() {
			return &c.Listeners[i]
		}
	}
	return nil
}

// ListenAddress is the first address of the first client listener.
func (c *Config) ListenAddress() string {
	return c.firstListener().Addresses()[0]
}

// StoreOptions are db.Open's options from the database section.
func (c *Config) StoreOptions() db.Options {
	return db.Options{MaxOpenConns: c.Database.Args.CpMax, MinIdleConns: c.Database.Args.CpMin}
}

// UsesPostgres reports whether the database is PostgreSQL.
func (c *Config) UsesPostgres() bool {
	switch c.Database.Name {
	case "psycopg2", "postgres", "postgresql":
		return true
	}
	return false
}

// DatabaseDSN is what db.Open takes: the SQLite file (args.database, or
// registrar.db under the data directory), or a PostgreSQL connection
// string (args.dsn, or one built from the connection arguments).
func (c *Config) DatabaseDSN() string {
	a := c.Database.Args
	if !c.UsesPostgres() {
		if a.Database != "" {
			return a.Database
		}
		return filepath.Join(c.DataDirectory, "registrar.db")
	}
	if a.DSN != "" {
		return a.DSN
	}
	host := a.Host
	if host == "" {
		host = "localhost"
	}
	parts := []string{"host=" + quoteDSN(host)}
	for _, kv := range [][2]string{{"port", portString(a.Port)}, {"user", a.User}, {"password", a.Password},
		{"dbname", a.Database}, {"sslmode", a.Sslmode}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+quoteDSN(kv[1]))
		}
	}
	return strings.Join(parts, " ")
}

// DatabaseRedacted is the DSN without its password, for logs.
func (c *Config) DatabaseRedacted() string {
	if !c.UsesPostgres() {
		return c.DatabaseDSN()
	}
	a := c.Database.Args
	if a.DSN != "" {
		return redactURL(a.DSN)
	}
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s", a.Host, a.Port, a.Database, a.User)
}

func portString(p int) string {
	if p == 0 {
		return ""
	}
	return strconv.Itoa(p)
}

// quoteDSN quotes a libpq key=value value.
func quoteDSN(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// HasVerification reports whether registration requires a verification
// stage (captcha, registration token or 3PID).
func (c *Config) HasVerification() bool {
	return c.RegistrationRequiresToken || c.EnableRegistrationCaptcha || len(c.RegistrationsRequire3PID) > 0
}

// ForbiddenUsername reports whether a localpart matches a
// forbidden_usernames pattern, and whether that pattern is exclusive.
func (c *Config) ForbiddenUsername(localpart string) (forbidden, exclusive bool) {
	for _, f := range c.built.forbidden {
		if f.re.MatchString(localpart) {
			return true, f.exclusive
		}
	}
	return false, false
}

// TrustedProxyNetworks are the parsed trusted_proxies.
func (c *Config) TrustedProxyNetworks() []*net.IPNet { return c.built.trustedProxies }

// SecretKey is the resolved macaroon secret key.
func (c *Config) SecretKey() []byte { return c.resolved.secretKey }

// SharedSecret is the resolved registration shared secret, if any.
func (c *Config) SharedSecret() []byte { return c.resolved.sharedSecret }

// CaptchaSecret is the resolved recaptcha private key.
func (c *Config) CaptchaSecret() string { return c.resolved.captchaSecret }

// AppServices are the loaded application services.
func (c *Config) AppServices() []*appservice.Service { return c.resolved.appServices }
