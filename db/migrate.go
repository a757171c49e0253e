package db

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// migration is one schema step. Steps are applied in order, each in its own
// transaction, and recorded in schema_migrations; a step never changes once
// released, so a newer binary upgrades an older database in place. The
// statements are SQLite's; on PostgreSQL, forPostgres rewrites the few
// types the engines spell differently, and a step with postgres set uses
// those statements instead.
type migration struct {
	id       int
	name     string
	stmts    []string
	postgres []string
}

// forPostgres spells SQLite's types as PostgreSQL does.
var forPostgres = strings.NewReplacer(
	"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY",
	" BLOB", " BYTEA",
)

func (m migration) statements(engine string) []string {
	if engine != Postgres {
		return m.stmts
	}
	if m.postgres != nil {
		return m.postgres
	}
	out := make([]string, len(m.stmts))
	for i, stmt := range m.stmts {
		out[i] = forPostgres.Replace(stmt)
	}
	return out
}

var migrations = []migration{
	{1, "accounts, devices, tokens, UIA sessions", []string{
		`CREATE TABLE accounts (
			user_id TEXT NOT NULL PRIMARY KEY,
			localpart_lower TEXT NOT NULL,
			password_hash TEXT NOT NULL DEFAULT '',
			kind TEXT NOT NULL DEFAULT 'user',
			admin BOOLEAN NOT NULL DEFAULT FALSE,
			appservice_id TEXT NOT NULL DEFAULT '',
			display_name TEXT NOT NULL DEFAULT '',
			avatar_url TEXT NOT NULL DEFAULT '',
			created_at BIGINT NOT NULL,
			deactivated_at BIGINT,
			erased BOOLEAN NOT NULL DEFAULT FALSE
		)`,
		`CREATE UNIQUE INDEX accounts_localpart_lower ON accounts (localpart_lower)`,
		`CREATE TABLE devices (
			user_id TEXT NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
			device_id TEXT NOT NULL,
			display_name TEXT NOT NULL DEFAULT '',
			created_at BIGINT NOT NULL,
			PRIMARY KEY (user_id, device_id)
		)`,
		`CREATE TABLE refresh_tokens (
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			token_hash TEXT NOT NULL,
			user_id TEXT NOT NULL,
			device_id TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			expires_at BIGINT,
			session_expires_at BIGINT,
			next_token_id BIGINT,
			consumed BOOLEAN NOT NULL DEFAULT FALSE,
			FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
		)`,
		`CREATE UNIQUE INDEX refresh_tokens_hash ON refresh_tokens (token_hash)`,
		`CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id)`,
		`CREATE TABLE access_tokens (
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			token_hash TEXT NOT NULL,
			user_id TEXT NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
			device_id TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			expires_at BIGINT,
			refresh_token_id BIGINT REFERENCES refresh_tokens (id) ON DELETE CASCADE,
			used BOOLEAN NOT NULL DEFAULT FALSE,
			FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
		)`,
		`CREATE UNIQUE INDEX access_tokens_hash ON access_tokens (token_hash)`,
		`CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id)`,
		`CREATE TABLE uia_sessions (
			session_id TEXT NOT NULL PRIMARY KEY,
			method TEXT NOT NULL,
			path TEXT NOT NULL,
			params BLOB,
			completed TEXT NOT NULL DEFAULT '{}',
			data TEXT NOT NULL DEFAULT '{}',
			version INTEGER NOT NULL DEFAULT 0,
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL
		)`,
		`CREATE INDEX uia_sessions_expires ON uia_sessions (expires_at)`,
	}, nil},
	{2, "registration tokens and shared-secret nonces", []string{
		`CREATE TABLE registration_tokens (
			token TEXT NOT NULL PRIMARY KEY,
			uses_allowed INTEGER,
			pending INTEGER NOT NULL DEFAULT 0,
			completed INTEGER NOT NULL DEFAULT 0,
			expiry_time BIGINT
		)`,
		`CREATE TABLE registration_token_reservations (
			session_id TEXT NOT NULL PRIMARY KEY,
			token TEXT NOT NULL REFERENCES registration_tokens (token) ON DELETE CASCADE,
			created_at BIGINT NOT NULL
		)`,
		`CREATE TABLE registration_nonces (
			nonce TEXT NOT NULL PRIMARY KEY,
			expires_at BIGINT NOT NULL
		)`,
	}, nil},
	{3, "accounts awaiting approval", []string{
		`ALTER TABLE accounts ADD COLUMN approval_pending BOOLEAN NOT NULL DEFAULT FALSE`,
	}, nil},
	{4, "third-party identifiers and their validation sessions", []string{
		`CREATE TABLE threepid_sessions (
			sid TEXT NOT NULL PRIMARY KEY,
			client_secret TEXT NOT NULL,
			medium TEXT NOT NULL,
			address TEXT NOT NULL,
			purpose TEXT NOT NULL,
			send_attempt BIGINT NOT NULL,
			token_hash TEXT NOT NULL,
			token_expires_at BIGINT NOT NULL,
			next_link TEXT NOT NULL DEFAULT '',
			validated_at BIGINT,
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL
		)`,
		`CREATE UNIQUE INDEX threepid_sessions_key ON threepid_sessions (client_secret, medium, address)`,
		`CREATE INDEX threepid_sessions_expires ON threepid_sessions (expires_at)`,
		`CREATE TABLE threepids (
			medium TEXT NOT NULL,
			address TEXT NOT NULL,
			user_id TEXT NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
			validated_at BIGINT NOT NULL,
			added_at BIGINT NOT NULL,
			PRIMARY KEY (medium, address)
		)`,
		`CREATE INDEX threepids_user ON threepids (user_id)`,
	}, nil},
	{5, "UIA sessions bound to their requester, consumed once, and no stored parameters", []string{
		// Sessions of earlier releases were bound to nobody: drop them (the
		// sweep gives back the registration token uses they held).
		`DELETE FROM uia_sessions`,
		`ALTER TABLE uia_sessions DROP COLUMN params`,
		`ALTER TABLE uia_sessions ADD COLUMN requester TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE uia_sessions ADD COLUMN client_addr TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE uia_sessions ADD COLUMN consumed BOOLEAN NOT NULL DEFAULT FALSE`,
		`CREATE INDEX uia_sessions_client ON uia_sessions (client_addr, expires_at)`,
	}, nil},
	{6, "secrets shared by every instance", []string{
		`CREATE TABLE server_secrets (
			name TEXT NOT NULL PRIMARY KEY,
			value TEXT NOT NULL,
			created_at BIGINT NOT NULL
		)`,
	}, nil},
	{7, "revocations announced to the other processes of an SQLite database", []string{
		`CREATE TABLE revocations (
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			user_id TEXT NOT NULL,
			instance TEXT NOT NULL,
			created_at BIGINT NOT NULL
		)`,
	}, nil},
	{8, "single-use login tokens (m.login.token)", []string{
		`CREATE TABLE login_tokens (
			token_hash TEXT NOT NULL PRIMARY KEY,
			user_id TEXT NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL
		)`,
		`CREATE INDEX login_tokens_expires ON login_tokens (expires_at)`,
	}, nil},
	{9, "account locking, suspension and user types; devices last seen; client addresses; admin audit", []string{
		`ALTER TABLE accounts ADD COLUMN locked BOOLEAN NOT NULL DEFAULT FALSE`,
		`ALTER TABLE accounts ADD COLUMN suspended BOOLEAN NOT NULL DEFAULT FALSE`,
		`ALTER TABLE accounts ADD COLUMN user_type TEXT`,
		`ALTER TABLE accounts ADD COLUMN last_seen_at BIGINT`,
		`CREATE INDEX accounts_created_at ON accounts (created_at)`,
		`ALTER TABLE devices ADD COLUMN last_seen_ip TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE devices ADD COLUMN last_seen_user_agent TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE devices ADD COLUMN last_seen_at BIGINT`,
		`ALTER TABLE devices ADD COLUMN hidden BOOLEAN NOT NULL DEFAULT FALSE`,
		`ALTER TABLE access_tokens ADD COLUMN puppeted_by TEXT NOT NULL DEFAULT ''`,
		`CREATE TABLE client_ips (
			user_id TEXT NOT NULL,
			device_id TEXT NOT NULL,
			ip TEXT NOT NULL,
			user_agent TEXT NOT NULL,
			last_seen BIGINT NOT NULL,
			PRIMARY KEY (user_id, device_id, ip, user_agent),
			FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
		)`,
		`CREATE TABLE admin_audit (
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			created_at BIGINT NOT NULL,
			actor TEXT NOT NULL,
			action TEXT NOT NULL,
			target TEXT NOT NULL,
			detail TEXT NOT NULL DEFAULT '{}'
		)`,
		`CREATE INDEX admin_audit_target ON admin_audit (target, id)`,
	}, nil},
	{10, "OAuth 2.0: clients, grants (codes and device codes), consents, browser sessions; tokens know their client", []string{
		`CREATE TABLE oauth_clients (
			client_id TEXT NOT NULL PRIMARY KEY,
			metadata TEXT NOT NULL,
			metadata_hash TEXT NOT NULL,
			application_type TEXT NOT NULL,
			redirect_uris TEXT NOT NULL,
			grant_types TEXT NOT NULL,
			created_at BIGINT NOT NULL
		)`,
		`CREATE UNIQUE INDEX oauth_clients_metadata ON oauth_clients (metadata_hash)`,
		`CREATE TABLE oauth_grants (
			id TEXT NOT NULL PRIMARY KEY,
			kind TEXT NOT NULL,
			client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
			scope TEXT NOT NULL,
			device_id TEXT NOT NULL,
			redirect_uri TEXT NOT NULL DEFAULT '',
			response_mode TEXT NOT NULL DEFAULT '',
			state TEXT NOT NULL DEFAULT '',
			nonce TEXT NOT NULL DEFAULT '',
			code_challenge TEXT NOT NULL DEFAULT '',
			prompt TEXT NOT NULL DEFAULT '',
			status TEXT NOT NULL DEFAULT 'pending',
			user_id TEXT,
			auth_time BIGINT,
			code_hash TEXT,
			device_code_hash TEXT,
			user_code TEXT,
			last_poll_at BIGINT,
			poll_interval INTEGER NOT NULL DEFAULT 5,
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL
		)`,
		`CREATE UNIQUE INDEX oauth_grants_code ON oauth_grants (code_hash)`,
		`CREATE UNIQUE INDEX oauth_grants_device_code ON oauth_grants (device_code_hash)`,
		`CREATE UNIQUE INDEX oauth_grants_user_code ON oauth_grants (user_code)`,
		`CREATE INDEX oauth_grants_expires ON oauth_grants (expires_at)`,
		`CREATE TABLE oauth_consents (
			user_id TEXT NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
			client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
			scope TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			PRIMARY KEY (user_id, client_id)
		)`,
		`CREATE TABLE browser_sessions (
			id_hash TEXT NOT NULL PRIMARY KEY,
			user_id TEXT NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL
		)`,
		`CREATE INDEX browser_sessions_user ON browser_sessions (user_id)`,
		`ALTER TABLE refresh_tokens ADD COLUMN oauth_client_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE refresh_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE access_tokens ADD COLUMN oauth_client_id TEXT NOT NULL DEFAULT ''`,
	}, nil},
	{11, "terms accepted at registration", []string{
		`ALTER TABLE accounts ADD COLUMN consent_version TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE accounts ADD COLUMN consent_at BIGINT`,
	}, nil},
	{12, "UIA sessions know when a flow is complete and are counted per requester; OAuth clients know who registered them and whether they were ever used", []string{
		`ALTER TABLE uia_sessions ADD COLUMN flow_complete BOOLEAN NOT NULL DEFAULT FALSE`,
		`CREATE INDEX uia_sessions_requester ON uia_sessions (requester, expires_at)`,
		`ALTER TABLE oauth_clients ADD COLUMN registered_from TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE oauth_clients ADD COLUMN first_used_at BIGINT`,
		// Clients registered before this step are kept: they may be in use.
		`UPDATE oauth_clients SET first_used_at = created_at`,
		`CREATE INDEX oauth_clients_unused ON oauth_clients (registered_from, created_at) WHERE first_used_at IS NULL`,
	}, nil},
	{13, "the homeserver outbox: every change of an account, its addresses or its devices is noted, in its own transaction, for the homeserver", homeserverOutbox(false), homeserverOutbox(true)},
	{14, "shadow bans (Synapse's admin API)", []string{
		`ALTER TABLE accounts ADD COLUMN shadow_banned BOOLEAN NOT NULL DEFAULT FALSE`,
	}, nil},
	{15, "external IDs (single sign-on links, as Synapse keeps them) and the record of imports from Synapse", []string{
		`CREATE TABLE external_ids (
			auth_provider TEXT NOT NULL,
			external_id TEXT NOT NULL,
			user_id TEXT NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
			PRIMARY KEY (auth_provider, external_id)
		)`,
		`CREATE INDEX external_ids_user ON external_ids (user_id)`,
		`CREATE TABLE synapse_imports (
			server_name TEXT NOT NULL PRIMARY KEY,
			started_at BIGINT NOT NULL,
			finished_at BIGINT
		)`,
	}, nil},
	{16, "browser sessions know the browser and address they were last used from", []string{
		`ALTER TABLE browser_sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE browser_sessions ADD COLUMN ip TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE browser_sessions ADD COLUMN last_active_at BIGINT`,
	}, nil},
	{17, "upstream identities: sign-ins in progress at a provider, and the sessions each provider session made (back-channel logout)", []string{
		`CREATE TABLE upstream_sessions (
			id TEXT NOT NULL PRIMARY KEY,
			binding_hash TEXT NOT NULL,
			idp_id TEXT NOT NULL,
			purpose TEXT NOT NULL,
			nonce TEXT NOT NULL,
			code_verifier TEXT NOT NULL,
			next TEXT NOT NULL DEFAULT '',
			user_id TEXT NOT NULL DEFAULT '',
			uia_session TEXT NOT NULL DEFAULT '',
			subject TEXT NOT NULL DEFAULT '',
			upstream_sid TEXT NOT NULL DEFAULT '',
			claims TEXT NOT NULL DEFAULT '',
			status TEXT NOT NULL DEFAULT 'started',
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL
		)`,
		`CREATE INDEX upstream_sessions_expiry ON upstream_sessions (expires_at)`,
		`CREATE TABLE upstream_logins (
			idp_id TEXT NOT NULL,
			subject TEXT NOT NULL,
			sid TEXT NOT NULL,
			user_id TEXT NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
			browser_session TEXT NOT NULL DEFAULT '',
			login_token TEXT NOT NULL DEFAULT '',
			device_id TEXT NOT NULL DEFAULT '',
			created_at BIGINT NOT NULL
		)`,
		`CREATE INDEX upstream_logins_session ON upstream_logins (idp_id, sid)`,
		`CREATE INDEX upstream_logins_subject ON upstream_logins (idp_id, subject)`,
		`CREATE INDEX upstream_logins_browser ON upstream_logins (browser_session)`,
		`CREATE INDEX upstream_logins_token ON upstream_logins (login_token)`,
	}, nil},
	{18, "second factors (TOTP, WebAuthn credentials, recovery codes), WebAuthn user handles, sign-ins waiting for a second factor, and when a browser last proved one", []string{
		`CREATE TABLE second_factors (
			id TEXT NOT NULL PRIMARY KEY,
			user_id TEXT NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
			kind TEXT NOT NULL,
			name TEXT NOT NULL DEFAULT '',
			secret TEXT NOT NULL DEFAULT '',
			credential_id TEXT NOT NULL DEFAULT '',
			confirmed BOOLEAN NOT NULL DEFAULT FALSE,
			last_step BIGINT NOT NULL DEFAULT 0,
			created_at BIGINT NOT NULL,
			last_used_at BIGINT
		)`,
		`CREATE INDEX second_factors_user ON second_factors (user_id, kind)`,
		`CREATE UNIQUE INDEX second_factors_credential ON second_factors (credential_id) WHERE credential_id <> ''`,
		`CREATE TABLE webauthn_handles (
			user_id TEXT NOT NULL PRIMARY KEY REFERENCES accounts (user_id) ON DELETE CASCADE,
			handle TEXT NOT NULL UNIQUE
		)`,
		`CREATE TABLE factor_challenges (
			id_hash TEXT NOT NULL PRIMARY KEY,
			user_id TEXT NOT NULL DEFAULT '',
			purpose TEXT NOT NULL,
			next TEXT NOT NULL DEFAULT '',
			ceremony TEXT NOT NULL DEFAULT '',
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL
		)`,
		`CREATE INDEX factor_challenges_expiry ON factor_challenges (expires_at)`,
		`ALTER TABLE browser_sessions ADD COLUMN factor_at BIGINT`,
	}, nil},
}

// homeserverOutbox is migration 13: the outbox, the switch that turns the
// noting on (set at start from the configuration), and the triggers that
// note each change in the transaction that makes it. A note names a user
// (device_id ”) or one of its devices; a later change of the same one
// bumps its version and makes it due again.
func homeserverOutbox(postgres bool) []string {
	stmts := []string{
		`CREATE TABLE homeserver_outbox (
			user_id TEXT NOT NULL,
			device_id TEXT NOT NULL DEFAULT '',
			version BIGINT NOT NULL DEFAULT 1,
			due_at BIGINT NOT NULL DEFAULT 0,
			attempts INTEGER NOT NULL DEFAULT 0,
			last_error TEXT NOT NULL DEFAULT '',
			leased_until BIGINT NOT NULL DEFAULT 0,
			PRIMARY KEY (user_id, device_id)
		)`,
		`CREATE INDEX homeserver_outbox_due ON homeserver_outbox (due_at)`,
		`CREATE TABLE homeserver_sync (
			id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
			enabled BOOLEAN NOT NULL DEFAULT FALSE
		)`,
		`INSERT INTO homeserver_sync (id, enabled) VALUES (1, FALSE)`,
	}
	// What is noted: a device added, removed or renamed; an account made,
	// or its state or profile changed; an address added or removed.
	type watch struct{ name, table, events, user, device string }
	watches := []watch{
		{"devices_added", "devices", "INSERT", "NEW.user_id", "NEW.device_id"},
		{"devices_removed", "devices", "DELETE", "OLD.user_id", "OLD.device_id"},
		{"devices_renamed", "devices", "UPDATE OF display_name, hidden", "NEW.user_id", "NEW.device_id"},
		{"accounts_added", "accounts", "INSERT", "NEW.user_id", "''"},
		{"accounts_changed", "accounts", "UPDATE OF deactivated_at, erased, locked, suspended, display_name, avatar_url, admin, user_type",
			"NEW.user_id", "''"},
		{"threepids_added", "threepids", "INSERT", "NEW.user_id", "''"},
		{"threepids_removed", "threepids", "DELETE", "OLD.user_id", "''"},
	}
	note := func(user, device string) string {
		return `INSERT INTO homeserver_outbox (user_id, device_id) VALUES (` + user + `, ` + device + `)
			ON CONFLICT (user_id, device_id) DO UPDATE SET version = homeserver_outbox.version + 1, due_at = 0`
	}
	for _, w := range watches {
		if !postgres {
			stmts = append(stmts, `CREATE TRIGGER homeserver_`+w.name+` AFTER `+w.events+` ON `+w.table+`
				WHEN (SELECT enabled FROM homeserver_sync WHERE id = 1)
				BEGIN `+note(w.user, w.device)+`; END`)
			continue
		}
		if w.events == "INSERT" || w.events == "DELETE" {
			// Once per statement, over its rows (a bulk insert, an import,
			// pays one call): PostgreSQL's transition tables.
			transition, row := "NEW", strings.TrimPrefix(w.user, "NEW.")
			if w.events == "DELETE" {
				transition, row = "OLD", strings.TrimPrefix(w.user, "OLD.")
			}
			device := strings.TrimPrefix(strings.TrimPrefix(w.device, "NEW."), "OLD.")
			stmts = append(stmts, `CREATE FUNCTION homeserver_`+w.name+`() RETURNS trigger LANGUAGE plpgsql AS $fn$
				BEGIN
					IF (SELECT enabled FROM homeserver_sync WHERE id = 1) THEN
						INSERT INTO homeserver_outbox (user_id, device_id) SELECT DISTINCT `+row+`, `+device+` FROM changed
						ON CONFLICT (user_id, device_id) DO UPDATE SET version = homeserver_outbox.version + 1, due_at = 0;
					END IF;
					RETURN NULL;
				END $fn$`,
				`CREATE TRIGGER homeserver_`+w.name+` AFTER `+w.events+` ON `+w.table+`
				REFERENCING `+transition+` TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION homeserver_`+w.name+`()`)
			continue
		}
		stmts = append(stmts, `CREATE FUNCTION homeserver_`+w.name+`() RETURNS trigger LANGUAGE plpgsql AS $fn$
			BEGIN
				IF (SELECT enabled FROM homeserver_sync WHERE id = 1) THEN
					`+note(w.user, w.device)+`;
				END IF;
				RETURN NULL;
			END $fn$`,
			`CREATE TRIGGER homeserver_`+w.name+` AFTER `+w.events+` ON `+w.table+`
				FOR EACH ROW EXECUTE FUNCTION homeserver_`+w.name+`()`)
	}
	return stmts
}

// migrationLock is the PostgreSQL advisory lock instances starting at once
// take, so that one of them migrates.
const migrationLock = 0x7265676973747261 // "registra"

// Migrate applies every migration the database has not recorded yet.
func (s *Store) Migrate(ctx context.Context) error {
	g := s.db.WithContext(ctx)
	if s.engine == Postgres {
		// One connection holds the session-level lock for the whole run.
		conn, err := s.db.DB()
		if err != nil {
			return err
		}
		c, err := conn.Conn(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		defer c.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock) //nolint:errcheck
	}
	if err := g.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		id INTEGER NOT NULL PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at BIGINT NOT NULL
	)`).Error; err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range migrations {
		err := g.Transaction(func(tx *gorm.DB) error {
			var n int64
			if err := tx.Table("schema_migrations").Where("id = ?", m.id).Count(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			for _, stmt := range m.statements(s.engine) {
				if err := tx.Exec(stmt).Error; err != nil {
					return err
				}
			}
			return tx.Exec(`INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)`,
				m.id, m.name, s.nowMS()).Error
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.id, m.name, err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v *int
	err := s.db.WithContext(ctx).Raw(`SELECT MAX(id) FROM schema_migrations`).Scan(&v).Error
	if err != nil || v == nil {
		return 0, err
	}
	return *v, nil
}
