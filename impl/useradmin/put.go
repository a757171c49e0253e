package useradmin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/matrix"
)

// Limits of profile fields an admin sets (Synapse's).
const (
	MaxDisplayNameLength = 256
	MaxAvatarURLLength   = 1000
)

// Threepid is an address an admin gives an account.
type Threepid struct{ Medium, Address string }

// Changes are the fields of Synapse's PUT /_synapse/admin/v2/users/{userId};
// nil fields stay as they are.
type Changes struct {
	Password *string
	// LogoutDevices, with Password, logs every device out; default true.
	LogoutDevices *bool
	Admin         *bool
	Deactivated   *bool
	Locked        *bool
	Approved      *bool
	DisplayName   *string
	AvatarURL     *string
	// SetUserType changes the user type to UserType (nil: a normal user).
	SetUserType bool
	UserType    *string
	// Threepids, when not nil, replace the account's addresses.
	Threepids *[]Threepid
	// ExternalIDs counts the external (single sign-on) IDs asked for;
	// registrar has none, so any is refused.
	ExternalIDs int
}

// Put creates the account userID with c (created true) or changes the
// existing one, all in one transaction, and returns it as it then is.
// A concurrent creation of the same account makes one request create it
// and the others modify it.
func (s *Service) Put(ctx context.Context, actor, user string, c Changes) (u User, created bool, err error) {
	userID, err := s.LocalUserID(user)
	if err != nil {
		return User{}, false, err
	}
	tps, err := s.checkChanges(c)
	if err != nil {
		return User{}, false, err
	}
	a, err := s.store.AccountByUserID(ctx, userID)
	if errors.Is(err, db.ErrNotFound) {
		err = s.create(ctx, actor, userID, c, tps)
		if !errors.Is(err, errCreatedMeanwhile) {
			if err != nil {
				return User{}, false, err
			}
			u, err = s.Get(ctx, userID)
			return u, true, err
		}
		// Another request created it first: this one modifies it.
		if a, err = s.store.AccountByUserID(ctx, userID); errors.Is(err, db.ErrNotFound) {
			return User{}, false, accounts.ErrUserInUse // another case of the name is taken
		}
	}
	if err != nil {
		return User{}, false, matrix.Internal(err)
	}
	if err := s.modify(ctx, actor, a, c, tps); err != nil {
		return User{}, false, err
	}
	u, err = s.Get(ctx, userID)
	return u, false, err
}

// errCreatedMeanwhile: the account was created between the lookup and
// the insert.
var errCreatedMeanwhile = errors.New("useradmin: created meanwhile")

// Create makes a new account with c's fields; an existing one is
// M_USER_IN_USE (the operator's `users create`).
func (s *Service) Create(ctx context.Context, actor, user string, c Changes) (User, error) {
	userID, err := s.LocalUserID(user)
	if err != nil {
		return User{}, err
	}
	tps, err := s.checkChanges(c)
	if err != nil {
		return User{}, err
	}
	if err := s.create(ctx, actor, userID, c, tps); err != nil {
		if errors.Is(err, errCreatedMeanwhile) {
			return User{}, accounts.ErrUserInUse
		}
		return User{}, err
	}
	return s.Get(ctx, userID)
}

// checkChanges validates what needs no account, and returns the
// addresses in canonical form.
func (s *Service) checkChanges(c Changes) (*[]db.NewThreepid, error) {
	if c.ExternalIDs > 0 {
		return nil, matrix.BadRequest(matrix.CodeInvalidParam, "external_ids cannot be set: registrar has no single sign-on providers")
	}
	if c.Password != nil {
		if err := s.checkPassword(*c.Password); err != nil {
			return nil, err
		}
	}
	if c.SetUserType && c.UserType != nil && !s.cfg.ValidUserType(*c.UserType) {
		return nil, matrix.BadRequest(matrix.CodeInvalidParam, "Invalid user type")
	}
	if c.DisplayName != nil && len(*c.DisplayName) > MaxDisplayNameLength {
		return nil, matrix.BadRequest(matrix.CodeInvalidParam, fmt.Sprintf("Display name is too long (max %d)", MaxDisplayNameLength))
	}
	if c.AvatarURL != nil && *c.AvatarURL != "" && (len(*c.AvatarURL) > MaxAvatarURLLength || !strings.HasPrefix(*c.AvatarURL, "mxc://")) {
		return nil, matrix.BadRequest(matrix.CodeInvalidParam, "avatar_url must be an mxc:// URI of at most 1000 bytes")
	}
	if c.Threepids == nil {
		return nil, nil
	}
	tps := make([]db.NewThreepid, 0, len(*c.Threepids))
	seen := map[db.NewThreepid]bool{}
	for _, t := range *c.Threepids {
		address, err := canonicalThreepid(t.Medium, t.Address)
		if err != nil {
			return nil, err
		}
		tp := db.NewThreepid{Medium: t.Medium, Address: address}
		if !seen[tp] {
			seen[tp] = true
			tps = append(tps, tp)
		}
	}
	return &tps, nil
}

// create makes the account as the operator would, with c's fields.
func (s *Service) create(ctx context.Context, actor, userID string, c Changes, tps *[]db.NewThreepid) error {
	if c.Deactivated != nil && *c.Deactivated {
		return matrix.BadRequest(matrix.CodeInvalidParam, "A new account cannot be deactivated")
	}
	localpart, _ := s.accounts.Localpart(userID)
	n := accounts.NewAccount{Source: accounts.SourceOperator, Localpart: localpart, Password: c.Password,
		Admin: c.Admin != nil && *c.Admin, Locked: c.Locked != nil && *c.Locked,
		AwaitApproval: c.Approved != nil && !*c.Approved}
	if c.DisplayName != nil {
		n.DisplayName = *c.DisplayName
	}
	if c.AvatarURL != nil {
		n.AvatarURL = *c.AvatarURL
	}
	if c.SetUserType {
		n.UserType = c.UserType
	}
	if tps != nil {
		n.Threepids = *tps
	}
	detail := changeDetail(c)
	delete(detail, "logout_devices") // a new account has no devices
	if _, err := s.accounts.Create(audited(ctx, actor, "create", userID, detail), n); err != nil {
		if errors.Is(err, accounts.ErrUserInUse) {
			return errCreatedMeanwhile
		}
		return err
	}
	s.logged(actor, "create", userID, detail)
	return nil
}

// modify applies c to an existing account.
func (s *Service) modify(ctx context.Context, actor string, a db.Account, c Changes, tps *[]db.NewThreepid) error {
	ch := db.AccountChanges{Admin: c.Admin, Locked: c.Locked, Approved: c.Approved, DisplayName: c.DisplayName,
		AvatarURL: c.AvatarURL, SetUserType: c.SetUserType, UserType: c.UserType, Threepids: tps}
	if c.Admin != nil {
		if err := checkAdminChange(actor, a, *c.Admin); err != nil {
			return err
		}
	}
	if c.Locked != nil && *c.Locked && a.UserID == actor {
		return errLockSelf
	}
	if c.Deactivated != nil {
		switch {
		case *c.Deactivated:
			ch.Deactivate = true
		case a.Deactivated():
			if c.Password == nil && s.cfg.PasswordConfig.Enabled {
				return matrix.BadRequest(matrix.CodeMissingParam, "Must provide a password to re-activate an account.")
			}
			ch.Reactivate = true
		}
	}
	if c.Password != nil {
		hash, err := s.accounts.Hasher().Hash(ctx, *c.Password)
		if err != nil {
			return matrix.Internal(err)
		}
		ch.PasswordHash = &hash
		ch.LogoutDevices = c.LogoutDevices == nil || *c.LogoutDevices
	}
	_, err := s.update(ctx, actor, "modify", a, ch, changeDetail(c))
	return err
}

// changeDetail is the audit record of c: which fields, never a password.
func changeDetail(c Changes) map[string]any {
	d := map[string]any{}
	if c.Password != nil {
		d["password"] = "set"
		d["logout_devices"] = c.LogoutDevices == nil || *c.LogoutDevices
	}
	for name, v := range map[string]*bool{"admin": c.Admin, "deactivated": c.Deactivated, "locked": c.Locked, "approved": c.Approved} {
		if v != nil {
			d[name] = *v
		}
	}
	if c.DisplayName != nil {
		d["displayname"] = *c.DisplayName
	}
	if c.AvatarURL != nil {
		d["avatar_url"] = *c.AvatarURL
	}
	if c.SetUserType {
		d["user_type"] = c.UserType
	}
	if c.Threepids != nil {
		list := make([]string, 0, len(*c.Threepids))
		for _, t := range *c.Threepids {
			list = append(list, t.Medium+":"+t.Address)
		}
		d["threepids"] = list
	}
	return d
}
