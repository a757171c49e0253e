package db

import (
	"context"
	"errors"
	"strings"

	"gorm.io/gorm"
)

// AccountQuery selects and orders accounts for the admin API's list.
type AccountQuery struct {
	// UserID keeps user IDs containing it; Name keeps accounts whose
	// localpart or display name contains it (and overrides UserID). Both
	// compare case-insensitively.
	UserID, Name string
	// Guests false leaves guests out.
	Guests bool
	// Admins, Deactivated, Locked: nil keeps both; true keeps only those
	// that are; false leaves them out.
	Admins, Deactivated, Locked *bool
	// OnlyUnapproved keeps only accounts awaiting approval.
	OnlyUnapproved bool
	// UserTypes keeps only these types ("" is a normal user) when not
	// empty; NotUserTypes leaves these out.
	UserTypes, NotUserTypes []string
	// OrderBy is one of AccountOrders' keys; ties go by user ID.
	OrderBy   string
	Backwards bool
	From      int
	Limit     int
}

// AccountOrders maps the admin API's order_by values to their columns.
var AccountOrders = map[string]string{
	"name":          "user_id",
	"is_guest":      "(kind = 'guest')",
	"admin":         "admin",
	"user_type":     "COALESCE(user_type, '')",
	"deactivated":   "(deactivated_at IS NOT NULL)",
	"shadow_banned": "shadow_banned",
	"displayname":   "display_name",
	"avatar_url":    "avatar_url",
	"creation_ts":   "created_at",
	"last_seen_ts":  "COALESCE(last_seen_at, 0)",
	"locked":        "locked",
	"suspended":     "suspended",
	"approved":      "(NOT approval_pending)",
}

// ListAccounts returns one page of the accounts q selects, in its order,
// and how many it selects in all.
func (s *Store) ListAccounts(ctx context.Context, q AccountQuery) ([]Account, int64, error) {
	where, args := q.filter(s.engine)
	var total int64
	g := s.db.WithContext(ctx)
	if err := g.Model(&Account{}).Where(where, args...).Count(&total).Error; err != nil {
		return nil, 0, translate(err)
	}
	dir := "ASC"
	if q.Backwards {
		dir = "DESC"
	}
	byName := "user_id"
	if s.engine == Postgres {
		byName = `user_id COLLATE "C"` // byte order, as SQLite's
	}
	order := byName + " ASC"
	if col := AccountOrders[q.OrderBy]; col != "" {
		if col == "user_id" || col == "display_name" || col == "avatar_url" || strings.HasPrefix(col, "COALESCE(user_type") {
			col = s.textOrder(col)
		}
		order = col + " " + dir + ", " + order
	} else if q.Backwards {
		order = byName + " DESC"
	}
	var out []Account
	err := g.Where(where, args...).Order(order).Offset(q.From).Limit(q.Limit).Find(&out).Error
	return out, total, translate(err)
}

// textOrder orders a text column by bytes on both engines.
func (s *Store) textOrder(col string) string {
	if s.engine == Postgres {
		return col + ` COLLATE "C"`
	}
	return col
}

// filter is q's WHERE clause.
func (q AccountQuery) filter(engine string) (string, []any) {
	conds := []string{"1 = 1"}
	var args []any
	like := "LIKE"
	if engine == Postgres {
		like = "ILIKE"
	}
	switch {
	case q.Name != "":
		conds = append(conds, "(localpart_lower "+like+" ? ESCAPE '\\' OR display_name "+like+" ? ESCAPE '\\')")
		args = append(args, containing(strings.ToLower(q.Name)), containing(q.Name))
	case q.UserID != "":
		conds = append(conds, "user_id "+like+" ? ESCAPE '\\'")
		args = append(args, containing(q.UserID))
	}
	if !q.Guests {
		conds = append(conds, "kind <> 'guest'")
	}
	conds = appendTri(conds, q.Admins, "admin", "NOT admin")
	conds = appendTri(conds, q.Deactivated, "deactivated_at IS NOT NULL", "deactivated_at IS NULL")
	conds = appendTri(conds, q.Locked, "locked", "NOT locked")
	if q.OnlyUnapproved {
		conds = append(conds, "approval_pending")
	}
	if len(q.UserTypes) > 0 {
		conds = append(conds, "COALESCE(user_type, '') IN ?")
		args = append(args, q.UserTypes)
	}
	if len(q.NotUserTypes) > 0 {
		conds = append(conds, "COALESCE(user_type, '') NOT IN ?")
		args = append(args, q.NotUserTypes)
	}
	return strings.Join(conds, " AND "), args
}

func appendTri(conds []string, v *bool, yes, no string) []string {
	switch {
	case v == nil:
		return conds
	case *v:
		return append(conds, yes)
	}
	return append(conds, no)
}

// containing is a LIKE pattern matching strings that contain s literally.
func containing(s string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(s) + "%"
}

// AccountChanges are changes an admin makes to an account at once; nil
// fields stay as they are.
type AccountChanges struct {
	// PasswordHash replaces the password and ends the account's browser
	// sign-ins, remembered consents and login tokens; with LogoutDevices
	// every device goes too. Locking ends the same sign-ins.
	PasswordHash  *string
	LogoutDevices bool
	// Deactivate runs the whole deactivation (as /account/deactivate);
	// Reactivate clears it (set a PasswordHash with it for the user to log
	// in again).
	Deactivate, Reactivate   bool
	Admin, Locked, Suspended *bool
	ShadowBanned             *bool
	Approved                 *bool
	DisplayName, AvatarURL   *string
	SetUserType              bool
	UserType                 *string
	// Threepids, when not nil, replace the account's addresses: those not
	// listed are removed, new ones added as validated now. One bound to
	// another account gives ErrThreepidInUse and changes nothing.
	Threepids *[]NewThreepid
}

// UpdateAccount applies changes to the account in one transaction under
// its row lock and returns it as it then is.
func (s *Store) UpdateAccount(ctx context.Context, userID string, c AccountChanges) (Account, error) {
	now := s.nowMS()
	var out Account
	err := s.write(ctx, func(tx *gorm.DB) error {
		acct, err := lockAccount(tx, userID)
		if err != nil {
			return err
		}
		if c.Deactivate && !acct.Deactivated() {
			if err := deactivate(tx, userID, false, now); err != nil {
				return err
			}
		}
		if err := tx.Model(&Account{}).Where("user_id = ?", userID).Updates(c.columns(acct)).Error; err != nil {
			return err
		}
		// A new password or a lock ends every sign-in made before it.
		if c.PasswordHash != nil || deref(c.Locked) {
			if err := endSignIns(tx, userID); err != nil {
				return err
			}
		}
		if c.PasswordHash != nil && c.LogoutDevices {
			if err := tx.Where("user_id = ?", userID).Delete(&Device{}).Error; err != nil {
				return err
			}
		}
		if c.Threepids != nil {
			if err := replaceThreepids(tx, userID, *c.Threepids, now); err != nil {
				return err
			}
		}
		return tx.Where("user_id = ?", userID).Take(&out).Error
	})
	if errors.Is(err, ErrThreepidInUse) {
		return out, err
	}
	return out, translate(err)
}

// columns are the account columns c changes.
func (c AccountChanges) columns(acct Account) map[string]any {
	cols := map[string]any{}
	set := func(name string, v any, ok bool) {
		if ok {
			cols[name] = v
		}
	}
	if c.Reactivate && acct.Deactivated() {
		cols["deactivated_at"] = nil
	}
	if c.PasswordHash != nil {
		cols["password_hash"] = *c.PasswordHash
	}
	set("admin", deref(c.Admin), c.Admin != nil)
	set("locked", deref(c.Locked), c.Locked != nil)
	set("suspended", deref(c.Suspended), c.Suspended != nil)
	set("shadow_banned", deref(c.ShadowBanned), c.ShadowBanned != nil)
	set("approval_pending", !deref(c.Approved), c.Approved != nil)
	set("display_name", derefString(c.DisplayName), c.DisplayName != nil)
	set("avatar_url", derefString(c.AvatarURL), c.AvatarURL != nil)
	set("user_type", c.UserType, c.SetUserType)
	if len(cols) == 0 {
		cols["user_id"] = acct.UserID // an update that changes nothing
	}
	return cols
}

func deref(b *bool) bool { return b != nil && *b }

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// replaceThreepids makes the user's addresses exactly want.
func replaceThreepids(tx *gorm.DB, userID string, want []NewThreepid, now int64) error {
	var have []Threepid
	if err := tx.Where("user_id = ?", userID).Find(&have).Error; err != nil {
		return err
	}
	keep := map[[2]string]bool{}
	for _, t := range want {
		keep[[2]string{t.Medium, t.Address}] = true
	}
	had := map[[2]string]bool{}
	for _, t := range have {
		k := [2]string{t.Medium, t.Address}
		had[k] = true
		if !keep[k] {
			if err := tx.Where("user_id = ? AND medium = ? AND address = ?", userID, t.Medium, t.Address).Delete(&Threepid{}).Error; err != nil {
				return err
			}
		}
	}
	for _, t := range want {
		k := [2]string{t.Medium, t.Address}
		if had[k] {
			continue
		}
		had[k] = true
		var owner string
		if err := tx.Raw(`SELECT user_id FROM threepids WHERE medium = ? AND address = ?`, t.Medium, t.Address).Scan(&owner).Error; err != nil {
			return err
		}
		if owner != "" {
			return ErrThreepidInUse
		}
		t.ValidatedAt = now
		if err := addThreepid(tx, userID, t, now); err != nil {
			return err
		}
	}
	return nil
}
