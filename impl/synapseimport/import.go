package synapseimport

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/secrets"
)

// Store is what the import writes registrar's database through.
type Store interface {
	StartImport(ctx context.Context, serverName string, merge bool) (resumed, finished bool, err error)
	FinishImport(ctx context.Context, serverName string) error
	Import(ctx context.Context, b db.ImportBatch) (int64, error)
	LocalpartsTaken(ctx context.Context, lower []string) (map[string]string, error)
}

// Options tune a run.
type Options struct {
	// ServerName is registrar's server name; Synapse's users must be of it.
	ServerName string
	// Apply writes; without it the run only counts and lists (a dry run).
	Apply bool
	// Merge imports into a database that has accounts of its own.
	Merge bool
	// BatchSize is how many rows are read, and written, at a time.
	BatchSize int
	// Progress is told after each batch of a table.
	Progress func(table string, done, total int64)
	Now      func() time.Time
}

// The tables read, in the order they are moved.
const (
	TableUsers              = "users"
	TableThreepids          = "user_threepids"
	TableExternalIDs        = "user_external_ids"
	TableDevices            = "devices"
	TableRefreshTokens      = "refresh_tokens"
	TableRefreshChains      = "refresh_token_chains"
	TableAccessTokens       = "access_tokens"
	TableRegistrationTokens = "registration_tokens"
)

// Tables are the tables an import reads, in its order.
var Tables = []string{TableUsers, TableThreepids, TableExternalIDs, TableDevices, TableRefreshTokens, TableRefreshChains, TableAccessTokens,
	TableRegistrationTokens}

// Report is what a run found and did.
type Report struct {
	SchemaVersion int
	// Read counts the rows read, Moved those written (0 in a dry run),
	// by table.
	Read, Moved map[string]int64
	// Cannot lists what cannot move, and why (never a secret).
	Cannot []string
	// Resumed: an earlier run of this import was interrupted or done.
	Resumed bool
}

// importer is one run.
type importer struct {
	src   *Source
	store Store
	o     Options
	rep   *Report
	// refused are the users that do not move (their rows neither).
	refused map[string]bool
	// w writes the current pass's batches while the next one is read.
	w *writer
}

// writer writes batches in order, one at a time, beside the reading.
type writer struct {
	batches chan pendingBatch
	done    chan error
}

type pendingBatch struct {
	table string
	b     db.ImportBatch
}

// startWriter starts the writer of a pass.
func (im *importer) startWriter(ctx context.Context) *writer {
	w := &writer{batches: make(chan pendingBatch, 1), done: make(chan error, 1)}
	go func() {
		var failed error
		for p := range w.batches {
			if failed != nil {
				continue
			}
			n, err := im.store.Import(ctx, p.b)
			if err != nil {
				failed = fmt.Errorf("%s: %w", p.table, err)
				continue
			}
			im.rep.Moved[p.table] += n
		}
		w.done <- failed
	}()
	return w
}

// finish waits for the pass's last batch and returns the first error.
func (w *writer) finish() error {
	close(w.batches)
	return <-w.done
}

// Run moves (or, without Apply, counts) everything.
func Run(ctx context.Context, src *Source, store Store, o Options) (Report, error) {
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Progress == nil {
		o.Progress = func(string, int64, int64) {}
	}
	rep := Report{SchemaVersion: src.Version, Read: map[string]int64{}, Moved: map[string]int64{}}
	im := &importer{src: src, store: store, o: o, rep: &rep, refused: map[string]bool{}}
	if o.Apply {
		resumed, _, err := store.StartImport(ctx, o.ServerName, o.Merge)
		if errors.Is(err, db.ErrImportedElsewhere) {
			return rep, fmt.Errorf("registrar's database already has accounts: run with -merge to import into it")
		}
		if err != nil {
			return rep, err
		}
		rep.Resumed = resumed
	}
	if err := im.caseClashes(ctx); err != nil {
		return rep, err
	}
	// Each pass's rows need the earlier passes' written (devices their
	// accounts, tokens their devices, chains their tokens).
	for _, pass := range []func(context.Context) error{im.users, im.threepids, im.externalIDs, im.devices, im.refreshTokens,
		im.refreshChains, im.accessTokens, im.registrationTokens} {
		im.w = im.startWriter(ctx)
		err := pass(ctx)
		if werr := im.w.finish(); err == nil {
			err = werr
		}
		if err != nil {
			return rep, err
		}
	}
	if o.Apply {
		return rep, store.FinishImport(ctx, o.ServerName)
	}
	return rep, nil
}

func (im *importer) cannot(format string, args ...any) {
	im.rep.Cannot = append(im.rep.Cannot, fmt.Sprintf(format, args...))
}

// write hands a batch to the pass's writer (in a dry run it counts it
// only).
func (im *importer) write(ctx context.Context, table string, b db.ImportBatch, rows int) error {
	im.rep.Read[table] += int64(rows)
	if !im.o.Apply {
		return nil
	}
	select {
	case im.w.batches <- pendingBatch{table, b}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// count is a table's row count (for progress).
func (im *importer) count(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := im.src.q.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

// caseClashes refuses the users whose localpart equals another's but for
// case (registrar's localparts are unique case-insensitively): the one
// all in lower case moves (what Synapse has made since 2016), or else the
// first by name.
func (im *importer) caseClashes(ctx context.Context) error {
	rows, err := im.src.q.QueryContext(ctx, `SELECT name FROM users WHERE lower(name) IN
		(SELECT lower(name) FROM users GROUP BY lower(name) HAVING COUNT(*) > 1)
		ORDER BY lower(name), CASE WHEN name = lower(name) THEN 0 ELSE 1 END, name`)
	if err != nil {
		return err
	}
	defer rows.Close()
	first := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		if lower := strings.ToLower(name); first[lower] {
			im.refused[name] = true
			im.cannot("user %s: another user has the same ID but for case", name)
		} else {
			first[lower] = true
		}
	}
	return rows.Err()
}

// localpartOf is a local user ID's localpart, or "" for another server's.
func (im *importer) localpartOf(userID string) string {
	lp, server, ok := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	if !ok || server != im.o.ServerName || !strings.HasPrefix(userID, "@") {
		return ""
	}
	return lp
}

func ms(secondsOrMS sql.NullInt64, seconds bool) int64 {
	if !secondsOrMS.Valid {
		return 0
	}
	if seconds {
		return secondsOrMS.Int64 * 1000
	}
	return secondsOrMS.Int64
}

func optMS(v sql.NullInt64) *int64 {
	if !v.Valid {
		return nil
	}
	x := v.Int64
	return &x
}

// users moves the users with their state, profile and password hash.
func (im *importer) users(ctx context.Context) error {
	total, err := im.count(ctx, `SELECT COUNT(*) FROM users`)
	if err != nil {
		return err
	}
	cols := []string{"u.name", "u.password_hash", "u.creation_ts", "u.admin", "u.is_guest", "u.deactivated", "u.user_type",
		"u.appservice_id", "p.displayname", "p.avatar_url", "e.user_id IS NOT NULL"}
	optional := []string{"shadow_banned", "approved", "locked", "suspended", "consent_version", "consent_ts"}
	for _, c := range optional {
		if im.src.columns["users."+c] {
			cols = append(cols, "u."+c)
		} else {
			cols = append(cols, "NULL")
		}
	}
	// profiles.user_id is the localpart (full_user_id, from schema 76, is
	// filled in the background on older rows).
	localpart := "substr(u.name, 2, instr(u.name, ':') - 2)"
	if im.src.postgres {
		localpart = "substring(u.name from 2 for position(':' in u.name) - 2)"
	}
	query := `SELECT ` + strings.Join(cols, ", ") + ` FROM users u
		LEFT JOIN profiles p ON p.user_id = ` + localpart + `
		LEFT JOIN (SELECT DISTINCT user_id FROM erased_users) e ON e.user_id = u.name
		WHERE u.name > ` + im.src.param(1) + ` ORDER BY u.name LIMIT ` + im.src.param(2)
	now := im.o.Now().UnixMilli()
	var done int64
	after := ""
	im.o.Progress(TableUsers, 0, total)
	for {
		rows, err := im.src.q.QueryContext(ctx, query, after, im.o.BatchSize)
		if err != nil {
			return fmt.Errorf("users: %w", err)
		}
		var batch db.ImportBatch
		var lowers []string
		n := 0
		for rows.Next() {
			var (
				name                                                    string
				hash, userType, appservice, display, avatar, consentVer sql.NullString
				created, consentTS                                      sql.NullInt64
				admin, guest, deactivated                               sql.NullInt64
				erased                                                  bool
				shadow, approved, locked, suspended                     sql.NullBool
			)
			if err := rows.Scan(&name, &hash, &created, &admin, &guest, &deactivated, &userType, &appservice, &display, &avatar, &erased,
				&shadow, &approved, &locked, &suspended, &consentVer, &consentTS); err != nil {
				rows.Close()
				return fmt.Errorf("users: %w", err)
			}
			n++
			after = name
			lp := im.localpartOf(name)
			switch {
			case im.refused[name]:
				continue
			case lp == "":
				im.refused[name] = true
				im.cannot("user %s: not a user of %s", name, im.o.ServerName)
				continue
			case !accounts.HistoricalLocalpart(lp):
				im.refused[name] = true
				im.cannot("user %s: registrar's rules refuse its localpart (printable ASCII but ':' only)", name)
				continue
			}
			a := db.Account{UserID: name, LocalpartLower: strings.ToLower(lp), Kind: db.KindUser, Admin: admin.Int64 != 0,
				AppserviceID: appservice.String, DisplayName: display.String, AvatarURL: avatar.String, CreatedAt: ms(created, true),
				Erased: erased, ShadowBanned: shadow.Bool, Locked: locked.Bool, Suspended: suspended.Bool,
				ApprovalPending: approved.Valid && !approved.Bool, ConsentVersion: consentVer.String, ConsentAt: optMS(consentTS)}
			if guest.Int64 != 0 {
				a.Kind = db.KindGuest
			}
			if userType.Valid && userType.String != "" {
				t := userType.String
				a.UserType = &t
			}
			switch h := hash.String; {
			case h == "":
			case strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$"):
				a.PasswordHash = h
			default:
				im.cannot("user %s: its password hash is of an unknown scheme; it moves without a password (reset it)", name)
			}
			if deactivated.Int64 != 0 {
				a.DeactivatedAt, a.PasswordHash = &now, ""
			}
			batch.Accounts = append(batch.Accounts, a)
			lowers = append(lowers, a.LocalpartLower)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("users: %w", err)
		}
		if n == 0 {
			return nil
		}
		if err := im.refuseTaken(ctx, &batch, lowers); err != nil {
			return err
		}
		if err := im.write(ctx, TableUsers, batch, n); err != nil {
			return err
		}
		done += int64(n)
		im.o.Progress(TableUsers, done, total)
	}
}

// refuseTaken drops the accounts whose localpart registrar holds for
// another user ID (a merge).
func (im *importer) refuseTaken(ctx context.Context, batch *db.ImportBatch, lowers []string) error {
	taken, err := im.store.LocalpartsTaken(ctx, lowers)
	if err != nil {
		return err
	}
	kept := batch.Accounts[:0]
	for _, a := range batch.Accounts {
		if owner, ok := taken[a.LocalpartLower]; ok && owner != a.UserID {
			im.refused[a.UserID] = true
			im.cannot("user %s: registrar has %s already", a.UserID, owner)
			continue
		}
		kept = append(kept, a)
	}
	batch.Accounts = kept
	return nil
}

// pass reads a table in keyset order, a batch at a time: query takes the
// key of the last row read (start before the first) as its first
// parameters and the batch size as its last; scan reads one row into the
// batch and returns its key.
func (im *importer) pass(ctx context.Context, table, countQuery, query string, start []any,
	scan func(rows *sql.Rows, b *db.ImportBatch) ([]any, error)) error {
	total, err := im.count(ctx, countQuery)
	if err != nil {
		return fmt.Errorf("%s: %w", table, err)
	}
	im.o.Progress(table, 0, total)
	key := start
	var done int64
	for {
		rows, err := im.src.q.QueryContext(ctx, query, append(key, im.o.BatchSize)...)
		if err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
		var b db.ImportBatch
		n := 0
		for rows.Next() {
			k, err := scan(rows, &b)
			if err != nil {
				rows.Close()
				return fmt.Errorf("%s: %w", table, err)
			}
			key = k
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
		if n == 0 {
			return nil
		}
		if err := im.write(ctx, table, b, n); err != nil {
			return err
		}
		done += int64(n)
		im.o.Progress(table, done, total)
	}
}

// tuple is a keyset condition over cols, with placeholders from 1.
func (im *importer) tuple(cols ...string) string {
	ps := make([]string, len(cols))
	for i := range cols {
		ps[i] = im.src.param(i + 1)
	}
	return "(" + strings.Join(cols, ", ") + ") > (" + strings.Join(ps, ", ") + ")"
}

func (im *importer) limit(n int) string { return " LIMIT " + im.src.param(n) }

func (im *importer) threepids(ctx context.Context) error {
	return im.pass(ctx, TableThreepids, `SELECT COUNT(*) FROM user_threepids`,
		`SELECT user_id, medium, address, validated_at, added_at FROM user_threepids WHERE `+im.tuple("medium", "address")+
			` ORDER BY medium, address`+im.limit(3), []any{"", ""},
		func(rows *sql.Rows, b *db.ImportBatch) ([]any, error) {
			var t db.Threepid
			var validated, added sql.NullInt64
			if err := rows.Scan(&t.UserID, &t.Medium, &t.Address, &validated, &added); err != nil {
				return nil, err
			}
			t.ValidatedAt, t.AddedAt = validated.Int64, added.Int64
			if !im.refused[t.UserID] && im.localpartOf(t.UserID) != "" {
				b.Threepids = append(b.Threepids, t)
			}
			return []any{t.Medium, t.Address}, nil
		})
}

func (im *importer) externalIDs(ctx context.Context) error {
	return im.pass(ctx, TableExternalIDs, `SELECT COUNT(*) FROM user_external_ids`,
		`SELECT auth_provider, external_id, user_id FROM user_external_ids WHERE `+im.tuple("auth_provider", "external_id")+
			` ORDER BY auth_provider, external_id`+im.limit(3), []any{"", ""},
		func(rows *sql.Rows, b *db.ImportBatch) ([]any, error) {
			var e db.ExternalID
			if err := rows.Scan(&e.AuthProvider, &e.ExternalID, &e.UserID); err != nil {
				return nil, err
			}
			if !im.refused[e.UserID] && im.localpartOf(e.UserID) != "" {
				b.ExternalIDs = append(b.ExternalIDs, e)
			}
			return []any{e.AuthProvider, e.ExternalID}, nil
		})
}

// devices moves the devices people use; Synapse's hidden devices hold
// cross-signing keys, which stay Synapse's.
func (im *importer) devices(ctx context.Context) error {
	notHidden := "(hidden IS NULL OR hidden = " + im.falseValue() + ")"
	return im.pass(ctx, TableDevices, `SELECT COUNT(*) FROM devices WHERE `+notHidden,
		`SELECT user_id, device_id, display_name, last_seen, ip, user_agent FROM devices WHERE `+notHidden+` AND `+
			im.tuple("user_id", "device_id")+` ORDER BY user_id, device_id`+im.limit(3), []any{"", ""},
		func(rows *sql.Rows, b *db.ImportBatch) ([]any, error) {
			var d db.Device
			var name, ip, ua sql.NullString
			var seen sql.NullInt64
			if err := rows.Scan(&d.UserID, &d.DeviceID, &name, &seen, &ip, &ua); err != nil {
				return nil, err
			}
			d.DisplayName, d.LastSeenIP, d.LastSeenUserAgent, d.LastSeenAt = name.String, ip.String, ua.String, optMS(seen)
			d.CreatedAt = seen.Int64
			if !im.refused[d.UserID] && im.localpartOf(d.UserID) != "" {
				b.Devices = append(b.Devices, d)
			}
			return []any{d.UserID, d.DeviceID}, nil
		})
}

func (im *importer) falseValue() string {
	if im.src.postgres {
		return "FALSE"
	}
	return "0"
}

// refreshTokens moves refresh tokens by their hash (refreshChains links
// them).
func (im *importer) refreshTokens(ctx context.Context) error {
	return im.pass(ctx, TableRefreshTokens, `SELECT COUNT(*) FROM refresh_tokens`,
		`SELECT r.id, r.user_id, r.device_id, r.token, r.expiry_ts, r.ultimate_session_expiry_ts, d.device_id IS NOT NULL
		 FROM refresh_tokens r LEFT JOIN devices d ON d.user_id = r.user_id AND d.device_id = r.device_id
		 WHERE r.id > `+im.src.param(1)+` ORDER BY r.id`+im.limit(2), []any{int64(-1)},
		func(rows *sql.Rows, b *db.ImportBatch) ([]any, error) {
			var id int64
			var user, device, token string
			var expiry, ultimate sql.NullInt64
			var hasDevice bool
			if err := rows.Scan(&id, &user, &device, &token, &expiry, &ultimate, &hasDevice); err != nil {
				return nil, err
			}
			switch {
			case im.refused[user] || im.localpartOf(user) == "":
			case !hasDevice:
				im.cannot("refresh token %d of %s: its device %s was deleted", id, user, device)
			default:
				b.RefreshTokens = append(b.RefreshTokens, db.ImportedRefreshToken{TokenHash: secrets.HashToken(token), UserID: user,
					DeviceID: device, ExpiresAt: optMS(expiry), SessionExpiresAt: optMS(ultimate), CreatedAt: im.o.Now().UnixMilli()})
			}
			return []any{id}, nil
		})
}

// refreshChains links each rotated refresh token to the one it was
// rotated into, once both are in (a chain may span batches).
func (im *importer) refreshChains(ctx context.Context) error {
	return im.pass(ctx, TableRefreshChains, `SELECT COUNT(*) FROM refresh_tokens WHERE next_token_id IS NOT NULL`,
		`SELECT r.id, r.user_id, r.token, n.token FROM refresh_tokens r JOIN refresh_tokens n ON n.id = r.next_token_id
		 WHERE r.id > `+im.src.param(1)+` ORDER BY r.id`+im.limit(2), []any{int64(-1)},
		func(rows *sql.Rows, b *db.ImportBatch) ([]any, error) {
			var id int64
			var user, token, next string
			if err := rows.Scan(&id, &user, &token, &next); err != nil {
				return nil, err
			}
			if !im.refused[user] && im.localpartOf(user) != "" {
				b.RefreshLinks = append(b.RefreshLinks, [2]string{secrets.HashToken(token), secrets.HashToken(next)})
			}
			return []any{id}, nil
		})
}

// accessTokens moves access tokens by their hash, on their device (a
// hidden one of their own for a token without a device: an admin's or an
// application service's), with their refresh token and expiry.
func (im *importer) accessTokens(ctx context.Context) error {
	return im.pass(ctx, TableAccessTokens, `SELECT COUNT(*) FROM access_tokens`,
		`SELECT a.id, a.user_id, a.device_id, a.token, a.valid_until_ms, a.puppets_user_id, a.used, r.token,
			d.device_id IS NOT NULL
		 FROM access_tokens a LEFT JOIN refresh_tokens r ON r.id = a.refresh_token_id
		 LEFT JOIN devices d ON d.user_id = a.user_id AND d.device_id = a.device_id
		 WHERE a.id > `+im.src.param(1)+` ORDER BY a.id`+im.limit(2), []any{int64(-1)},
		func(rows *sql.Rows, b *db.ImportBatch) ([]any, error) {
			var id int64
			var user, token string
			var device, puppets, refresh sql.NullString
			var validUntil sql.NullInt64
			var used sql.NullBool
			var hasDevice bool
			if err := rows.Scan(&id, &user, &device, &token, &validUntil, &puppets, &used, &refresh, &hasDevice); err != nil {
				return nil, err
			}
			now := im.o.Now().UnixMilli()
			t := db.ImportedAccessToken{TokenHash: secrets.HashToken(token), UserID: user, DeviceID: device.String,
				ExpiresAt: optMS(validUntil), Used: used.Bool, CreatedAt: now}
			if refresh.Valid {
				t.RefreshTokenHash = secrets.HashToken(refresh.String)
			}
			if puppets.Valid && puppets.String != "" {
				// Synapse's puppets_user_id is the admin acting as the user.
				t.PuppetedBy = puppets.String
			}
			switch {
			case im.refused[user] || im.localpartOf(user) == "":
			case !device.Valid:
				t.DeviceID = fmt.Sprintf("SYNAPSE%d", id)
				b.Devices = append(b.Devices, db.Device{UserID: user, DeviceID: t.DeviceID, CreatedAt: now, Hidden: true})
				b.AccessTokens = append(b.AccessTokens, t)
			case !hasDevice:
				im.cannot("access token %d of %s: its device %s was deleted", id, user, device.String)
			default:
				b.AccessTokens = append(b.AccessTokens, t)
			}
			return []any{id}, nil
		})
}

func (im *importer) registrationTokens(ctx context.Context) error {
	return im.pass(ctx, TableRegistrationTokens, `SELECT COUNT(*) FROM registration_tokens`,
		`SELECT token, uses_allowed, completed, expiry_time FROM registration_tokens WHERE token > `+im.src.param(1)+
			` ORDER BY token`+im.limit(2), []any{""},
		func(rows *sql.Rows, b *db.ImportBatch) ([]any, error) {
			var t db.RegistrationToken
			var uses, completed, expiry sql.NullInt64
			if err := rows.Scan(&t.Token, &uses, &completed, &expiry); err != nil {
				return nil, err
			}
			if uses.Valid {
				n := int(uses.Int64)
				t.UsesAllowed = &n
			}
			t.Completed, t.ExpiryTime = int(completed.Int64), optMS(expiry)
			// Uses pending in Synapse's UIA sessions do not move with them.
			b.RegistrationTokens = append(b.RegistrationTokens, t)
			return []any{t.Token}, nil
		})
}
