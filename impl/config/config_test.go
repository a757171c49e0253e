package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// load reads yaml as a config file with a fresh data directory.
func load(t *testing.T, yaml string, env map[string]string) (Config, error) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["REGISTRAR_DATA_DIRECTORY"]; !ok {
		env["REGISTRAR_DATA_DIRECTORY"] = filepath.Join(dir, "data")
	}
	return Load(p, func(k string) string { return env[k] })
}

// TestEveryRefusal: each bad value is refused with one line naming its
// option, exactly.
func TestEveryRefusal(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ option, yaml, want string }{
		{"server_name", `server_name: "bad name"`, `server_name "bad name" is not a valid server name (hostname[:port])`},
		{"public_baseurl", `public_baseurl: "ftp://x/"`, `public_baseurl "ftp://x/" must be an absolute http(s) URL`},
		{"listeners", `listeners: []`, `listeners: at least one listener of type http is required`},
		{"listeners only metrics", "enable_metrics: true\nlisteners: [{port: 9000, type: metrics}]", `listeners: at least one listener of type http is required`},
		{"listeners[].type", "listeners: [{port: 8008}, {port: 9000, type: manhole}]", `listeners[1].type "manhole" is not supported (http or metrics)`},
		{"listeners[].resources", "listeners: [{port: 8008, resources: [{names: [client, metrix]}]}]", `listeners[0].resources[0].names: unknown resource "metrix"`},
		{"metrics listener without enable_metrics", "listeners: [{port: 8008}, {port: 9000, type: metrics}]", `listeners[1]: a listener of type metrics needs enable_metrics: true`},
		{"metrics resource without enable_metrics", "listeners: [{port: 8008, resources: [{names: [client, metrics]}]}]", `listeners[0].resources: the metrics resource needs enable_metrics: true`},
		{"enable_metrics without a listener", `enable_metrics: true`, `enable_metrics: add a listener of type metrics (its own port and bind_addresses) to serve them`},
		{"enable_pprof without a metrics listener", "enable_metrics: true\nenable_pprof: true\nlisteners: [{port: 8008, resources: [{names: [client, metrics]}]}]", `enable_pprof: pprof is served only on a listener of type metrics; add one`},
		{"log_format", `log_format: xml`, `log_format "xml" must be json or text`},
		{"listeners.port", `listeners: [{port: 70000}]`, `listeners[0].port 70000 is out of range`},
		{"listeners.tls", `listeners: [{port: 8008, tls: true}]`, `listeners[0].tls: TLS is not supported; terminate TLS in a reverse proxy`},
		{"listeners.bind_addresses", `listeners: [{port: 8008, bind_addresses: [nowhere]}]`, `listeners[0].bind_addresses: "nowhere" is not an IP address`},
		{"listeners.x_forwarded", `listeners: [{port: 8008, x_forwarded: true}]`, `listeners[0].x_forwarded: set trusted_proxies to the proxies whose X-Forwarded-For is believed`},
		{"data_directory", `data_directory: ""`, `data_directory must not be empty`},
		{"public_baseurl without host", `public_baseurl: "https://"`, `public_baseurl "https://" must be an absolute http(s) URL`},
		{"max_request_body_size", `max_request_body_size: 10`, `max_request_body_size 10 is too small (at least 1024 bytes)`},
		{"max_connections", `max_connections: 1`, `max_connections 1 is too small (at least 2; 0 derives it from the file descriptor limit)`},
		{"log_level", `log_level: loud`, `log_level "loud" must be debug, info, warn or error`},
		{"trusted_proxies", `trusted_proxies: [somewhere]`, `trusted_proxies[0]: "somewhere" is not a CIDR or IP address`},
		{"database.name", `database: {name: oracle}`, `database.name "oracle" is unknown; use sqlite3 or psycopg2`},
		{"database.args sqlite", `database: {name: sqlite3, args: {host: db.example}}`, `database.args: host, user and dsn are PostgreSQL's; SQLite takes only database (the file)`},
		{"database.args postgres", `database: {name: psycopg2, args: {user: u}}`, `database.args: give database (and user, host, ...) or dsn for PostgreSQL`},
		{"database.args dsn", `database: {name: psycopg2, args: {dsn: "postgres://x/y", user: u}}`, `database.args: dsn and the connection arguments are both set; keep one`},
		{"database.args.port", `database: {name: postgres, args: {database: d, port: 70000}}`, `database.args.port 70000 is out of range`},
		{"database.args cp", `database: {name: postgresql, args: {database: d, cp_min: 5, cp_max: 2}}`, `database.args: cp_min and cp_max must not be negative, and cp_min not above cp_max`},
		{"enable_registration", `enable_registration: true`, `enable_registration is true but no verification is required (captcha, registration token or 3PID); set enable_registration_without_verification: true to run an open registration server anyway`},
		{"forbidden_usernames", `forbidden_usernames: ["("]`, `forbidden_usernames[0]: "(" is not a valid regular expression`},
		{"registration_terms id", `registration_terms: {"bad id": {version: "1", en: {name: T, url: "https://x/"}}}`, `registration_terms.bad id: policy IDs and versions must be 1-255 of [0-9A-Za-z._~-]`},
		{"registration_terms languages", `registration_terms: {tos: {version: "1"}}`, `registration_terms.tos: give at least one language with name and url`},
		{"registration_terms url", `registration_terms: {tos: {version: "1", en: {name: T, url: "javascript:x"}}}`, `registration_terms.tos.en: needs a name and an http(s) url`},
		{"ui_auth.session_lifetime", `ui_auth: {session_lifetime: 10s}`, `ui_auth.session_lifetime must be at least 1m`},
		{"ui_auth.max_sessions_per_address", `ui_auth: {session_lifetime: 1h, max_sessions_per_address: -1}`, `ui_auth.max_sessions_per_address must not be negative (0 means no cap)`},
		{"enable_registration_captcha", `enable_registration_captcha: true`, `enable_registration_captcha needs recaptcha_public_key and one of recaptcha_private_key or recaptcha_private_key_path`},
		{"recaptcha_siteverify_api", "enable_registration_captcha: true\nrecaptcha_public_key: p\nrecaptcha_private_key: s\nrecaptcha_siteverify_api: 'gopher://x'", `recaptcha_siteverify_api "gopher://x" must be an http(s) URL`},
		{"registrations_require_3pid medium", `registrations_require_3pid: [pigeon]`, `registrations_require_3pid: "pigeon" must be email or msisdn`},
		{"registrations_require_3pid email", `registrations_require_3pid: [email]`, `registrations_require_3pid: email needs the email section (SMTP) configured`},
		{"registrations_require_3pid msisdn", `registrations_require_3pid: [msisdn]`, `registrations_require_3pid: msisdn needs sms_gateway or account_threepid_delegates.msisdn, and disable_msisdn_registration false`},
		{"email.notif_from", `email: {notif_from: "not an address"}`, `email.notif_from must be an email address, e.g. 'Matrix <noreply@example.org>'`},
		{"email.smtp_url", `email: {notif_from: "a@b.c", smtp_url: "http://user:secret@x"}`, `email.smtp_url "http://user@x" must be smtp://[user:pass@]host[:port] or smtps://...`},
		{"sms_gateway.url", `sms_gateway: {url: "ftp://x"}`, `sms_gateway.url must be an http(s) URL`},
		{"account_threepid_delegates.msisdn", `account_threepid_delegates: {msisdn: "x"}`, `account_threepid_delegates.msisdn must be the http(s) base URL of an identity server`},
		{"account_threepid_delegates and sms_gateway", "account_threepid_delegates: {msisdn: 'https://is'}\nsms_gateway: {url: 'https://sms'}", `sms_gateway and account_threepid_delegates.msisdn are both set; keep one`},
		{"allowed_local_3pids", `allowed_local_3pids: [{medium: fax, pattern: "."}]`, `allowed_local_3pids[0]: needs medium email or msisdn and a valid pattern`},
		{"bcrypt_rounds", `bcrypt_rounds: 3`, `bcrypt_rounds 3 must be between 4 and 31`},
		{"password_config.argon2", `password_config: {argon2: {memory_kib: 1, iterations: 1, parallelism: 1}}`, `password_config.argon2: memory_kib, iterations and parallelism must be positive (memory_kib >= 8*parallelism)`},
		{"password_config.algorithm", `password_config: {algorithm: md5}`, `password_config.algorithm "md5" must be argon2id or bcrypt`},
		{"password_config.policy.minimum_length", `password_config: {policy: {minimum_length: 600}}`, `password_config.policy.minimum_length 600 must be between 0 and 512`},
		{"rc_login.address", `rc_login: {address: {per_second: -1, burst_count: 1}}`, `rc_login.address: per_second and burst_count must not be negative`},
		{"rc_uia_start", `rc_uia_start: {per_second: 1, burst_count: -1}`, `rc_uia_start: per_second and burst_count must not be negative`},
		{"rc_registration_global", `rc_registration_global: {per_hour: -1}`, `rc_registration_global: per_hour and per_day must not be negative`},
		{"redis", `redis: {enabled: true, port: 0}`, `redis: host and a port between 1 and 65535 are required when enabled`},
		{"redis.dbid", `redis: {enabled: true, dbid: -1}`, `redis.dbid -1 must not be negative`},
		{"login_via_existing_session.token_timeout", `login_via_existing_session: {token_timeout: 2h}`, `login_via_existing_session.token_timeout must be between 1s and 1h`},
		{"session_lifetime", `session_lifetime: 0`, `session_lifetime must be positive (or null to disable)`},
		{"registration_shared_secret", "registration_shared_secret: a\nregistration_shared_secret_path: /x", `registration_shared_secret and registration_shared_secret_path are both set; keep one`},
		{"registration_shared_secret_path empty", "registration_shared_secret_path: " + empty, `registration_shared_secret_path: the file is empty`},
		{"macaroon_secret_key", `macaroon_secret_key: short`, `macaroon_secret_key must be at least 16 characters`},
		{"app_service_config_files", `app_service_config_files: [` + empty + `]`, `app_service_config_files: ` + empty + `: id, as_token, hs_token and sender_localpart are required`},
		{"user_ips_max_age", `user_ips_max_age: 0`, `user_ips_max_age must be positive (or null to disable)`},
		{"user_types.extra_user_types", `user_types: {extra_user_types: [""]}`, `user_types.extra_user_types: "" is not a user type`},
		{"oauth.issuer", `oauth: {issuer: "https://x/?a=b"}`, `oauth.issuer "https://x/?a=b" must be an absolute http(s) URL without query or fragment`},
		{"oauth.legacy_api", `oauth: {enabled: false, legacy_api: false}`, `oauth: legacy_api: false needs oauth.enabled: true (no way to log in would remain)`},
		{"oauth.access_token_lifetime", `oauth: {access_token_lifetime: 10s}`, `oauth.access_token_lifetime must be between 1m0s and 24h0m0s`},
		{"oauth.device_poll_interval", `oauth: {device_poll_interval: 0s}`, `oauth.device_poll_interval must be between 1s and 1m0s`},
		{"oauth.rc_user_code", `oauth: {rc_user_code: {per_second: -1}}`, `oauth.rc_user_code: per_second and burst_count must not be negative`},
		{"unknown option", `enable_registraton: true`, `yaml: unmarshal errors: line 1: field enable_registraton not found in type config.Config`},
	} {
		t.Run(tc.option, func(t *testing.T) {
			env := map[string]string{}
			if strings.HasPrefix(tc.yaml, "data_directory") {
				env["REGISTRAR_DATA_DIRECTORY"] = ""
			}
			_, err := load(t, tc.yaml, env)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			_, msg, _ = strings.Cut(msg, ": ") // "config: " or "config <file>: "
			if msg != tc.want {
				t.Fatalf("got  %q\nwant %q", msg, tc.want)
			}
		})
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	_, err := load(t, "log_level: loud\nbcrypt_rounds: 3\nserver_name: 'a b'", nil)
	if err == nil || strings.Contains(err.Error(), "\n") || strings.Count(err.Error(), "; ") != 2 ||
		!strings.Contains(err.Error(), "server_name") || !strings.Contains(err.Error(), "log_level") || !strings.Contains(err.Error(), "bcrypt_rounds") {
		t.Fatalf("got %v", err)
	}
}

func TestWritableDataDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := load(t, "", map[string]string{"REGISTRAR_DATA_DIRECTORY": dir})
	if err == nil || !strings.Contains(err.Error(), "data_directory "+dir+" is writable by group or others (mode 0777)") {
		t.Fatalf("got %v", err)
	}
}

// TestExampleIsTheDefaults: generate-config's example parses to exactly
// the configuration used without a file.
func TestExampleIsTheDefaults(t *testing.T) {
	env := map[string]string{"REGISTRAR_DATA_DIRECTORY": t.TempDir()}
	fromExample, err := load(t, Example, env)
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	// YAML is the comparison: an option written as [] and an absent one
	// (nil) are the same option.
	a, _ := yaml.Marshal(fromExample)
	b, _ := yaml.Marshal(defaults)
	if string(a) != string(b) {
		t.Fatalf("the example differs from the defaults:\n%s\n%s", a, b)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	cfg, err := load(t, "server_name: file.example", map[string]string{
		"REGISTRAR_SERVER_NAME":                         "env.example",
		"REGISTRAR_PASSWORD_CONFIG__ENABLED":            "false",
		"REGISTRAR_PASSWORD_CONFIG__ARGON2__ITERATIONS": "3",
		"REGISTRAR_UI_AUTH__SESSION_LIFETIME":           "2d",
		"REGISTRAR_SESSION_LIFETIME":                    "90m",
		"REGISTRAR_RC_LOGIN__ADDRESS__PER_SECOND":       "1.5",
		"REGISTRAR_RECAPTCHA_PUBLIC_KEY":                "inline-key",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "env.example" || cfg.PasswordConfig.Enabled || cfg.PasswordConfig.Argon2.Iterations != 3 ||
		cfg.UIAuth.SessionLifetime.Duration != 48*time.Hour || cfg.SessionLifetime.Duration != 90*time.Minute ||
		cfg.RcLogin.Address.PerSecond != 1.5 || cfg.Captcha.RecaptchaPublicKey != "inline-key" {
		t.Fatalf("%+v", cfg)
	}
	if cfg.PublicBaseURL != "http://env.example:8008/" {
		t.Fatalf("derived public_baseurl %q", cfg.PublicBaseURL)
	}
	for name, value := range map[string]string{"REGISTRAR_ENABLE_REGISTRATION": "maybe", "REGISTRAR_BCRYPT_ROUNDS": "x",
		"REGISTRAR_SESSION_LIFETIME": "soon"} {
		if _, err := load(t, "", map[string]string{name: value}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v", name, value, err)
		}
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"5m": 5 * time.Minute, "48h": 48 * time.Hour, "7d": 7 * 24 * time.Hour,
		"1w": 7 * 24 * time.Hour, "1500": 1500 * time.Millisecond, "1.5d": 36 * time.Hour} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := parseDuration("soon"); err == nil {
		t.Error("soon")
	}
}

func TestGeneratedSecretIsKeptAndPrivate(t *testing.T) {
	env := map[string]string{"REGISTRAR_DATA_DIRECTORY": filepath.Join(t.TempDir(), "d")}
	a, err := load(t, "", env)
	if err != nil || a.SecretKey() != nil || a.UseSecretKeyFile() != nil {
		t.Fatal(err)
	}
	b, _ := load(t, "", env)
	if err := b.UseSecretKeyFile(); err != nil {
		t.Fatal(err)
	}
	if len(a.SecretKey()) < 32 || string(a.SecretKey()) != string(b.SecretKey()) {
		t.Fatal("the generated secret is not reused")
	}
	info, _ := os.Stat(filepath.Join(env["REGISTRAR_DATA_DIRECTORY"], "macaroon_secret_key"))
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("secret is %04o", info.Mode().Perm())
	}
}

func TestPostgresConnectionString(t *testing.T) {
	for _, tc := range []struct {
		args DatabaseArgs
		want string
	}{
		{DatabaseArgs{Database: "synapse", User: "syn'apse", Password: `p\w`, Host: "db.example", Port: 5433, Sslmode: "require"},
			`host='db.example' port='5433' user='syn\'apse' password='p\\w' dbname='synapse' sslmode='require'`},
		{DatabaseArgs{Database: "r"}, `host='localhost' dbname='r'`},
		{DatabaseArgs{DSN: "postgres://u@h/d"}, "postgres://u@h/d"},
	} {
		c := Config{Database: Database{Name: "psycopg2", Args: tc.args}}
		if got := c.DatabaseDSN(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
	c := Config{DataDirectory: "/var/lib/r", Database: Database{Name: "sqlite3"}}
	if c.DatabaseDSN() != "/var/lib/r/registrar.db" || c.UsesPostgres() {
		t.Error(c.DatabaseDSN())
	}
}

// TestSynapseDatabaseSectionLoads: a Synapse database section, keepalives
// included, works as is, and environment overrides reach its arguments.
func TestSynapseDatabaseSectionLoads(t *testing.T) {
	cfg, err := load(t, `
database:
  name: psycopg2
  args:
    user: synapse_user
    password: secretpassword
    database: synapse
    host: localhost
    cp_min: 5
    cp_max: 10
    keepalives_idle: 10
    keepalives_interval: 10
    keepalives_count: 3
`, map[string]string{"REGISTRAR_DATABASE__ARGS__HOST": "db.internal", "REGISTRAR_DATABASE__ARGS__PORT": "6432"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.UsesPostgres() || cfg.Database.Args.Host != "db.internal" || cfg.Database.Args.Port != 6432 ||
		cfg.StoreOptions().MaxOpenConns != 10 || cfg.StoreOptions().MinIdleConns != 5 {
		t.Fatalf("%+v", cfg.Database)
	}
	if strings.Contains(cfg.DatabaseRedacted(), "secretpassword") {
		t.Fatal("the password shows in logs")
	}
}

// TestServerNameAndOpaqueIDGrammars checks the bounds the patterns leave
// to a length check.
func TestServerNameAndOpaqueIDGrammars(t *testing.T) {
	for name, want := range map[string]bool{
		"example.org": true, "example.org:8448": true, "[::1]:8448": true, "1.2.3.4": true,
		strings.Repeat("a", 255): true, strings.Repeat("a", 255) + ":1": true, strings.Repeat("a", 256): false,
		"": false, "exa mple.org": false, "example.org:123456": false, "example.org:": false, "[::1": false,
	} {
		if got := validServerName(name); got != want {
			t.Errorf("server name %q: %v, want %v", name, got, want)
		}
	}
	for id, want := range map[string]bool{
		"privacy_policy": true, "v1.0~x-y": true, strings.Repeat("p", 255): true, strings.Repeat("p", 256): false,
		"": false, "a b": false, "a/b": false,
	} {
		if got := validOpaqueID(id); got != want {
			t.Errorf("opaque ID %q: %v, want %v", id, got, want)
		}
	}
}
