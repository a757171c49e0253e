package impl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"registrar/impl/passwords"
	"registrar/impl/secrets"
	"registrar/impl/uia"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is registrar's configuration. Option names and shapes follow
// Synapse's homeserver.yaml wherever Synapse has the option.
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
	// AccessLog writes one line per request when true.
	AccessLog bool `yaml:"access_log"`

	EnableRegistration                    bool     `yaml:"enable_registration"`
	EnableRegistrationWithoutVerification bool     `yaml:"enable_registration_without_verification"`
	AllowGuestAccess                      bool     `yaml:"allow_guest_access"`
	RegistrationRequiresToken             bool     `yaml:"registration_requires_token"`
	RegistrationsRequire3PID              []string `yaml:"registrations_require_3pid"`
	EnableRegistrationCaptcha             bool     `yaml:"enable_registration_captcha"`
	// Captcha holds the recaptcha_* options (top-level keys, as Synapse).
	Captcha                          CaptchaConfig `yaml:",inline"`
	AllowUnderscorePrefixedLocalpart bool          `yaml:"allow_underscore_prefixed_localpart"`
	// ForbiddenUsernames are regular expressions a new localpart may not
	// match (registration and availability checks).
	ForbiddenUsernames []ForbiddenUsername `yaml:"forbidden_usernames"`
	ServerNotices      ServerNotices       `yaml:"server_notices"`
	// RegistrationTerms are the policies of the m.login.terms stage, keyed
	// by policy ID; when empty the stage is not offered.
	RegistrationTerms map[string]uia.TermsPolicy `yaml:"registration_terms"`
	AllowDeactivation bool                       `yaml:"allow_deactivation"`
	// RequireApprovalForNewAccounts keeps accounts registered through
	// /register from logging in until an admin approves them.
	RequireApprovalForNewAccounts bool `yaml:"require_approval_for_new_accounts"`
	// MacaroonSecretKey seals secrets the server keeps between requests
	// (passwords of pending UIA sessions). Generated under DataDirectory
	// when neither it nor MacaroonSecretKeyPath is set.
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
	UIAuth         UIAuthConfig     `yaml:"ui_auth"`

	// Rate limits, Synapse's rc_* settings; rc_registration_global and
	// rc_username_availability are registrar's own.
	RcRegistration              RateLimit               `yaml:"rc_registration"`
	RcRegistrationGlobal        GlobalRegistrationLimit `yaml:"rc_registration_global"`
	RcLogin                     LoginRateLimits         `yaml:"rc_login"`
	Rc3PIDValidation            RateLimit               `yaml:"rc_3pid_validation"`
	RcRegistrationTokenValidity RateLimit               `yaml:"rc_registration_token_validity"`
	RcUsernameAvailability      RateLimit               `yaml:"rc_username_availability"`
	// RcUIAStart charges each new User-Interactive Authentication session
	// to its client's address.
	RcUIAStart RateLimit `yaml:"rc_uia_start"`
	// Email configures SMTP for validating email addresses; when absent,
	// email verification is off.
	Email *EmailConfig `yaml:"email"`
	// SMSGateway sends SMS for validating phone numbers; when absent,
	// phone verification is off.
	SMSGateway                    *SMSGatewayConfig `yaml:"sms_gateway"`
	AccountThreepidDelegates      ThreepidDelegates `yaml:"account_threepid_delegates"`
	DisableMsisdnRegistration     bool              `yaml:"disable_msisdn_registration"`
	Enable3PIDChanges             bool              `yaml:"enable_3pid_changes"`
	RequestTokenInhibit3PIDErrors bool              `yaml:"request_token_inhibit_3pid_errors"`
	NextLinkDomainWhitelist       *[]string         `yaml:"next_link_domain_whitelist"`
	AllowedLocal3PIDs             []AllowedThreepid `yaml:"allowed_local_3pids"`

	// TrustedProxies are the CIDRs whose X-Forwarded-For header names the
	// client; from anyone else the header is ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`

	SessionLifetime                   *Duration `yaml:"session_lifetime"`
	RefreshableAccessTokenLifetime    *Duration `yaml:"refreshable_access_token_lifetime"`
	RefreshTokenLifetime              *Duration `yaml:"refresh_token_lifetime"`
	NonrefreshableAccessTokenLifetime *Duration `yaml:"nonrefreshable_access_token_lifetime"`

	// secretKey is MacaroonSecretKey resolved by Load.
	secretKey []byte
	// sharedSecret is the resolved registration shared secret.
	sharedSecret []byte
	// appServices are the loaded AppServiceConfigFiles.
	appServices []*appService
	// captchaSecret is the resolved recaptcha private key.
	captchaSecret string
	// trustedProxies are the parsed TrustedProxies.
	trustedProxies []*net.IPNet
	// forbidden holds the compiled ForbiddenUsernames.
	forbidden []compiledForbidden
}

// Listener is one HTTP listener (Synapse's listeners entry).
type Listener struct {
	Port          int      `yaml:"port"`
	BindAddresses []string `yaml:"bind_addresses"`
	Type          string   `yaml:"type"`
	TLS           bool     `yaml:"tls"`
	XForwarded    bool     `yaml:"x_forwarded"`
}

// Database selects the store (Synapse's database section).
type Database struct {
	Name string            `yaml:"name"`
	Args map[string]string `yaml:"args"`
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

// UIAuthConfig tunes User-Interactive Authentication.
type UIAuthConfig struct {
	// SessionLifetime is how long a UIA session lives (default 48h).
	SessionLifetime Duration `yaml:"session_lifetime"`
	// MaxSessionsPerAddress caps the sessions in progress (with a stage
	// completed) of one client address; 0 means no cap.
	MaxSessionsPerAddress int `yaml:"max_sessions_per_address"`
}

// Duration is a YAML duration: a Go/Synapse string ("5m", "48h", "7d") or
// an integer of milliseconds.
type Duration struct{ time.Duration }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(ms) * time.Millisecond, nil
	}
	units := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour, 'y': 365 * 24 * time.Hour}
	if len(s) > 1 {
		if u, ok := units[s[len(s)-1]]; ok {
			n, err := strconv.ParseFloat(s[:len(s)-1], 64)
			if err == nil {
				return time.Duration(n * float64(u)), nil
			}
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 5m, 48h, 7d or milliseconds)", s)
	}
	return d, nil
}

// DefaultConfig returns the configuration used when no file is given:
// loopback only, registration closed, a ./data directory.
func DefaultConfig() Config {
	return Config{
		ServerName:         "localhost",
		Listeners:          []Listener{{Port: 8008, BindAddresses: []string{"127.0.0.1"}, Type: "http"}},
		DataDirectory:      "data",
		Database:           Database{Name: "sqlite3"},
		MaxRequestBodySize: 64 << 10,
		LogLevel:           "info",
		AccessLog:          true,
		AllowDeactivation:  true,
		Enable3PIDChanges:  true,
		BcryptRounds:       12,
		PasswordConfig: passwords.Config{
			Enabled:   true,
			Algorithm: "argon2id",
			Argon2:    passwords.Argon2Config{MemoryKiB: 19456, Iterations: 2, Parallelism: 1},
		},
		UIAuth: UIAuthConfig{SessionLifetime: Duration{48 * time.Hour}, MaxSessionsPerAddress: 50},
		Captcha: CaptchaConfig{
			RecaptchaSiteverifyAPI: "https://www.recaptcha.net/recaptcha/api/siteverify",
			RecaptchaAPIJSURL:      "https://www.recaptcha.net/recaptcha/api.js",
			RecaptchaSitekeyClass:  "g-recaptcha",
		},
		RcRegistration: RateLimit{PerSecond: 0.17, BurstCount: 3},
		RcLogin: LoginRateLimits{
			Address:        RateLimit{PerSecond: 0.003, BurstCount: 5},
			Account:        RateLimit{PerSecond: 0.003, BurstCount: 5},
			FailedAttempts: RateLimit{PerSecond: 0.17, BurstCount: 3},
		},
		Rc3PIDValidation:               RateLimit{PerSecond: 0.003, BurstCount: 5},
		RcRegistrationTokenValidity:    RateLimit{PerSecond: 0.1, BurstCount: 5},
		RcUsernameAvailability:         RateLimit{PerSecond: 0.5, BurstCount: 10},
		RcUIAStart:                     RateLimit{PerSecond: 0.5, BurstCount: 20},
		RefreshableAccessTokenLifetime: &Duration{5 * time.Minute},
	}
}

// EnvPrefix is the prefix of environment overrides: REGISTRAR_SERVER_NAME
// sets server_name, REGISTRAR_PASSWORD_CONFIG__ENABLED sets
// password_config.enabled (nested keys joined by a double underscore).
const EnvPrefix = "REGISTRAR_"

// LoadConfig reads the YAML file (when path is not empty) over the
// defaults, applies environment overrides, validates, and resolves secrets.
// Errors are one line naming the option.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %s", path, oneLine(err.Error()))
		}
	}
	if err := applyEnv(reflect.ValueOf(&cfg).Elem(), EnvPrefix, getenv); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := cfg.resolveSecrets(); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// applyEnv sets scalar fields from PREFIX_<YAML_KEY> variables, recursing
// into nested structs with a double underscore.
func applyEnv(v reflect.Value, prefix string, getenv func(string) string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" && opts == "inline" && f.Type.Kind() == reflect.Struct {
			if err := applyEnv(v.Field(i), prefix, getenv); err != nil {
				return err
			}
			continue
		}
		if key == "" || key == "-" || !f.IsExported() {
			continue
		}
		name := prefix + strings.ToUpper(key)
		fv := v.Field(i)
		if f.Type == reflect.TypeOf(Duration{}) || f.Type == reflect.TypeOf(&Duration{}) {
			if s := getenv(name); s != "" {
				d, err := parseDuration(s)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if fv.Kind() == reflect.Pointer {
					fv.Set(reflect.ValueOf(&Duration{d}))
				} else {
					fv.Set(reflect.ValueOf(Duration{d}))
				}
			}
			continue
		}
		switch fv.Kind() {
		case reflect.Struct:
			if err := applyEnv(fv, name+"__", getenv); err != nil {
				return err
			}
			continue
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint8, reflect.Uint32:
		default:
			continue
		}
		s := getenv(name)
		if s == "" {
			continue
		}
		switch fv.Kind() {
		case reflect.String:
			fv.SetString(s)
		case reflect.Bool:
			b, err := strconv.ParseBool(s)
			if err != nil {
				return fmt.Errorf("%s: %q is not a boolean", name, s)
			}
			fv.SetBool(b)
		case reflect.Int, reflect.Int64:
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not an integer", name, s)
			}
			fv.SetInt(n)
		default:
			n, err := strconv.ParseUint(s, 10, fv.Type().Bits())
			if err != nil {
				return fmt.Errorf("%s: %q is not a non-negative integer", name, s)
			}
			fv.SetUint(n)
		}
	}
	return nil
}

var serverNameRE = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,255})(:[0-9]{1,5})?$`)

// Validate checks the configuration and compiles what it needs at run
// time. Each error names the option to change.
func (c *Config) Validate() error {
	if !serverNameRE.MatchString(c.ServerName) {
		return fmt.Errorf("server_name %q is not a valid server name (hostname[:port])", c.ServerName)
	}
	if c.PublicBaseURL == "" {
		c.PublicBaseURL = "http://" + c.ServerName + "/"
		if l := c.firstListener(); l != nil && l.Port != 80 {
			host := c.ServerName
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			c.PublicBaseURL = fmt.Sprintf("http://%s:%d/", host, l.Port)
		}
	}
	u, err := url.Parse(c.PublicBaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("public_baseurl %q must be an absolute http(s) URL", c.PublicBaseURL)
	}
	if !strings.HasSuffix(c.PublicBaseURL, "/") {
		c.PublicBaseURL += "/"
	}
	if len(c.Listeners) == 0 {
		return errors.New("listeners: at least one listener is required")
	}
	for i, l := range c.Listeners {
		if l.Port < 0 || l.Port > 65535 {
			return fmt.Errorf("listeners[%d].port %d is out of range", i, l.Port)
		}
		if l.TLS {
			return fmt.Errorf("listeners[%d].tls: TLS is not supported; terminate TLS in a reverse proxy", i)
		}
		for _, a := range l.BindAddresses {
			if net.ParseIP(a) == nil && a != "localhost" {
				return fmt.Errorf("listeners[%d].bind_addresses: %q is not an IP address", i, a)
			}
		}
	}
	if c.DataDirectory == "" {
		return errors.New("data_directory must not be empty")
	}
	switch c.Database.Name {
	case "sqlite3", "sqlite":
	case "psycopg2", "postgres", "postgresql":
		return fmt.Errorf("database.name %q: PostgreSQL is not supported yet; use sqlite3", c.Database.Name)
	default:
		return fmt.Errorf("database.name %q is unknown; use sqlite3", c.Database.Name)
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = defaultMaxConnections()
	}
	if c.MaxConnections < 2 {
		return fmt.Errorf("max_connections %d is too small (at least 2; 0 derives it from the file descriptor limit)", c.MaxConnections)
	}
	if c.MaxRequestBodySize < 1024 {
		return fmt.Errorf("max_request_body_size %d is too small (at least 1024 bytes)", c.MaxRequestBodySize)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q must be debug, info, warn or error", c.LogLevel)
	}
	for _, m := range c.RegistrationsRequire3PID {
		if m != "email" && m != "msisdn" {
			return fmt.Errorf("registrations_require_3pid: %q must be email or msisdn", m)
		}
	}
	for _, m := range c.RegistrationsRequire3PID {
		if m == "email" && c.Email == nil {
			return errors.New("registrations_require_3pid: email needs the email section (SMTP) configured")
		}
		if m == "msisdn" && ((c.SMSGateway == nil && c.AccountThreepidDelegates.Msisdn == "") || c.DisableMsisdnRegistration) {
			return errors.New("registrations_require_3pid: msisdn needs sms_gateway or account_threepid_delegates.msisdn, and disable_msisdn_registration false")
		}
	}
	if c.Email != nil {
		c.Email.applyDefaults()
		if _, err := mailAddress(c.Email.NotifFrom); err != nil {
			return errors.New("email.notif_from must be an email address, e.g. 'Matrix <noreply@example.org>'")
		}
		if _, _, _, _, _, err := c.Email.smtpTarget(); err != nil {
			return err
		}
	}
	if c.SMSGateway != nil {
		if u, err := url.Parse(c.SMSGateway.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return errors.New("sms_gateway.url must be an http(s) URL")
		}
	}
	if d := c.AccountThreepidDelegates.Msisdn; d != "" {
		if u, err := url.Parse(d); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("account_threepid_delegates.msisdn must be the http(s) base URL of an identity server")
		}
		if c.SMSGateway != nil {
			return errors.New("sms_gateway and account_threepid_delegates.msisdn are both set; keep one")
		}
	}
	for i := range c.AllowedLocal3PIDs {
		a := &c.AllowedLocal3PIDs[i]
		re, err := regexp.Compile(a.Pattern)
		if err != nil || (a.Medium != "email" && a.Medium != "msisdn") {
			return fmt.Errorf("allowed_local_3pids[%d]: needs medium email or msisdn and a valid pattern", i)
		}
		a.re = re
	}
	if c.EnableRegistrationCaptcha {
		cc := c.Captcha
		if cc.RecaptchaPublicKey == "" || (cc.RecaptchaPrivateKey == "") == (cc.RecaptchaPrivateKeyPath == "") {
			return errors.New("enable_registration_captcha needs recaptcha_public_key and one of recaptcha_private_key or recaptcha_private_key_path")
		}
		if u, err := url.Parse(cc.RecaptchaSiteverifyAPI); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("recaptcha_siteverify_api %q must be an http(s) URL", cc.RecaptchaSiteverifyAPI)
		}
	}
	if c.EnableRegistration && !c.EnableRegistrationWithoutVerification && !c.hasVerification() {
		return errors.New("enable_registration is true but no verification is required (captcha, registration token or 3PID); " +
			"set enable_registration_without_verification: true to run an open registration server anyway")
	}
	c.forbidden = nil
	for i, f := range c.ForbiddenUsernames {
		re, err := regexp.Compile(f.Pattern)
		if err != nil {
			return fmt.Errorf("forbidden_usernames[%d]: %q is not a valid regular expression", i, f.Pattern)
		}
		c.forbidden = append(c.forbidden, compiledForbidden{re: re, exclusive: f.Exclusive})
	}
	for id, p := range c.RegistrationTerms {
		if !opaqueIDRE.MatchString(id) || !opaqueIDRE.MatchString(p.Version) {
			return fmt.Errorf("registration_terms.%s: policy IDs and versions must be 1-255 of [0-9A-Za-z._~-]", id)
		}
		if len(p.Translations) == 0 {
			return fmt.Errorf("registration_terms.%s: give at least one language with name and url", id)
		}
		for lang, d := range p.Translations {
			u, err := url.Parse(d.URL)
			if d.Name == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				return fmt.Errorf("registration_terms.%s.%s: needs a name and an http(s) url", id, lang)
			}
		}
	}
	if c.BcryptRounds < 4 || c.BcryptRounds > 31 {
		return fmt.Errorf("bcrypt_rounds %d must be between 4 and 31", c.BcryptRounds)
	}
	switch c.PasswordConfig.Algorithm {
	case "argon2id":
		a := c.PasswordConfig.Argon2
		if a.MemoryKiB < 8*uint32(max(a.Parallelism, 1)) || a.Iterations < 1 || a.Parallelism < 1 {
			return errors.New("password_config.argon2: memory_kib, iterations and parallelism must be positive (memory_kib >= 8*parallelism)")
		}
	case "bcrypt":
	default:
		return fmt.Errorf("password_config.algorithm %q must be argon2id or bcrypt", c.PasswordConfig.Algorithm)
	}
	if p := c.PasswordConfig.Policy; p.MinimumLength < 0 || p.MinimumLength > passwords.MaxLength {
		return fmt.Errorf("password_config.policy.minimum_length %d must be between 0 and %d", p.MinimumLength, passwords.MaxLength)
	}
	for name, rl := range map[string]RateLimit{
		"rc_registration": c.RcRegistration, "rc_login.address": c.RcLogin.Address, "rc_login.account": c.RcLogin.Account,
		"rc_login.failed_attempts": c.RcLogin.FailedAttempts, "rc_3pid_validation": c.Rc3PIDValidation,
		"rc_registration_token_validity": c.RcRegistrationTokenValidity, "rc_username_availability": c.RcUsernameAvailability,
		"rc_uia_start": c.RcUIAStart,
	} {
		if rl.PerSecond < 0 || rl.BurstCount < 0 {
			return fmt.Errorf("%s: per_second and burst_count must not be negative", name)
		}
	}
	if c.RcRegistrationGlobal.PerHour < 0 || c.RcRegistrationGlobal.PerDay < 0 {
		return errors.New("rc_registration_global: per_hour and per_day must not be negative")
	}
	c.trustedProxies = nil
	for i, cidr := range c.TrustedProxies {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			if ip := net.ParseIP(cidr); ip != nil {
				bits := 8 * len(ip.To16())
				if ip.To4() != nil {
					ip, bits = ip.To4(), 32
				}
				n = &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}
			} else {
				return fmt.Errorf("trusted_proxies[%d]: %q is not a CIDR or IP address", i, cidr)
			}
		}
		c.trustedProxies = append(c.trustedProxies, n)
	}
	for i, l := range c.Listeners {
		if l.XForwarded && len(c.trustedProxies) == 0 {
			return fmt.Errorf("listeners[%d].x_forwarded: set trusted_proxies to the proxies whose X-Forwarded-For is believed", i)
		}
	}
	if c.UIAuth.SessionLifetime.Duration < time.Minute {
		return errors.New("ui_auth.session_lifetime must be at least 1m")
	}
	if c.UIAuth.MaxSessionsPerAddress < 0 {
		return errors.New("ui_auth.max_sessions_per_address must not be negative (0 means no cap)")
	}
	for name, d := range map[string]*Duration{
		"session_lifetime": c.SessionLifetime, "refreshable_access_token_lifetime": c.RefreshableAccessTokenLifetime,
		"refresh_token_lifetime": c.RefreshTokenLifetime, "nonrefreshable_access_token_lifetime": c.NonrefreshableAccessTokenLifetime,
	} {
		if d != nil && d.Duration <= 0 {
			return fmt.Errorf("%s must be positive (or null to disable)", name)
		}
	}
	return nil
}

var opaqueIDRE = regexp.MustCompile(`^[0-9A-Za-z._~-]{1,255}$`)

func (c *Config) hasVerification() bool {
	return c.RegistrationRequiresToken || c.EnableRegistrationCaptcha || len(c.RegistrationsRequire3PID) > 0
}

func (c *Config) firstListener() *Listener {
	if len(c.Listeners) == 0 {
		return nil
	}
	return &c.Listeners[0]
}

// ListenAddress is the host:port of the first listener.
func (c *Config) ListenAddress() string {
	l := c.firstListener()
	host := "127.0.0.1"
	if len(l.BindAddresses) > 0 {
		host = l.BindAddresses[0]
	}
	return net.JoinHostPort(host, strconv.Itoa(l.Port))
}

// DatabasePath is the SQLite file: database.args.database, or
// registrar.db under the data directory.
func (c *Config) DatabasePath() string {
	if p := c.Database.Args["database"]; p != "" {
		return p
	}
	return filepath.Join(c.DataDirectory, "registrar.db")
}

// checkDataDirectory refuses a data directory others may write to: they
// could replace the database or the secret key.
func (c *Config) checkDataDirectory() error {
	info, err := os.Stat(c.DataDirectory)
	if errors.Is(err, os.ErrNotExist) {
		return nil // created 0700
	}
	if err != nil {
		return fmt.Errorf("data_directory: %w", err)
	}
	if info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("data_directory %s is writable by group or others (mode %04o); run chmod go-w on it", c.DataDirectory, info.Mode().Perm())
	}
	return nil
}

// resolveSecrets loads or generates the macaroon secret key.
func (c *Config) resolveSecrets() error {
	if err := c.checkDataDirectory(); err != nil {
		return err
	}
	if err := c.resolveSharedSecret(); err != nil {
		return err
	}
	if err := c.resolveCaptchaSecret(); err != nil {
		return err
	}
	if err := c.loadAppServices(); err != nil {
		return err
	}
	switch {
	case c.MacaroonSecretKey != "":
		c.secretKey = []byte(c.MacaroonSecretKey)
		return nil
	case c.MacaroonSecretKeyPath != "":
		b, err := os.ReadFile(c.MacaroonSecretKeyPath)
		if err != nil {
			return fmt.Errorf("macaroon_secret_key_path: %w", err)
		}
		c.secretKey = bytes.TrimSpace(b)
	default:
		path := filepath.Join(c.DataDirectory, "macaroon_secret_key")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(c.DataDirectory, 0o700); err != nil {
				return fmt.Errorf("data_directory: %w", err)
			}
			b = []byte(secrets.RandomString(48))
			if err := writePrivate(path, b); err != nil {
				return fmt.Errorf("data_directory: cannot write %s: %w", path, err)
			}
		} else if err != nil {
			return fmt.Errorf("data_directory: cannot read %s: %w", path, err)
		}
		c.secretKey = bytes.TrimSpace(b)
	}
	if len(c.secretKey) < 16 {
		return errors.New("macaroon_secret_key must be at least 16 characters")
	}
	return nil
}

func (c *Config) resolveCaptchaSecret() error {
	c.captchaSecret = c.Captcha.RecaptchaPrivateKey
	if p := c.Captcha.RecaptchaPrivateKeyPath; p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("recaptcha_private_key_path: %w", err)
		}
		c.captchaSecret = string(bytes.TrimSpace(b))
	}
	return nil
}

func (c *Config) resolveSharedSecret() error {
	if c.RegistrationSharedSecret != "" && c.RegistrationSharedSecretPath != "" {
		return errors.New("registration_shared_secret and registration_shared_secret_path are both set; keep one")
	}
	c.sharedSecret = []byte(c.RegistrationSharedSecret)
	if c.RegistrationSharedSecretPath != "" {
		b, err := os.ReadFile(c.RegistrationSharedSecretPath)
		if err != nil {
			return fmt.Errorf("registration_shared_secret_path: %w", err)
		}
		c.sharedSecret = bytes.TrimSpace(b)
		if len(c.sharedSecret) == 0 {
			return errors.New("registration_shared_secret_path: the file is empty")
		}
	}
	return nil
}

func mailAddress(s string) (*mail.Address, error) { return mail.ParseAddress(s) }

// defaultMaxConnections is 80% of the soft file descriptor limit (the rest
// is for the database, logs and outgoing requests), at most 10000.
func defaultMaxConnections() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return 1000
	}
	return int(min(lim.Cur*8/10, 10000))
}

// writePrivate writes a new file readable by its owner only, whatever the
// umask.
func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
