package accounts

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"registrar/db"
	"registrar/impl/matrix"
)

// Directory checks passwords against an outside directory (LDAP): the
// person's entry, or ErrDirectoryRefused or ErrDirectoryUnavailable.
type Directory func(ctx context.Context, login string, byMail bool, password string) (DirectoryPerson, error)

// DirectoryPerson is a directory entry that proved its password.
type DirectoryPerson struct{ UID, Mail, Name string }

// Errors a Directory answers.
var (
	ErrDirectoryRefused     = errors.New("accounts: the directory refused the credentials")
	ErrDirectoryUnavailable = errors.New("accounts: the directory is unavailable")
)

// errDirectoryDown answers a login the directory could not check, with no
// local password to fall back on.
var errDirectoryDown = &matrix.Error{Status: http.StatusServiceUnavailable, Code: matrix.CodeUnknown,
	Message: "The directory could not be reached; try again shortly", RetryAfterMS: 5000}

// DirectoryProvider is the auth_provider of accounts a directory made.
const DirectoryProvider = "ldap"

// UseDirectory makes password logins ask d first (matrix-synapse-ldap3's
// order), then, with password_config.localdb_enabled, the passwords kept
// here.
func (s *Service) UseDirectory(d Directory) { s.directory = d }

// checkDirectory asks the directory about a login: the account it signs
// into (made on the first login through the registration policy), or
// handled false when the directory does not know the person (the local
// passwords may).
func (s *Service) checkDirectory(ctx context.Context, target loginTarget, password, expectedUser string) (db.Account, bool, error) {
	login, byMail := "", false
	switch {
	case target.mail != "":
		login, byMail = target.mail, true
	case target.named:
		lp, ok := s.Localpart(target.user)
		if !ok || lp == "" {
			return db.Account{}, false, nil
		}
		login = lp
	default:
		return db.Account{}, false, nil
	}
	person, err := s.directory(ctx, login, byMail, password)
	switch {
	case errors.Is(err, ErrDirectoryRefused):
		return db.Account{}, false, nil
	case errors.Is(err, ErrDirectoryUnavailable):
		s.log.WarnContext(ctx, "the LDAP directory is unavailable", "error", err)
		if s.cfg.PasswordConfig.LocalDB() {
			return db.Account{}, false, nil
		}
		return db.Account{}, true, errDirectoryDown
	case err != nil:
		return db.Account{}, true, matrix.Internal(err)
	}
	acct, err := s.directoryAccount(ctx, person)
	if err != nil {
		return db.Account{}, true, err
	}
	if expectedUser != "" && acct.UserID != expectedUser {
		return db.Account{}, true, matrix.Forbidden("Invalid auth: the credentials are not those of the logged-in user")
	}
	if acct.Deactivated() {
		return db.Account{}, true, matrix.ErrUserDeactivated
	}
	return acct, true, nil
}

// directoryAccount is the account of a directory entry: the one of its
// uid, linked on its first login, or a new one made through the
// registration policy (the username rules, the limits, the approval
// queue) with the entry's name and address.
func (s *Service) directoryAccount(ctx context.Context, p DirectoryPerson) (db.Account, error) {
	localpart := strings.ToLower(p.UID)
	acct, err := s.store.Account(ctx, localpart)
	if err == nil {
		return acct, nil
	}
	if !errors.Is(err, db.ErrNotFound) {
		return db.Account{}, matrix.Internal(err)
	}
	n := NewAccount{Source: SourceLDAP, Localpart: localpart, DisplayName: p.Name,
		ExternalIDs: []db.ExternalID{{AuthProvider: DirectoryProvider, ExternalID: p.UID}}, Threepids: s.VouchedEmail(ctx, p.Mail)}
	created, err := s.Create(ctx, n)
	if errors.Is(err, ErrUserInUse) {
		// Made by a concurrent first login.
		return s.store.Account(ctx, localpart)
	}
	if err != nil {
		s.log.WarnContext(ctx, "an LDAP entry's account could not be made", "uid", p.UID, "error", err)
		return db.Account{}, err
	}
	s.log.InfoContext(ctx, "made the account of an LDAP entry on its first login", "user_id", created.UserID)
	return s.store.AccountByUserID(ctx, created.UserID)
}

// VouchedEmail is the email address an identity provider or directory
// vouches for, as an address to bind to a new account: none when it is
// empty, not allowed here, or bound to another account already (it stays
// there).
func (s *Service) VouchedEmail(ctx context.Context, address string) []db.NewThreepid {
	address = strings.ToLower(strings.TrimSpace(address))
	if address == "" || !s.cfg.ThreepidAllowed(db.MediumEmail, address) {
		return nil
	}
	if owner, err := s.store.ThreepidOwner(ctx, db.MediumEmail, address); !errors.Is(err, db.ErrNotFound) && (err != nil || owner != "") {
		return nil
	}
	return []db.NewThreepid{{Medium: db.MediumEmail, Address: address, ValidatedAt: s.now().UnixMilli()}}
}
