package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"

	"registrar/impl/images"
	"registrar/impl/passwords"
	"registrar/impl/ratelimit"
)

// Error lists every problem of a configuration, each naming its option; it
// prints as one line.
type Error struct{ Problems []string }

func (e *Error) Error() string { return strings.Join(e.Problems, "; ") }

// problems collects what is wrong.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// Validate checks every section and reports every problem at once; it
// also compiles the patterns and networks the server uses, once.
func (c *Config) Validate() error {
	var p problems
	c.validateServer(&p)
	c.validateDatabase(&p)
	c.validateRegistration(&p)
	c.validateCaptcha(&p)
	c.validateThreepids(&p)
	c.validatePasswords(&p)
	c.validateRateLimits(&p)
	c.validateRedis(&p)
	c.validateSessions(&p)
	c.validateUserTypes(&p)
	c.validateOAuth(&p)
	c.validateHomeserver(&p)
	c.validatePages(&p)
	c.validateUpstream(&p)
	c.validateSecondFactors(&p)
	if len(p) > 0 {
		return &Error{Problems: p}
	}
	return nil
}

var serverNameRE = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$`)

// validServerName reports whether s is a server name: an IP literal or
// a DNS name of at most 255 characters, and an optional port. (A counted
// repetition of 255 in the pattern itself would compile to a program of
// thousands of instructions, built when the process starts.)
func validServerName(s string) bool {
	m := serverNameRE.FindStringSubmatch(s)
	return m != nil && (strings.HasPrefix(m[1], "[") || len(m[1]) <= 255)
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (c *Config) validateServer(p *problems) {
	if !validServerName(c.ServerName) {
		p.add("server_name %q is not a valid server name (hostname[:port])", c.ServerName)
	}
	// Empty only when derived from an invalid server_name, reported above.
	if c.PublicBaseURL != "" && !httpURL(c.PublicBaseURL) {
		p.add("public_baseurl %q must be an absolute http(s) URL", c.PublicBaseURL)
	}
	if c.firstListener() == nil {
		p.add("listeners: at least one listener of type http is required")
	}
	for i, l := range c.Listeners {
		l.validate(p, i)
	}
	c.validateMetrics(p)
	if c.DataDirectory == "" {
		p.add("data_directory must not be empty")
	}
	if c.MaxRequestBodySize < 1024 {
		p.add("max_request_body_size %d is too small (at least 1024 bytes)", c.MaxRequestBodySize)
	}
	if c.MaxConnections < 2 {
		p.add("max_connections %d is too small (at least 2; 0 derives it from the file descriptor limit)", c.MaxConnections)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.add("log_level %q must be debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		p.add("log_format %q must be json or text", c.LogFormat)
	}
	c.built.trustedProxies = nil
	for i, cidr := range c.TrustedProxies {
		n, ok := parseNetwork(cidr)
		if !ok {
			p.add("trusted_proxies[%d]: %q is not a CIDR or IP address", i, cidr)
			continue
		}
		c.built.trustedProxies = append(c.built.trustedProxies, n)
	}
	for i, l := range c.Listeners {
		if l.XForwarded && len(c.TrustedProxies) == 0 {
			p.add("listeners[%d].x_forwarded: set trusted_proxies to the proxies whose X-Forwarded-For is believed", i)
		}
	}
}

// validateMetrics checks that metrics and pprof have somewhere to be
// served, and that nothing serves them unasked.
func (c *Config) validateMetrics(p *problems) {
	metricsListener, metricsResource := false, false
	for i, l := range c.Listeners {
		switch {
		case l.IsMetrics():
			metricsListener = true
			if !c.EnableMetrics {
				p.add("listeners[%d]: a listener of type metrics needs enable_metrics: true", i)
			}
		case l.ServesMetrics():
			metricsResource = true
			if !c.EnableMetrics {
				p.add("listeners[%d].resources: the metrics resource needs enable_metrics: true", i)
			}
		}
	}
	if c.EnableMetrics && !metricsListener && !metricsResource {
		p.add("enable_metrics: add a listener of type metrics (its own port and bind_addresses) to serve them")
	}
	if c.EnablePprof && !metricsListener {
		p.add("enable_pprof: pprof is served only on a listener of type metrics; add one")
	}
}

// listenerResources are the resource names Synapse knows; only metrics
// changes what registrar serves, the others are accepted as they are so
// that a Synapse listener entry can be copied.
var listenerResources = map[string]bool{"client": true, "consent": true, "federation": true, "keys": true, "media": true,
	"metrics": true, "openid": true, "replication": true, "static": true, "health": true}

func (l Listener) validate(p *problems, i int) {
	switch l.Type {
	case "", ListenerHTTP, ListenerMetrics:
	default:
		p.add("listeners[%d].type %q is not supported (http or metrics)", i, l.Type)
	}
	for j, r := range l.Resources {
		for _, n := range r.Names {
			if !listenerResources[n] {
				p.add("listeners[%d].resources[%d].names: unknown resource %q", i, j, n)
			}
		}
	}
	if l.Port < 0 || l.Port > 65535 {
		p.add("listeners[%d].port %d is out of range", i, l.Port)
	}
	if l.TLS {
		p.add("listeners[%d].tls: TLS is not supported; terminate TLS in a reverse proxy", i)
	}
	for _, a := range l.BindAddresses {
		if net.ParseIP(a) == nil && a != "localhost" {
			p.add("listeners[%d].bind_addresses: %q is not an IP address", i, a)
		}
	}
}

// parseNetwork reads a CIDR or a single address.
func parseNetwork(s string) (*net.IPNet, bool) {
	if _, n, err := net.ParseCIDR(s); err == nil {
		return n, true
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, false
	}
	if v4 := ip.To4(); v4 != nil {
		return &net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}, true
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}, true
}

// defaultMaxConnections is 80% of the soft file descriptor limit (the rest
// is for the database, logs and outgoing requests), at most 10000.
func defaultMaxConnections() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return 1000
	}
	return int(min(lim.Cur*8/10, 10000))
}

func (c *Config) validateDatabase(p *problems) {
	a := c.Database.Args
	switch c.Database.Name {
	case "sqlite3", "sqlite":
		if a.DSN != "" || a.Host != "" || a.User != "" {
			p.add("database.args: host, user and dsn are PostgreSQL's; SQLite takes only database (the file)")
		}
	case "psycopg2", "postgres", "postgresql":
		if a.DSN == "" && a.Database == "" {
			p.add("database.args: give database (and user, host, ...) or dsn for PostgreSQL")
		}
		if a.DSN != "" && (a.Host != "" || a.User != "" || a.Password != "") {
			p.add("database.args: dsn and the connection arguments are both set; keep one")
		}
		if a.Port < 0 || a.Port > 65535 {
			p.add("database.args.port %d is out of range", a.Port)
		}
		if a.CpMin < 0 || a.CpMax < 0 || (a.CpMax > 0 && a.CpMin > a.CpMax) {
			p.add("database.args: cp_min and cp_max must not be negative, and cp_min not above cp_max")
		}
	default:
		p.add("database.name %q is unknown; use sqlite3 or psycopg2", c.Database.Name)
	}
}

var opaqueIDRE = regexp.MustCompile(`^[0-9A-Za-z._~-]+$`)

// validOpaqueID reports whether s is an opaque identifier: 1-255 of the
// characters of opaqueIDRE.
func validOpaqueID(s string) bool { return len(s) <= 255 && opaqueIDRE.MatchString(s) }

func (c *Config) validateRegistration(p *problems) {
	if c.EnableRegistration && !c.EnableRegistrationWithoutVerification && !c.HasVerification() {
		p.add("enable_registration is true but no verification is required (captcha, registration token or 3PID); " +
			"set enable_registration_without_verification: true to run an open registration server anyway")
	}
	c.built.forbidden = nil
	for i, f := range c.ForbiddenUsernames {
		re, err := regexp.Compile(f.Pattern)
		if err != nil {
			p.add("forbidden_usernames[%d]: %q is not a valid regular expression", i, f.Pattern)
			continue
		}
		c.built.forbidden = append(c.built.forbidden, compiledForbidden{re: re, exclusive: f.Exclusive})
	}
	for id, pol := range c.RegistrationTerms {
		if !validOpaqueID(id) || !validOpaqueID(pol.Version) {
			p.add("registration_terms.%s: policy IDs and versions must be 1-255 of [0-9A-Za-z._~-]", id)
		}
		if len(pol.Translations) == 0 {
			p.add("registration_terms.%s: give at least one language with name and url", id)
		}
		for lang, d := range pol.Translations {
			if d.Name == "" || !httpURL(d.URL) {
				p.add("registration_terms.%s.%s: needs a name and an http(s) url", id, lang)
			}
		}
	}
	if c.UIAuth.SessionLifetime.Duration < time.Minute {
		p.add("ui_auth.session_lifetime must be at least 1m")
	}
	if c.UIAuth.MaxSessionsPerAddress < 0 {
		p.add("ui_auth.max_sessions_per_address must not be negative (0 means no cap)")
	}
}

func (c *Config) validateCaptcha(p *problems) {
	if !c.EnableRegistrationCaptcha {
		return
	}
	cc := c.Captcha
	if cc.RecaptchaPublicKey == "" || (cc.RecaptchaPrivateKey == "") == (cc.RecaptchaPrivateKeyPath == "") {
		p.add("enable_registration_captcha needs recaptcha_public_key and one of recaptcha_private_key or recaptcha_private_key_path")
	}
	if u, err := url.Parse(cc.RecaptchaSiteverifyAPI); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		p.add("recaptcha_siteverify_api %q must be an http(s) URL", cc.RecaptchaSiteverifyAPI)
	}
}

func (c *Config) validateThreepids(p *problems) {
	for _, m := range c.RegistrationsRequire3PID {
		switch {
		case m != "email" && m != "msisdn":
			p.add("registrations_require_3pid: %q must be email or msisdn", m)
		case m == "email" && c.Email == nil:
			p.add("registrations_require_3pid: email needs the email section (SMTP) configured")
		case m == "msisdn" && (!c.MsisdnEnabled() || c.DisableMsisdnRegistration):
			p.add("registrations_require_3pid: msisdn needs sms_gateway or account_threepid_delegates.msisdn, and disable_msisdn_registration false")
		}
	}
	if c.Email != nil {
		if _, err := mail.ParseAddress(c.Email.NotifFrom); err != nil {
			p.add("email.notif_from must be an email address, e.g. 'Matrix <noreply@example.org>'")
		}
		if _, err := c.Email.Target(); err != nil {
			p.add("%s", err)
		}
	}
	if c.SMSGateway != nil {
		if u, err := url.Parse(c.SMSGateway.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			p.add("sms_gateway.url must be an http(s) URL")
		}
	}
	if d := c.AccountThreepidDelegates.Msisdn; d != "" {
		if !httpURL(d) {
			p.add("account_threepid_delegates.msisdn must be the http(s) base URL of an identity server")
		}
		if c.SMSGateway != nil {
			p.add("sms_gateway and account_threepid_delegates.msisdn are both set; keep one")
		}
	}
	c.built.allowed3PIDs = nil
	for i, a := range c.AllowedLocal3PIDs {
		re, err := regexp.Compile(a.Pattern)
		if err != nil || (a.Medium != "email" && a.Medium != "msisdn") {
			p.add("allowed_local_3pids[%d]: needs medium email or msisdn and a valid pattern", i)
			continue
		}
		c.built.allowed3PIDs = append(c.built.allowed3PIDs, compiledAllowed{medium: a.Medium, re: re})
	}
}

func (c *Config) validatePasswords(p *problems) {
	if c.BcryptRounds < 4 || c.BcryptRounds > 31 {
		p.add("bcrypt_rounds %d must be between 4 and 31", c.BcryptRounds)
	}
	switch c.PasswordConfig.Algorithm {
	case "argon2id":
		a := c.PasswordConfig.Argon2
		if a.MemoryKiB < 8*uint32(max(a.Parallelism, 1)) || a.Iterations < 1 || a.Parallelism < 1 {
			p.add("password_config.argon2: memory_kib, iterations and parallelism must be positive (memory_kib >= 8*parallelism)")
		}
	case "bcrypt":
	default:
		p.add("password_config.algorithm %q must be argon2id or bcrypt", c.PasswordConfig.Algorithm)
	}
	if pol := c.PasswordConfig.Policy; pol.MinimumLength < 0 || pol.MinimumLength > passwords.MaxLength {
		p.add("password_config.policy.minimum_length %d must be between 0 and %d", pol.MinimumLength, passwords.MaxLength)
	}
}

func (c *Config) validateRateLimits(p *problems) {
	for _, rl := range []struct {
		name string
		r    ratelimit.Rate
	}{
		{"rc_registration", c.RcRegistration}, {"rc_login.address", c.RcLogin.Address}, {"rc_login.account", c.RcLogin.Account},
		{"rc_login.failed_attempts", c.RcLogin.FailedAttempts}, {"rc_3pid_validation", c.Rc3PIDValidation},
		{"rc_registration_token_validity", c.RcRegistrationTokenValidity}, {"rc_username_availability", c.RcUsernameAvailability},
		{"rc_uia_start", c.RcUIAStart}, {"oauth.rc_client_registration", c.OAuth.RcClientRegistration},
		{"oauth.rc_device_authorization", c.OAuth.RcDeviceAuthorization}, {"oauth.rc_user_code", c.OAuth.RcUserCode},
		{"oauth.rc_authorization", c.OAuth.RcAuthorization},
	} {
		if rl.r.PerSecond < 0 || rl.r.BurstCount < 0 {
			p.add("%s: per_second and burst_count must not be negative", rl.name)
		}
	}
	if c.RcRegistrationGlobal.PerHour < 0 || c.RcRegistrationGlobal.PerDay < 0 {
		p.add("rc_registration_global: per_hour and per_day must not be negative")
	}
}

func (c *Config) validateSessions(p *problems) {
	if t := c.LoginViaExistingSession.TokenTimeout.Duration; t < time.Second || t > time.Hour {
		p.add("login_via_existing_session.token_timeout must be between 1s and 1h")
	}
	for _, d := range []struct {
		name string
		d    *Duration
	}{
		{"session_lifetime", c.SessionLifetime}, {"refreshable_access_token_lifetime", c.RefreshableAccessTokenLifetime},
		{"refresh_token_lifetime", c.RefreshTokenLifetime}, {"nonrefreshable_access_token_lifetime", c.NonrefreshableAccessTokenLifetime},
		{"user_ips_max_age", c.UserIPsMaxAge},
	} {
		if d.d != nil && d.d.Duration <= 0 {
			p.add("%s must be positive (or null to disable)", d.name)
		}
	}
}

func (c *Config) validateOAuth(p *problems) {
	o := c.OAuth
	if !o.Enabled {
		if !o.LegacyAPI {
			p.add("oauth: legacy_api: false needs oauth.enabled: true (no way to log in would remain)")
		}
		return
	}
	// An issuer derived from public_baseurl is checked as public_baseurl.
	if u, err := url.Parse(o.Issuer); o.Issuer != c.PublicBaseURL && (err != nil || !httpURL(o.Issuer) || u.RawQuery != "" || u.Fragment != "") {
		p.add("oauth.issuer %q must be an absolute http(s) URL without query or fragment", o.Issuer)
	}
	for _, d := range []struct {
		name     string
		d        time.Duration
		min, max time.Duration
	}{
		{"access_token_lifetime", o.AccessTokenLifetime.Duration, time.Minute, 24 * time.Hour},
		{"code_lifetime", o.CodeLifetime.Duration, 30 * time.Second, time.Hour},
		{"device_code_lifetime", o.DeviceCodeLifetime.Duration, time.Minute, 24 * time.Hour},
		{"device_poll_interval", o.DevicePollInterval.Duration, time.Second, time.Minute},
		{"browser_session_lifetime", o.BrowserSessionLifetime.Duration, 5 * time.Minute, 366 * 24 * time.Hour},
		{"unused_client_lifetime", o.UnusedClientLifetime.Duration, time.Hour, 366 * 24 * time.Hour},
	} {
		if d.d < d.min || d.d > d.max {
			p.add("oauth.%s must be between %s and %s", d.name, d.min, d.max)
		}
	}
	if o.MaxUnusedClientsPerAddress < 0 {
		p.add("oauth.max_unused_clients_per_address must not be negative (0 means no cap)")
	}
}

func (c *Config) validateUserTypes(p *problems) {
	for _, t := range c.UserTypes.ExtraUserTypes {
		if t == "" || strings.TrimSpace(t) != t {
			p.add("user_types.extra_user_types: %q is not a user type", t)
		}
	}
}

func (c *Config) validateRedis(p *problems) {
	r := c.Redis
	if !r.Enabled {
		return
	}
	if r.Host == "" || r.Port < 1 || r.Port > 65535 {
		p.add("redis: host and a port between 1 and 65535 are required when enabled")
	}
	if r.Dbid < 0 {
		p.add("redis.dbid %d must not be negative", r.Dbid)
	}
}

func (c *Config) validatePages(p *problems) {
	for _, problem := range c.Branding.Validate() {
		p.add("%s", problem)
	}
	if dir := c.CustomTemplateDirectory; dir != "" {
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			p.add("custom_template_directory %q is not a readable directory", dir)
		}
	}
	for name, cidrs := range map[string][]string{"ip_range_blacklist": c.IPRangeBlacklist, "ip_range_whitelist": c.IPRangeWhitelist} {
		for _, cidr := range cidrs {
			if _, err := netip.ParsePrefix(cidr); err != nil {
				p.add("%s: %q is not a network (CIDR)", name, cidr)
			}
		}
	}
}

// BlockedRanges are the networks registrar's own fetches may not reach:
// ip_range_blacklist, or a default of the non-public ones; the unspecified
// addresses are always blocked.
func (c *Config) BlockedRanges() []string {
	if c.IPRangeBlacklist == nil {
		return images.DefaultBlocked
	}
	return append([]string{"0.0.0.0/32", "::/128"}, c.IPRangeBlacklist...)
}
