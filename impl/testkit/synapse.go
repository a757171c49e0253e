// Package testkit is test support shared by the tests of several
// packages; nothing outside tests imports it.
package testkit

import (
	"database/sql"
	"fmt"

	_ "github.com/mattn/go-sqlite3" // database/sql driver "sqlite3"
	"golang.org/x/crypto/bcrypt"
)

// SynapseTables are the tables of a Synapse database (schema 82, Synapse
// 1.94) that an import reads, with their columns as Synapse has them.
var SynapseTables = []string{
	`CREATE TABLE schema_version (Lock CHAR(1) NOT NULL DEFAULT 'X' UNIQUE, version INTEGER NOT NULL, upgraded BOOL NOT NULL)`,
	`CREATE TABLE users (name TEXT, password_hash TEXT, creation_ts BIGINT, admin SMALLINT DEFAULT 0 NOT NULL, upgrade_ts BIGINT,
		is_guest SMALLINT DEFAULT 0 NOT NULL, appservice_id TEXT, consent_version TEXT, consent_server_notice_sent TEXT,
		user_type TEXT DEFAULT NULL, deactivated SMALLINT DEFAULT 0 NOT NULL, shadow_banned BOOLEAN, consent_ts bigint,
		approved BOOLEAN, locked BOOLEAN DEFAULT FALSE NOT NULL, UNIQUE(name))`,
	`CREATE TABLE profiles (user_id TEXT NOT NULL, displayname TEXT, avatar_url TEXT, full_user_id TEXT, UNIQUE(user_id))`,
	`CREATE TABLE erased_users (user_id TEXT NOT NULL)`,
	`CREATE TABLE user_threepids (user_id TEXT NOT NULL, medium TEXT NOT NULL, address TEXT NOT NULL, validated_at BIGINT NOT NULL,
		added_at BIGINT NOT NULL, CONSTRAINT medium_address UNIQUE (medium, address))`,
	`CREATE TABLE user_external_ids (auth_provider TEXT NOT NULL, external_id TEXT NOT NULL, user_id TEXT NOT NULL,
		UNIQUE (auth_provider, external_id))`,
	`CREATE TABLE devices (user_id TEXT NOT NULL, device_id TEXT NOT NULL, display_name TEXT, last_seen BIGINT, ip TEXT,
		user_agent TEXT, hidden BOOLEAN DEFAULT 0, CONSTRAINT device_uniqueness UNIQUE (user_id, device_id))`,
	`CREATE TABLE refresh_tokens (id BIGINT PRIMARY KEY, user_id TEXT NOT NULL, device_id TEXT NOT NULL, token TEXT NOT NULL,
		next_token_id BIGINT REFERENCES refresh_tokens (id) ON DELETE CASCADE, expiry_ts BIGINT DEFAULT NULL,
		ultimate_session_expiry_ts BIGINT DEFAULT NULL, UNIQUE(token))`,
	`CREATE TABLE access_tokens (id BIGINT PRIMARY KEY, user_id TEXT NOT NULL, device_id TEXT, token TEXT NOT NULL,
		valid_until_ms BIGINT, puppets_user_id TEXT, last_validated BIGINT,
		refresh_token_id BIGINT REFERENCES refresh_tokens (id) ON DELETE CASCADE, used BOOLEAN, UNIQUE(token))`,
	`CREATE TABLE registration_tokens (token TEXT NOT NULL, uses_allowed INT, pending INT NOT NULL, completed INT NOT NULL,
		expiry_time BIGINT, UNIQUE (token))`,
}

// SynapseFixture describes a synthetic Synapse database.
type SynapseFixture struct {
	// Users is how many ordinary users (@user<i>:ServerName), each with
	// DevicesPerUser devices, an access token on each, an email and an
	// external ID. User 0 is an admin, user 1 is deactivated and erased,
	// user 2 is locked and shadow-banned; every user's password is
	// "pw-user<i>" (bcrypt, cost 4, with Pepper), the same hash for all
	// when SameHash.
	Users, DevicesPerUser int
	ServerName, Pepper    string
	SameHash              bool
	// Oddities adds what cannot move: a localpart registrar refuses, a
	// token of a deleted device, two users differing by case, an unknown
	// hash scheme.
	Oddities bool
}

// AccessToken is the plaintext token of user i's device d.
func AccessToken(i, d int) string { return fmt.Sprintf("syt_user%d_dev%d_secret", i, d) }

// RefreshToken is user i's refresh token (of device 0) and the one it
// was rotated into.
func RefreshToken(i int, rotated bool) string {
	if rotated {
		return fmt.Sprintf("syr_user%d_next", i)
	}
	return fmt.Sprintf("syr_user%d_first", i)
}

// WriteSynapseDB writes the fixture into a new SQLite file at path.
func WriteSynapseDB(path string, f SynapseFixture) error {
	d, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		return err
	}
	defer d.Close()
	tx, err := d.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	for _, stmt := range SynapseTables {
		if _, err := tx.Exec(stmt); err != nil {
			return err
		}
	}
	exec := func(q string, args ...any) {
		if err == nil {
			_, err = tx.Exec(q, args...)
		}
	}
	exec(`INSERT INTO schema_version (version, upgraded) VALUES (82, 1)`)
	var sharedHash []byte
	hash := func(i int) string {
		if f.SameHash && sharedHash != nil {
			return string(sharedHash)
		}
		h, herr := bcrypt.GenerateFromPassword([]byte(fmt.Sprintf("pw-user%d", i)+f.Pepper), 4)
		if herr != nil {
			err = herr
		}
		sharedHash = h
		return string(h)
	}
	tokenID, refreshID := int64(1), int64(1)
	for i := 0; i < f.Users; i++ {
		user := fmt.Sprintf("@user%d:%s", i, f.ServerName)
		exec(`INSERT INTO users (name, password_hash, creation_ts, admin, deactivated, shadow_banned, locked, approved, consent_version, consent_ts)
			VALUES (?, ?, ?, ?, ?, ?, ?, TRUE, ?, ?)`, user, hash(i), 1_700_000_000+i, boolInt(i == 0), boolInt(i == 1), i == 2, i == 2,
			"1.0", 1_700_000_000_000)
		exec(`INSERT INTO profiles (user_id, displayname, full_user_id) VALUES (?, ?, ?)`, fmt.Sprintf("user%d", i), fmt.Sprintf("User %d", i), user)
		exec(`INSERT INTO user_threepids VALUES (?, 'email', ?, 1700000000001, 1700000000000)`, user, fmt.Sprintf("user%d@example.org", i))
		exec(`INSERT INTO user_external_ids VALUES ('oidc-google', ?, ?)`, fmt.Sprintf("google-%d", i), user)
		for dv := 0; dv < f.DevicesPerUser; dv++ {
			device := fmt.Sprintf("DEV%d", dv)
			exec(`INSERT INTO devices (user_id, device_id, display_name, last_seen, ip, user_agent) VALUES (?, ?, ?, ?, '192.0.2.1', 'Element X')`,
				user, device, fmt.Sprintf("Device %d", dv), 1_700_000_100_000)
			var refresh any
			if dv == 0 {
				exec(`INSERT INTO refresh_tokens (id, user_id, device_id, token, expiry_ts) VALUES (?, ?, ?, ?, NULL)`,
					refreshID+1, user, device, RefreshToken(i, true))
				exec(`INSERT INTO refresh_tokens (id, user_id, device_id, token, next_token_id) VALUES (?, ?, ?, ?, ?)`,
					refreshID, user, device, RefreshToken(i, false), refreshID+1)
				refresh = refreshID + 1
				refreshID += 2
			}
			exec(`INSERT INTO access_tokens (id, user_id, device_id, token, refresh_token_id, used) VALUES (?, ?, ?, ?, ?, FALSE)`,
				tokenID, user, device, AccessToken(i, dv), refresh)
			tokenID++
		}
		// Synapse's own hidden device (cross-signing keys): not moved.
		exec(`INSERT INTO devices (user_id, device_id, hidden) VALUES (?, 'MASTERKEY', TRUE)`, user)
	}
	if f.Users > 1 {
		exec(`INSERT INTO erased_users VALUES (?)`, fmt.Sprintf("@user1:%s", f.ServerName))
	}
	exec(`INSERT INTO registration_tokens VALUES ('invite', 10, 1, 3, NULL)`)
	if f.Oddities {
		exec(`INSERT INTO users (name, password_hash, creation_ts) VALUES (?, '', 1)`, "@bad name:"+f.ServerName)
		exec(`INSERT INTO users (name, password_hash, creation_ts) VALUES (?, '', 1)`, "@User0:"+f.ServerName)
		exec(`INSERT INTO users (name, password_hash, creation_ts) VALUES (?, 'pbkdf2:sha1:xyz', 1)`, "@oddhash:"+f.ServerName)
		exec(`INSERT INTO access_tokens (id, user_id, device_id, token) VALUES (?, ?, 'GONE', 'syt_gone_device')`,
			tokenID, fmt.Sprintf("@user0:%s", f.ServerName))
	}
	if err != nil {
		return err
	}
	return tx.Commit()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
