package config

// Example is what `registrar generate-config` prints. Option names
// follow Synapse's homeserver.yaml.
const Example = `# registrar configuration. Every option is optional; the values shown are
# the defaults unless marked "example". Option names follow Synapse's
# homeserver.yaml. Environment variables REGISTRAR_<OPTION> override them
# (nested options joined with a double underscore).

# The domain of user IDs (@localpart:server_name).
server_name: localhost
# The URL clients reach this server at (default http://server_name:port/).
#public_baseurl: https://matrix.example.org/

listeners:
  - port: 8008
    bind_addresses: ['127.0.0.1']
    type: http
    # A metrics resource would also serve /_synapse/metrics here; prefer
    # a listener of its own, below, that clients cannot reach.
    #resources: [{names: [client]}]
  # Prometheus metrics (/metrics and /_synapse/metrics) and, with
  # enable_pprof, Go's profiler (/debug/pprof/); needs enable_metrics.
  #- port: 9000
  #  bind_addresses: ['127.0.0.1']
  #  type: metrics

# Where the SQLite database and generated secrets live.
data_directory: data
database:
  name: sqlite3
  #args:
  #  database: /var/lib/registrar/registrar.db

# Request bodies larger than this (bytes) are refused with M_TOO_LARGE.
max_request_body_size: 65536
# Client connections held open at once; idle keep-alive connections are
# closed when it is reached. 0: 80% of the file descriptor limit, at most 10000.
max_connections: 0
log_level: info
# json (one object per line) or text (key=value). Every line logged while
# answering a request carries its request_id and operation.
log_format: json
# One structured log line per request (health checks at debug level).
access_log: true
# Prometheus metrics, served only on a listener of type metrics (or an
# http listener with a metrics resource). /health and /readyz are always
# served on the client listeners.
enable_metrics: false
# Go's profiler on the metrics listeners; expose only to operators.
enable_pprof: false

# Registration. registrar refuses to start with open registration and no
# verification unless enable_registration_without_verification is true.
enable_registration: false
enable_registration_without_verification: false
allow_guest_access: false
allow_underscore_prefixed_localpart: false
# Regular expressions new localparts may not match. A plain string is
# refused with M_INVALID_USERNAME; {pattern, exclusive: true} with
# M_EXCLUSIVE ("reserved").
forbidden_usernames: []
#  - '^admin'
#  - {pattern: '^support$', exclusive: true}
server_notices:
  system_mxid_localpart: ""

# Policies new users accept (the m.login.terms stage); none by default.
registration_terms: {}
#  privacy_policy:
#    version: "1.0"
#    en: {name: Privacy Policy, url: https://example.org/privacy-1.0.html}

allow_deactivation: true
# The registration APIs before r0 (2015): /_matrix/client/api/v1/register
# (v1's type/session/next stages) and /_matrix/client/api/v2_alpha/register,
# with /register's own policy. No client in use needs them.
legacy_client_apis: false
# Accounts registered through /register cannot log in until an admin
# approves them (registrar users approve USER, or PUT
# /_synapse/admin/v2/users/<user_id> {"approved": true}).
require_approval_for_new_accounts: false

# Registration tokens (m.login.registration_token on every flow); manage
# them with 'registrar tokens' or /_synapse/admin/v1/registration_tokens.
registration_requires_token: false
# Enables /_synapse/admin/v1/register (register_new_matrix_user).
#registration_shared_secret: <random string>
#registration_shared_secret_path: /etc/registrar/registration_shared_secret

# Application service registration files.
app_service_config_files: []

# Captcha (m.login.recaptcha). Any provider with a reCAPTCHA-style
# siteverify API works: reCAPTCHA, hCaptcha, Cloudflare Turnstile.
enable_registration_captcha: false
#recaptcha_public_key: <site key>
#recaptcha_private_key: <secret key>
recaptcha_siteverify_api: https://www.recaptcha.net/recaptcha/api/siteverify
recaptcha_api_js_url: https://www.recaptcha.net/recaptcha/api.js
recaptcha_sitekey_class: g-recaptcha

# Email and phone verification (3PIDs). Without an email section (and an
# sms_gateway), that medium is off.
#email:
#  smtp_host: localhost            # or smtp_url: smtps://user:pass@mail.example.org:465
#  smtp_port: 25                   # 465 with force_tls
#  smtp_user: ""
#  smtp_pass: ""
#  force_tls: false
#  require_transport_security: false
#  notif_from: "Your Matrix server <noreply@example.org>"
#  app_name: Matrix
#  validation_token_lifetime: 1h
#  send_timeout: 10s
#  template_dir: /etc/registrar/templates   # registration.txt/.html, password_reset.*, add_threepid.*, already_in_use.*
#  validate_on_get: false          # true: registration and add-3PID links validate when opened (Synapse)
#  subjects:
#    email_validation: "[%(server_name)s] Validate your email"
#    password_reset: "[%(server_name)s] Password reset"
#sms_gateway:                      # JSON POST {"to": "+<E.164>", "text": ...}
#  url: https://sms.example.org/send
#  bearer_token: <secret>
# Or let an identity server validate phone numbers (instead of sms_gateway):
#account_threepid_delegates:
#  msisdn: https://identity.example.org
registrations_require_3pid: []     # [email] and/or [msisdn]
disable_msisdn_registration: false
enable_3pid_changes: true
# Answer requestToken for unknown or taken addresses as if it worked.
request_token_inhibit_3pid_errors: false
#next_link_domain_whitelist: [app.example.org]
#allowed_local_3pids:
#  - {medium: email, pattern: '^[^@]+@example\.org$'}

# Rate limits ({per_second, burst_count}; burst_count 0 turns one off).
rc_registration: {per_second: 0.17, burst_count: 3}
# Across all addresses (0 = no cap).
rc_registration_global: {per_hour: 0, per_day: 0}
rc_login:
  address: {per_second: 0.003, burst_count: 5}
  account: {per_second: 0.003, burst_count: 5}
  failed_attempts: {per_second: 0.17, burst_count: 3}
rc_3pid_validation: {per_second: 0.003, burst_count: 5}
rc_registration_token_validity: {per_second: 0.1, burst_count: 5}
rc_username_availability: {per_second: 0.5, burst_count: 10}
# Each new User-Interactive Authentication session, per client address.
rc_uia_start: {per_second: 0.5, burst_count: 20}
# Shared rate limits for several instances (Synapse's redis section);
# without it each process limits on its own. If Redis stops answering,
# limits fall back to each process's own until it is back.
redis:
  enabled: false
  host: localhost
  port: 6379
  #password: <secret>
  dbid: 0
# X-Forwarded-For is believed only from these proxies (CIDRs).
trusted_proxies: []

# Seals secrets kept between requests; generated in data_directory if unset.
#macaroon_secret_key: <random string>
#macaroon_secret_key_path: /etc/registrar/macaroon_secret_key

password_config:
  enabled: true
  pepper: ""
  # argon2id (default) or bcrypt; existing hashes of either kind verify.
  algorithm: argon2id
  argon2: {memory_kib: 19456, iterations: 2, parallelism: 1}
  policy:
    enabled: false
    minimum_length: 0
    require_digit: false
    require_symbol: false
    require_lowercase: false
    require_uppercase: false
bcrypt_rounds: 12

ui_auth:
  # How long a User-Interactive Authentication session lives.
  session_lifetime: 48h
  # Stored sessions in progress (a stage done or a password kept, no flow
  # complete yet) per client address, and per user for a logged-in user's
  # own; finished and used sessions do not count. 0: no cap.
  max_sessions_per_address: 50

# A logged-in client may make a single-use token for another client to log
# in with (POST /_matrix/client/v1/login/get_token, m.login.token).
login_via_existing_session:
  enabled: false
  require_ui_auth: true        # the password again before each token
  token_timeout: 5m

# The OAuth 2.0 API (Matrix v1.15+; Element X signs in only with it):
# registrar is the authorisation server. Its endpoints and pages live under
# /_registrar/ (forward that path to registrar too).
oauth:
  enabled: true
  #issuer: https://matrix.example.org/   # default: public_baseurl
  legacy_api: true              # keep UIA /register, /login and /refresh
  access_token_lifetime: 5m
  code_lifetime: 10m
  device_code_lifetime: 30m
  device_poll_interval: 5s
  browser_session_lifetime: 24h
  rc_client_registration: {per_second: 0.1, burst_count: 10}
  rc_device_authorization: {per_second: 0.1, burst_count: 10}
  rc_user_code: {per_second: 0.05, burst_count: 5}
  rc_authorization: {per_second: 0.2, burst_count: 30}   # authorisation requests per address
  # A client that never completes an authorisation is forgotten after
  # this long; one address may have this many such clients at once.
  unused_client_lifetime: 24h
  max_unused_clients_per_address: 50

# Upstream identity providers (Synapse's oidc_providers). A preset
# (github, google, gitlab, keycloak) fills in endpoints, scopes and mapping.
# Register <public_baseurl>_registrar/upstream/callback at the provider.
#oidc_providers:
#  - idp_id: github
#    preset: github
#    client_id: "..."
#    client_secret: "..."
#  - idp_id: keycloak
#    preset: keycloak
#    issuer: https://auth.example.org/realms/example
#    client_id: registrar
#    client_secret_path: /etc/registrar/keycloak-secret
#    backchannel_logout_enabled: true
#    attribute_requirements: [{attribute: groups, value: matrix}]
#sso:
#  client_whitelist: ["https://app.element.io/"]   # legacy clients handed their token without a confirmation
# LDAP passwords (matrix-synapse-ldap3's module and options).
#modules:
#  - module: ldap_auth_provider.LdapAuthProviderModule
#    config:
#      enabled: true
#      uri: "ldap://ldap.example.org:389"
#      start_tls: true
#      base: "ou=users,dc=example,dc=org"
#      attributes: {uid: uid, mail: mail, name: cn}
#      #bind_dn: "cn=reader,dc=example,dc=org"
#      #bind_password_file: /etc/registrar/ldap-password
#      #filter: "(objectClass=posixAccount)"

# Second factors on the account pages (both off by default); the
# sign-in page then asks for them after the password.
#second_factors:
#  totp: true               # authenticator apps
#  webauthn: true           # passkeys and security keys (public_baseurl must name a host)
#  required_for_admins: true
#  required_for: ["^@staff-.*:example\\.org$"]   # or ["all"]

# How the pages and emails present the service (MAS's branding section).
#branding:
#  service_name: Example Chat          # default: server_name
#  logo_uri: https://example.org/logo.png   # or a path of this site, /static/logo.svg
#  primary_color: "#0b6b50"            # links and buttons (adjusted for contrast)
#  policy_uri: https://example.org/privacy
#  tos_uri: https://example.org/terms
#  imprint: "Example Ltd, 1 Example Street, Exampleton"
# NAME.html files here replace the pages' templates of those names.
#custom_template_directory: /etc/registrar/templates
# Networks registrar's own fetches (OAuth clients' logos, the branding
# logo) may not reach; unset: loopback, private, link-local and reserved.
#ip_range_blacklist: ["127.0.0.0/8", "10.0.0.0/8"]
#ip_range_whitelist: []

# registrar as a homeserver's authentication service (see the README,
# "Running with Synapse"). clients are confidential clients that may call
# token introspection (the homeserver, as MAS's static clients);
# matrix is the homeserver whose users and devices registrar provisions.
#clients:
#  - client_id: synapse
#    client_auth_method: client_secret_basic   # or client_secret_post
#    client_secret: "a long random secret"
#matrix:
#  homeserver: example.org                     # server_name
#  endpoint: http://127.0.0.1:8009/            # Synapse's client listener
#  kind: synapse        # Synapse 1.135+ (its matrix_authentication_service); synapse_admin for older Synapse (msc3861)
#  secret: "the shared secret (synapse) or Synapse's msc3861.admin_token (synapse_admin)"

# How long the addresses and user agents of each device's use are kept
# (the admin API's whois); null keeps them for ever.
user_ips_max_age: 28d

# User types the admin API accepts besides bot and support.
user_types:
  extra_user_types: []

# Token lifetimes (null = never expires).
session_lifetime: null
refreshable_access_token_lifetime: 5m
refresh_token_lifetime: null
nonrefreshable_access_token_lifetime: null
`
