// Package useradmin is what a server admin does to accounts, with the
// semantics of Synapse's user admin API: the admin API's handlers and the
// operator's `registrar users` commands both go through it. Every change
// is recorded, who, what and when, in the audit table (in the change's
// own transaction) and in the log.
package useradmin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/canonical"
	"registrar/impl/config"
	"registrar/impl/devices"
	"registrar/impl/matrix"
)

// Store is what user administration needs of the database.
type Store interface {
	AccountByUserID(ctx context.Context, userID string) (db.Account, error)
	SecondFactors(ctx context.Context, userID string) ([]db.SecondFactor, error)
	ResetSecondFactors(ctx context.Context, userID string) (int64, error)
	ListAccounts(ctx context.Context, q db.AccountQuery) ([]db.Account, int64, error)
	UpdateAccount(ctx context.Context, userID string, c db.AccountChanges) (db.Account, error)
	Threepids(ctx context.Context, userID string) ([]db.Threepid, error)
	ClientIPs(ctx context.Context, userID string, limit int) ([]db.ClientIP, error)
	AuditLog(ctx context.Context, target string, limit int) ([]db.AuditRecord, error)
}

// Service applies admin changes to accounts.
type Service struct {
	cfg      *config.Config
	store    Store
	accounts *accounts.Service
	devices  *devices.Service
	log      *slog.Logger
}

// New returns the service; store must revoke cached tokens on writes.
func New(cfg *config.Config, store Store, accts *accounts.Service, devs *devices.Service, log *slog.Logger) *Service {
	return &Service{cfg: cfg, store: store, accounts: accts, devices: devs, log: log}
}

// Errors of the admin API, with Synapse's messages.
var (
	errNotLocal     = matrix.BadRequest(matrix.CodeInvalidParam, "This endpoint can only be used with local users")
	errInvalidUser  = matrix.BadRequest(matrix.CodeInvalidParam, "Invalid user ID")
	errDemoteSelf   = matrix.BadRequest(matrix.CodeUnknown, "You may not demote yourself.")
	errLockSelf     = matrix.Forbidden("You may not lock or suspend yourself.")
	errPuppetSelf   = matrix.BadRequest(matrix.CodeUnknown, "Cannot use admin API to login as self")
	errInvalidPass  = matrix.BadRequest(matrix.CodeInvalidParam, "Invalid password")
	errPasswordOff  = matrix.Forbidden("Password change disabled")
	errGuestAdmin   = matrix.BadRequest(matrix.CodeInvalidParam, "Guest accounts cannot be server admins")
	errThreepidUsed = &matrix.Error{Status: http.StatusConflict, Code: matrix.CodeThreepidInUse, Message: "Threepid already in use"}
)

// LocalUserID checks that user is a user ID of this server.
func (s *Service) LocalUserID(user string) (string, error) {
	rest, ok := strings.CutPrefix(user, "@")
	localpart, server, found := strings.Cut(rest, ":")
	switch {
	case !ok || !found || localpart == "" || len(user) > accounts.MaxUserIDLength:
		return "", errInvalidUser
	case server != s.cfg.ServerName:
		return "", errNotLocal
	}
	return user, nil
}

// Account returns the account of a local user ID: 400 for another
// server's, 404 M_NOT_FOUND for none.
func (s *Service) Account(ctx context.Context, user string) (db.Account, error) {
	userID, err := s.LocalUserID(user)
	if err != nil {
		return db.Account{}, err
	}
	a, err := s.store.AccountByUserID(ctx, userID)
	if errors.Is(err, db.ErrNotFound) {
		return db.Account{}, accounts.ErrNoSuchUser
	}
	if err != nil {
		return db.Account{}, matrix.Internal(err)
	}
	return a, nil
}

// User is an account with its addresses.
type User struct {
	db.Account
	Threepids []db.Threepid
}

// Get returns a local account with its addresses.
func (s *Service) Get(ctx context.Context, user string) (User, error) {
	a, err := s.Account(ctx, user)
	if err != nil {
		return User{}, err
	}
	tps, err := s.store.Threepids(ctx, a.UserID)
	if err != nil {
		return User{}, matrix.Internal(err)
	}
	return User{Account: a, Threepids: tps}, nil
}

// List returns one page of the accounts q selects and their total.
func (s *Service) List(ctx context.Context, q db.AccountQuery) ([]db.Account, int64, error) {
	out, total, err := s.store.ListAccounts(ctx, q)
	if err != nil {
		return nil, 0, matrix.Internal(err)
	}
	return out, total, nil
}

// audited returns ctx carrying the audit entry of a change; the store
// writes it with the change.
func audited(ctx context.Context, actor, action, target string, detail map[string]any) context.Context {
	return db.WithAudit(ctx, db.AuditEntry{Actor: actor, Action: action, Target: target, Detail: detail})
}

// logged logs a change that committed.
func (s *Service) logged(actor, action, target string, detail map[string]any) {
	attrs := []any{"actor", actor, "action", action, "target", target}
	for k, v := range detail {
		attrs = append(attrs, k, v)
	}
	s.log.Info("admin action", attrs...)
}

// checkPassword applies what an admin-set password must meet.
func (s *Service) checkPassword(pw string) error {
	if !s.cfg.PasswordConfig.Enabled {
		return errPasswordOff
	}
	if pw == "" {
		return errInvalidPass
	}
	if err := s.accounts.CheckPasswordPolicy(pw); err != nil {
		return err
	}
	return nil
}

// ResetPassword sets a user's password; with logoutDevices every device
// is logged out (Synapse's POST /_synapse/admin/v1/reset_password).
func (s *Service) ResetPassword(ctx context.Context, actor, user, password string, logoutDevices bool) error {
	if err := s.checkPassword(password); err != nil {
		return err
	}
	a, err := s.Account(ctx, user)
	if err != nil {
		return err
	}
	if a.Deactivated() {
		return matrix.BadRequest(matrix.CodeInvalidParam, "The account is deactivated; reactivate it with a password instead")
	}
	detail := map[string]any{"logout_devices": logoutDevices}
	// The browser sign-ins made with the old password end whatever
	// logout_devices says.
	err = s.accounts.SetPassword(audited(ctx, actor, "reset_password", a.UserID, detail), a.UserID, password,
		db.PasswordLogout{Devices: logoutDevices, SignIns: true})
	if err != nil {
		return err
	}
	s.logged(actor, "reset_password", a.UserID, detail)
	return nil
}

// Deactivate deactivates a user as /account/deactivate does; with erase
// the profile is wiped too. An account deactivated already stays so.
func (s *Service) Deactivate(ctx context.Context, actor, user string, erase bool) error {
	a, err := s.Account(ctx, user)
	if err != nil {
		return err
	}
	if a.Deactivated() {
		return nil
	}
	detail := map[string]any{"erase": erase}
	if err := s.accounts.Deactivate(audited(ctx, actor, "deactivate", a.UserID, detail), a.UserID, erase); err != nil {
		return err
	}
	s.logged(actor, "deactivate", a.UserID, detail)
	return nil
}

// update applies changes to an existing account under one audit entry.
func (s *Service) update(ctx context.Context, actor, action string, a db.Account, c db.AccountChanges, detail map[string]any) (db.Account, error) {
	out, err := s.store.UpdateAccount(audited(ctx, actor, action, a.UserID, detail), a.UserID, c)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return out, accounts.ErrNoSuchUser
	case errors.Is(err, db.ErrThreepidInUse):
		return out, errThreepidUsed
	case err != nil:
		return out, matrix.Internal(err)
	}
	s.logged(actor, action, a.UserID, detail)
	return out, nil
}

// SetAdmin grants or revokes server admin; nobody demotes themselves.
func (s *Service) SetAdmin(ctx context.Context, actor, user string, admin bool) error {
	a, err := s.Account(ctx, user)
	if err != nil {
		return err
	}
	if err := checkAdminChange(actor, a, admin); err != nil {
		return err
	}
	action := "revoke_admin"
	if admin {
		action = "make_admin"
	}
	_, err = s.update(ctx, actor, action, a, db.AccountChanges{Admin: &admin}, nil)
	return err
}

func checkAdminChange(actor string, a db.Account, admin bool) error {
	switch {
	case !admin && a.UserID == actor:
		return errDemoteSelf
	case admin && a.Kind == db.KindGuest:
		return errGuestAdmin
	}
	return nil
}

// SetLocked locks or unlocks an account (Matrix v1.12): a locked
// account's tokens stay but answer M_USER_LOCKED until it is unlocked.
func (s *Service) SetLocked(ctx context.Context, actor, user string, locked bool) error {
	a, err := s.Account(ctx, user)
	if err != nil {
		return err
	}
	if locked && a.UserID == actor {
		return errLockSelf
	}
	action := "unlock"
	if locked {
		action = "lock"
	}
	_, err = s.update(ctx, actor, action, a, db.AccountChanges{Locked: &locked}, nil)
	return err
}

// SetSuspended suspends or unsuspends an account (Matrix v1.13).
func (s *Service) SetSuspended(ctx context.Context, actor, user string, suspended bool) error {
	a, err := s.Account(ctx, user)
	if err != nil {
		return err
	}
	if suspended && a.UserID == actor {
		return errLockSelf
	}
	action := "unsuspend"
	if suspended {
		action = "suspend"
	}
	_, err = s.update(ctx, actor, action, a, db.AccountChanges{Suspended: &suspended}, nil)
	return err
}

// SetShadowBanned shadow-bans a user or lifts the ban (Synapse's
// POST|DELETE /_synapse/admin/v1/users/{user_id}/shadow_ban).
func (s *Service) SetShadowBanned(ctx context.Context, actor, user string, banned bool) error {
	a, err := s.Account(ctx, user)
	if err != nil {
		return err
	}
	action := "unshadow_ban"
	if banned {
		action = "shadow_ban"
	}
	_, err = s.update(ctx, actor, action, a, db.AccountChanges{ShadowBanned: &banned}, nil)
	return err
}

// SecondFactors lists a user's second factors (never their secrets: the
// caller shows kinds, names and dates).
func (s *Service) SecondFactors(ctx context.Context, user string) ([]db.SecondFactor, error) {
	a, err := s.Account(ctx, user)
	if err != nil {
		return nil, err
	}
	out, err := s.store.SecondFactors(ctx, a.UserID)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	return out, nil
}

// ResetSecondFactors removes every second factor of a user (audited): the
// user signs in with the password alone again.
func (s *Service) ResetSecondFactors(ctx context.Context, actor, user string) (int64, error) {
	a, err := s.Account(ctx, user)
	if err != nil {
		return 0, err
	}
	n, err := s.store.ResetSecondFactors(audited(ctx, actor, "reset_second_factors", a.UserID, map[string]any{}), a.UserID)
	if err != nil {
		return 0, matrix.Internal(err)
	}
	s.logged(actor, "reset_second_factors", a.UserID, map[string]any{"removed": n})
	return n, nil
}

// SetApproved approves (or un-approves) an account awaiting approval.
func (s *Service) SetApproved(ctx context.Context, actor, user string, approved bool) error {
	a, err := s.Account(ctx, user)
	if err != nil {
		return err
	}
	action := "unapprove"
	if approved {
		action = "approve"
	}
	_, err = s.update(ctx, actor, action, a, db.AccountChanges{Approved: &approved}, nil)
	return err
}

// LoginAs makes an access token for the user on the admin's behalf
// (Synapse's POST /_synapse/admin/v1/users/{userId}/login).
func (s *Service) LoginAs(ctx context.Context, actor, user string, validUntilMS *int64) (string, error) {
	a, err := s.Account(ctx, user)
	if err != nil {
		return "", err
	}
	if a.UserID == actor {
		return "", errPuppetSelf
	}
	detail := map[string]any{}
	if validUntilMS != nil {
		detail["valid_until_ms"] = *validUntilMS
	}
	token, err := s.accounts.PuppetLogin(audited(ctx, actor, "login_as", a.UserID, detail), a.UserID, actor, validUntilMS)
	if err != nil {
		return "", err
	}
	s.logged(actor, "login_as", a.UserID, detail)
	return token, nil
}

// Whois returns the addresses each of the user's devices was used from,
// newest first.
func (s *Service) Whois(ctx context.Context, user string) (map[string][]db.ClientIP, error) {
	a, err := s.Account(ctx, user)
	if err != nil {
		return nil, err
	}
	ips, err := s.store.ClientIPs(ctx, a.UserID, 1000)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	out := map[string][]db.ClientIP{}
	for _, ip := range ips {
		out[ip.DeviceID] = append(out[ip.DeviceID], ip)
	}
	return out, nil
}

// Devices lists a user's devices.
func (s *Service) Devices(ctx context.Context, user string) ([]db.Device, error) {
	a, err := s.Account(ctx, user)
	if err != nil {
		return nil, err
	}
	return s.devices.List(ctx, a.UserID)
}

// Device returns one of a user's devices.
func (s *Service) Device(ctx context.Context, user, deviceID string) (db.Device, error) {
	a, err := s.Account(ctx, user)
	if err != nil {
		return db.Device{}, err
	}
	return s.devices.Get(ctx, a.UserID, deviceID)
}

// RenameDevice sets the display name of one of a user's devices.
func (s *Service) RenameDevice(ctx context.Context, actor, user, deviceID, name string) error {
	a, err := s.Account(ctx, user)
	if err != nil {
		return err
	}
	detail := map[string]any{"device_id": deviceID, "display_name": name}
	if err := s.devices.Rename(audited(ctx, actor, "rename_device", a.UserID, detail), a.UserID, deviceID, name); err != nil {
		return err
	}
	s.logged(actor, "rename_device", a.UserID, detail)
	return nil
}

// DeleteDevices deletes a user's devices with their tokens.
func (s *Service) DeleteDevices(ctx context.Context, actor, user string, deviceIDs []string) error {
	a, err := s.Account(ctx, user)
	if err != nil {
		return err
	}
	detail := map[string]any{"devices": deviceIDs}
	if err := s.devices.Delete(audited(ctx, actor, "delete_devices", a.UserID, detail), a.UserID, deviceIDs...); err != nil {
		return err
	}
	s.logged(actor, "delete_devices", a.UserID, detail)
	return nil
}

// Audit returns the newest audit records about a user (everyone when
// user is empty), newest first.
func (s *Service) Audit(ctx context.Context, user string, limit int) ([]db.AuditRecord, error) {
	out, err := s.store.AuditLog(ctx, user, limit)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	return out, nil
}

// canonicalThreepid returns the stored form of an address an admin gives.
func canonicalThreepid(medium, address string) (string, error) {
	switch medium {
	case db.MediumEmail:
		if a := canonical.Email(address); a != "" {
			return a, nil
		}
	case db.MediumMsisdn:
		if a := canonical.Msisdn("", "+"+strings.TrimPrefix(address, "+")); a != "" {
			return a, nil
		}
	default:
		return "", matrix.BadRequest(matrix.CodeInvalidParam, fmt.Sprintf("Unsupported medium %q: email or msisdn", medium))
	}
	return "", matrix.BadRequest(matrix.CodeInvalidParam, fmt.Sprintf("Invalid %s address", medium))
}
