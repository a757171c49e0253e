package accounts

import (
	"context"
	"errors"
	"strings"

	"registrar/db"
	"registrar/impl/canonical"
	"registrar/impl/matrix"
	"registrar/impl/passwords"
	"registrar/impl/uia"
)

// ErrInvalidLogin is a wrong user or password, told apart by nothing.
var ErrInvalidLogin = &uia.Failure{Code: matrix.CodeForbidden, Message: "Invalid username or password"}

// VerifyPassword implements uia.PasswordVerifier for the m.login.password
// stage: the identifier's account and its password, which must be the
// requester's when there is one.
func (s *Service) VerifyPassword(ctx context.Context, creds *uia.AuthCredentials, requester string) (string, error) {
	acct, err := s.CheckPasswordLogin(ctx, creds, requester)
	if err != nil {
		return "", err
	}
	return acct.UserID, nil
}

// Identifier types (client-server API, "Identifier types").
const (
	idUser       = "m.id.user"
	idThirdParty = "m.id.thirdparty"
	idPhone      = "m.id.phone"
)

// loginTarget is whom a password login names: a localpart (or user ID),
// or, for a third-party identifier, its owner ("" when nobody owns it);
// failureKey counts failed attempts (the user, or the medium and address).
type loginTarget struct {
	user       string
	failureKey string
	// mail is the address of an email login (a directory looks it up);
	// named is a login by user name.
	mail  string
	named bool
}

var errMissingCredentials = uia.Fail(matrix.CodeMissingParam, "Missing parameters: identifier and password are required")

// identify resolves the identifier of a password login or stage:
// m.id.user, m.id.thirdparty (email addresses canonicalised as stored),
// m.id.phone (to E.164), or the deprecated top-level user, or medium and
// address.
func (s *Service) identify(ctx context.Context, creds *uia.AuthCredentials) (loginTarget, error) {
	var medium, address string
	switch id := creds.Identifier; {
	case id != nil && id.Type == idUser:
		return s.userTarget(deref(id.User))
	case id != nil && id.Type == idThirdParty:
		medium, address = deref(id.Medium), deref(id.Address)
	case id != nil && id.Type == idPhone:
		if id.Country == nil || id.Phone == nil {
			return loginTarget{}, errMissingCredentials
		}
		medium, address = db.MediumMsisdn, canonical.Msisdn(*id.Country, *id.Phone)
		if address == "" {
			address = *id.Country + " " + *id.Phone // canonicalises to nothing: an unknown number
		}
	case id != nil:
		return loginTarget{}, uia.Fail(matrix.CodeUnrecognized, "Unknown login identifier type")
	case creds.User != nil:
		return s.userTarget(*creds.User)
	case creds.Medium != nil && creds.Address != nil:
		medium, address = *creds.Medium, *creds.Address
	default:
		return loginTarget{}, errMissingCredentials
	}
	return s.thirdPartyTarget(ctx, medium, address)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (s *Service) userTarget(user string) (loginTarget, error) {
	if user == "" {
		return loginTarget{}, errMissingCredentials
	}
	key := user
	if lp, ok := s.Localpart(user); ok {
		key = s.UserID(strings.ToLower(lp))
	}
	return loginTarget{user: user, failureKey: key, named: true}, nil
}

// thirdPartyTarget is the owner of a third-party identifier; an address
// nobody owns is answered as a wrong password is (same message, time and
// rate limit).
func (s *Service) thirdPartyTarget(ctx context.Context, medium, address string) (loginTarget, error) {
	if medium == "" || address == "" {
		return loginTarget{}, errMissingCredentials
	}
	switch medium {
	case db.MediumEmail:
		if c := canonical.Email(address); c != "" {
			address = c
		}
	case db.MediumMsisdn:
		address = strings.TrimPrefix(address, "+")
	}
	t := loginTarget{failureKey: medium + ":" + address}
	if medium == db.MediumEmail {
		t.mail = address
	}
	owner, err := s.store.ThreepidOwner(ctx, medium, address)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return t, matrix.Internal(err)
	}
	t.user = owner
	return t, nil
}

// CheckPasswordLogin resolves the identifier of a password login or stage
// and verifies the password: a wrong user, address or password is
// ErrInvalidLogin, with the time and rate-limit cost of a real check; a
// deactivated account is 403 M_USER_DEACTIVATED. With expectedUser set,
// any other account is refused before its password is looked at.
func (s *Service) CheckPasswordLogin(ctx context.Context, creds *uia.AuthCredentials, expectedUser string) (db.Account, error) {
	target, err := s.identify(ctx, creds)
	if err != nil {
		return db.Account{}, err
	}
	if creds.Password == nil {
		return db.Account{}, errMissingCredentials
	}
	return s.checkPassword(ctx, target, *creds.Password, expectedUser)
}

// CheckCredentials checks a user ID or localpart and its password (the
// sign-in page's form).
func (s *Service) CheckCredentials(ctx context.Context, user, password, expectedUser string) (db.Account, error) {
	target, err := s.userTarget(user)
	if err != nil {
		return db.Account{}, err
	}
	return s.checkPassword(ctx, target, password, expectedUser)
}

func (s *Service) checkPassword(ctx context.Context, target loginTarget, password, expectedUser string) (db.Account, error) {
	if len(password) > 4*passwords.MaxLength {
		return db.Account{}, ErrInvalidLogin
	}
	// Failed attempts are counted (rc_login.failed_attempts) for logins
	// and UIA password stages alike.
	now := s.now()
	if err := s.limits.LoginFailures.Check(target.failureKey, now); err != nil {
		return db.Account{}, err
	}
	if s.directory != nil {
		acct, handled, err := s.checkDirectory(ctx, target, password, expectedUser)
		if handled {
			return acct, err
		}
	}
	var acct db.Account
	var err error
	if s.cfg.PasswordConfig.LocalDB() {
		acct, err = s.verify(ctx, target.user, password, expectedUser)
	} else {
		err = ErrInvalidLogin
	}
	if err == ErrInvalidLogin {
		_ = s.limits.LoginFailures.Take(target.failureKey, now)
	}
	return acct, err
}

// verify looks the user up and checks the password; an unknown user (or
// none) costs a dummy hash.
func (s *Service) verify(ctx context.Context, user, password, expectedUser string) (db.Account, error) {
	localpart, ok := s.Localpart(user)
	var acct db.Account
	err := db.ErrNotFound
	if ok && localpart != "" {
		acct, err = s.store.Account(ctx, strings.ToLower(localpart))
	}
	if errors.Is(err, db.ErrNotFound) {
		// Spend the time of a hash anyway, so timing does not reveal which
		// user IDs (or addresses) exist.
		_ = s.hasher.VerifyDummy(ctx, password)
		return db.Account{}, ErrInvalidLogin
	}
	if err != nil {
		return db.Account{}, matrix.Internal(err)
	}
	if expectedUser != "" && acct.UserID != expectedUser {
		return db.Account{}, matrix.Forbidden("Invalid auth: the credentials are not those of the logged-in user")
	}
	if acct.Deactivated() {
		return db.Account{}, matrix.ErrUserDeactivated
	}
	ok, err = s.hasher.Verify(ctx, password, acct.PasswordHash)
	if err != nil {
		return db.Account{}, matrix.Internal(err)
	}
	if !ok {
		return db.Account{}, ErrInvalidLogin
	}
	return s.upgradeHash(ctx, acct, password), nil
}

// upgradeHash replaces a verified password's hash by one of the configured
// algorithm and cost when it is another (imported from Synapse, or older
// than the configuration), and returns the account as it now is. A change
// of the password meanwhile wins: the account is returned as it was, and
// the login that verified it then fails.
func (s *Service) upgradeHash(ctx context.Context, acct db.Account, password string) db.Account {
	if !s.hasher.NeedsRehash(acct.PasswordHash) {
		return acct
	}
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		s.log.WarnContext(ctx, "rehashing a password failed", "user_id", acct.UserID, "error", err)
		return acct
	}
	done, err := s.store.ReplacePasswordHash(ctx, acct.UserID, acct.PasswordHash, hash)
	if err != nil || !done {
		return acct
	}
	s.log.InfoContext(ctx, "password rehashed with the configured algorithm", "user_id", acct.UserID)
	acct.PasswordHash = hash
	return acct
}

// LoginLimits charges a /login attempt to its client address
// (rc_login.address).
func (s *Service) LoginLimits(addressKey string) error {
	if err := s.limits.LoginAddress.Take(addressKey, s.now()); err != nil {
		return err
	}
	return nil
}

// SuccessfulLoginLimit charges a successful login to its account
// (rc_login.account).
func (s *Service) SuccessfulLoginLimit(userID string) error {
	if err := s.limits.LoginAccount.Take(userID, s.now()); err != nil {
		return err
	}
	return nil
}

// CheckPasswordPolicy answers a password the policy refuses with
// M_WEAK_PASSWORD naming the rule (an over-long one is an invalid
// parameter).
func (s *Service) CheckPasswordPolicy(password string) *matrix.Error {
	v := s.cfg.PasswordConfig.Policy.Check(password)
	switch {
	case v == nil:
		return nil
	case v.TooLong:
		return matrix.BadRequest(matrix.CodeInvalidParam, v.Rule)
	}
	return matrix.BadRequest(matrix.CodeWeakPassword, v.Rule)
}

// CheckFactorAttempts refuses a second factor's check once the account
// failed too many (rc_login.failed_attempts, counted apart from
// passwords).
func (s *Service) CheckFactorAttempts(userID string) error {
	if err := s.limits.LoginFailures.Check("factor:"+userID, s.now()); err != nil {
		return err
	}
	return nil
}

// FailedFactor counts a wrong second factor against the account.
func (s *Service) FailedFactor(userID string) {
	_ = s.limits.LoginFailures.Take("factor:"+userID, s.now())
}
