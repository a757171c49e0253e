package db

import (
	"context"
	"errors"
	"strings"

	"gorm.io/gorm"
)

// ExternalID links an account to an identity at an upstream provider
// (Synapse's user_external_ids).
type ExternalID struct {
	AuthProvider string `gorm:"column:auth_provider;primaryKey"`
	ExternalID   string `gorm:"column:external_id;primaryKey"`
	UserID       string `gorm:"column:user_id"`
}

// TableName implements gorm's Tabler.
func (ExternalID) TableName() string { return "external_ids" }

// ExternalIDs lists the user's external IDs.
func (s *Store) ExternalIDs(ctx context.Context, userID string) ([]ExternalID, error) {
	var out []ExternalID
	err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("auth_provider, external_id").Find(&out).Error
	return out, translate(err)
}

// ImportedRefreshToken is a refresh token as an import writes it, by its
// hash (its place in a rotation chain is an ImportBatch.RefreshLinks).
type ImportedRefreshToken struct {
	TokenHash, UserID, DeviceID string
	CreatedAt                   int64
	ExpiresAt, SessionExpiresAt *int64
}

// ImportedAccessToken is an access token as an import writes it; its
// refresh token by that token's hash.
type ImportedAccessToken struct {
	TokenHash, UserID, DeviceID string
	CreatedAt                   int64
	ExpiresAt                   *int64
	RefreshTokenHash            string
	Used                        bool
	PuppetedBy                  string
}

// ImportBatch is rows an import writes together.
type ImportBatch struct {
	Accounts           []Account
	Threepids          []Threepid
	ExternalIDs        []ExternalID
	Devices            []Device
	RefreshTokens      []ImportedRefreshToken
	AccessTokens       []ImportedAccessToken
	RegistrationTokens []RegistrationToken
	// RefreshLinks are (token, the token it was rotated into) by hash,
	// linked once both are in (a chain may span batches).
	RefreshLinks [][2]string
}

// importChunk bounds the rows of one statement (within both engines'
// limits on parameters: at most 18 columns a row).
const importChunk = 1000

// Import writes a batch in one transaction; a row that is there already
// (by its key) is left as it is, so running an import again, or resuming
// one, changes nothing that was imported. It returns how many rows it
// added (and refresh tokens it linked).
func (s *Store) Import(ctx context.Context, b ImportBatch) (int64, error) {
	var added int64
	err := s.write(ctx, func(tx *gorm.DB) error {
		added = 0
		ins := func(table string, cols []string, n int, row func(i int) []any) error {
			res, err := insertRows(tx, table, cols, n, row)
			added += res
			return err
		}
		if err := ins("accounts", accountColumns, len(b.Accounts), func(i int) []any { return accountRow(b.Accounts[i]) }); err != nil {
			return err
		}
		if err := ins("threepids", []string{"medium", "address", "user_id", "validated_at", "added_at"}, len(b.Threepids), func(i int) []any {
			t := b.Threepids[i]
			return []any{t.Medium, t.Address, t.UserID, t.ValidatedAt, t.AddedAt}
		}); err != nil {
			return err
		}
		if err := ins("external_ids", []string{"auth_provider", "external_id", "user_id"}, len(b.ExternalIDs), func(i int) []any {
			e := b.ExternalIDs[i]
			return []any{e.AuthProvider, e.ExternalID, e.UserID}
		}); err != nil {
			return err
		}
		if err := ins("devices", []string{"user_id", "device_id", "display_name", "created_at", "last_seen_ip", "last_seen_user_agent",
			"last_seen_at", "hidden"}, len(b.Devices), func(i int) []any {
			d := b.Devices[i]
			return []any{d.UserID, d.DeviceID, d.DisplayName, d.CreatedAt, d.LastSeenIP, d.LastSeenUserAgent, d.LastSeenAt, d.Hidden}
		}); err != nil {
			return err
		}
		if err := ins("registration_tokens", []string{"token", "uses_allowed", "pending", "completed", "expiry_time"}, len(b.RegistrationTokens),
			func(i int) []any {
				t := b.RegistrationTokens[i]
				return []any{t.Token, t.UsesAllowed, t.Pending, t.Completed, t.ExpiryTime}
			}); err != nil {
			return err
		}
		if err := ins("refresh_tokens", []string{"token_hash", "user_id", "device_id", "created_at", "expires_at", "session_expires_at"},
			len(b.RefreshTokens), func(i int) []any {
				r := b.RefreshTokens[i]
				return []any{r.TokenHash, r.UserID, r.DeviceID, r.CreatedAt, r.ExpiresAt, r.SessionExpiresAt}
			}); err != nil {
			return err
		}
		ids, err := refreshIDs(tx, b)
		if err != nil {
			return err
		}
		linked, err := linkRefreshTokens(tx, b.RefreshLinks, ids)
		added += linked
		if err != nil {
			return err
		}
		return ins("access_tokens", []string{"token_hash", "user_id", "device_id", "created_at", "expires_at", "used", "puppeted_by",
			"refresh_token_id"}, len(b.AccessTokens), func(i int) []any {
			a := b.AccessTokens[i]
			var refresh *int64
			if id, ok := ids[a.RefreshTokenHash]; ok && a.RefreshTokenHash != "" {
				refresh = &id
			}
			return []any{a.TokenHash, a.UserID, a.DeviceID, a.CreatedAt, a.ExpiresAt, a.Used, a.PuppetedBy, refresh}
		})
	})
	return added, translate(err)
}

var accountColumns = []string{"user_id", "localpart_lower", "password_hash", "kind", "admin", "appservice_id", "display_name",
	"avatar_url", "created_at", "deactivated_at", "erased", "approval_pending", "locked", "suspended", "shadow_banned", "user_type",
	"consent_version", "consent_at"}

func accountRow(a Account) []any {
	return []any{a.UserID, a.LocalpartLower, a.PasswordHash, a.Kind, a.Admin, a.AppserviceID, a.DisplayName, a.AvatarURL,
		a.CreatedAt, a.DeactivatedAt, a.Erased, a.ApprovalPending, a.Locked, a.Suspended, a.ShadowBanned, a.UserType,
		a.ConsentVersion, a.ConsentAt}
}

// linkRefreshTokens sets each linked token's next token (where it has
// none yet), a chunk of links per statement.
func linkRefreshTokens(tx *gorm.DB, links [][2]string, ids map[string]int64) (int64, error) {
	var pairs []any
	for _, l := range links {
		if next, ok := ids[l[1]]; ok {
			pairs = append(pairs, l[0], next)
		}
	}
	var linked int64
	for start := 0; start < len(pairs); start += 2 * importChunk {
		end := min(start+2*importChunk, len(pairs))
		values := strings.TrimSuffix(strings.Repeat("(?, CAST(? AS BIGINT)), ", (end-start)/2), ", ")
		res := tx.Exec(`UPDATE refresh_tokens SET next_token_id = v.column2 FROM (VALUES `+values+`) AS v
			WHERE refresh_tokens.token_hash = v.column1 AND refresh_tokens.next_token_id IS NULL`, pairs[start:end]...)
		if res.Error != nil {
			return linked, res.Error
		}
		linked += res.RowsAffected
	}
	return linked, nil
}

// insertRows inserts n rows into table, a chunk per statement, leaving
// the rows whose key is there already; it returns how many it added.
func insertRows(tx *gorm.DB, table string, cols []string, n int, row func(i int) []any) (int64, error) {
	var added int64
	placeholders := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	for start := 0; start < n; start += importChunk {
		end := min(start+importChunk, n)
		var sql strings.Builder
		sql.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
		args := make([]any, 0, (end-start)*len(cols))
		for i := start; i < end; i++ {
			if i > start {
				sql.WriteString(", ")
			}
			sql.WriteString(placeholders)
			args = append(args, row(i)...)
		}
		sql.WriteString(" ON CONFLICT DO NOTHING")
		res := tx.Exec(sql.String(), args...)
		if res.Error != nil {
			return added, res.Error
		}
		added += res.RowsAffected
	}
	return added, nil
}

// refreshIDs maps the hashes of the refresh tokens a batch refers to onto
// their IDs.
func refreshIDs(tx *gorm.DB, b ImportBatch) (map[string]int64, error) {
	var hashes []string
	for _, a := range b.AccessTokens {
		if a.RefreshTokenHash != "" {
			hashes = append(hashes, a.RefreshTokenHash)
		}
	}
	for _, l := range b.RefreshLinks {
		hashes = append(hashes, l[1])
	}
	out := map[string]int64{}
	for start := 0; start < len(hashes); start += importChunk {
		var rows []struct {
			ID        int64
			TokenHash string
		}
		end := min(start+importChunk, len(hashes))
		if err := tx.Raw(`SELECT id, token_hash FROM refresh_tokens WHERE token_hash IN ?`, hashes[start:end]).Scan(&rows).Error; err != nil {
			return nil, err
		}
		for _, r := range rows {
			out[r.TokenHash] = r.ID
		}
	}
	return out, nil
}

// ErrImportedElsewhere refuses an import into a database that holds
// accounts of its own (or of another server's import).
var ErrImportedElsewhere = errors.New("db: the database holds accounts that no import of this server made")

// StartImport records that an import of serverName begins. A database
// with accounts is refused unless merge is set or an import of the same
// server began before (resuming it); it reports whether that one had
// finished.
func (s *Store) StartImport(ctx context.Context, serverName string, merge bool) (resumed, finished bool, err error) {
	err = s.write(ctx, func(tx *gorm.DB) error {
		var rows []struct {
			ServerName string
			FinishedAt *int64
		}
		if err := tx.Raw(`SELECT server_name, finished_at FROM synapse_imports WHERE server_name = ?`, serverName).Scan(&rows).Error; err != nil {
			return err
		}
		if len(rows) > 0 {
			resumed, finished = true, rows[0].FinishedAt != nil
			return nil
		}
		var n int64
		if err := tx.Model(&Account{}).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 && !merge {
			return ErrImportedElsewhere
		}
		return tx.Exec(`INSERT INTO synapse_imports (server_name, started_at) VALUES (?, ?)`, serverName, s.nowMS()).Error
	})
	if errors.Is(err, ErrImportedElsewhere) {
		return false, false, err
	}
	return resumed, finished, translate(err)
}

// FinishImport records that the import of serverName completed.
func (s *Store) FinishImport(ctx context.Context, serverName string) error {
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		return tx.Exec(`UPDATE synapse_imports SET finished_at = ? WHERE server_name = ?`, s.nowMS(), serverName).Error
	}))
}

// LocalpartsTaken returns which of the lower-cased localparts are taken.
func (s *Store) LocalpartsTaken(ctx context.Context, lower []string) (map[string]string, error) {
	out := map[string]string{}
	for start := 0; start < len(lower); start += importChunk {
		var rows []struct{ UserID, LocalpartLower string }
		end := min(start+importChunk, len(lower))
		if err := s.db.WithContext(ctx).Raw(`SELECT user_id, localpart_lower FROM accounts WHERE localpart_lower IN ?`, lower[start:end]).
			Scan(&rows).Error; err != nil {
			return nil, translate(err)
		}
		for _, r := range rows {
			out[strings.ToLower(r.LocalpartLower)] = r.UserID
		}
	}
	return out, nil
}
