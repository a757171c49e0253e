package accounts

import (
	"context"
	"errors"
	"strings"

	"registrar/db"
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
	user, err := LoginUser(creds)
	if err != nil {
		return "", err
	}
	acct, err := s.CheckCredentials(ctx, user, *creds.Password, requester)
	if err != nil {
		return "", err
	}
	return acct.UserID, nil
}

// LoginUser is the user named by the identifier of a password login or
// stage: m.id.user, or the deprecated top-level user.
func LoginUser(creds *uia.AuthCredentials) (string, error) {
	user := ""
	switch {
	case creds.Identifier != nil:
		if creds.Identifier.Type != "m.id.user" {
			return "", uia.Fail(matrix.CodeUnrecognized, "Unknown login identifier type")
		}
		if creds.Identifier.User != nil {
			user = *creds.Identifier.User
		}
	case creds.User != nil:
		user = *creds.User
	}
	if user == "" || creds.Password == nil {
		return "", uia.Fail(matrix.CodeMissingParam, "Missing parameters: identifier and password are required")
	}
	return user, nil
}

// CheckCredentials resolves user (a user ID or localpart, matched
// case-insensitively) and verifies its password. A wrong user or password
// is ErrInvalidLogin, with the time and rate-limit cost of a real check; a
// deactivated account is 403 M_USER_DEACTIVATED. With expectedUser set,
// any other account is refused before its password is looked at.
func (s *Service) CheckCredentials(ctx context.Context, user, password, expectedUser string) (db.Account, error) {
	localpart, ok := s.Localpart(user)
	if !ok || len(password) > 4*passwords.MaxLength {
		return db.Account{}, ErrInvalidLogin
	}
	// Failed attempts are counted per account (rc_login.failed_attempts),
	// for logins and UIA password stages alike.
	failureKey := s.UserID(strings.ToLower(localpart))
	now := s.now()
	if err := s.limits.LoginFailures.Check(failureKey, now); err != nil {
		return db.Account{}, err
	}
	acct, err := s.verify(ctx, localpart, password, expectedUser)
	if err == ErrInvalidLogin {
		_ = s.limits.LoginFailures.Take(failureKey, now)
	}
	return acct, err
}

func (s *Service) verify(ctx context.Context, localpart, password, expectedUser string) (db.Account, error) {
	acct, err := s.store.Account(ctx, strings.ToLower(localpart))
	if errors.Is(err, db.ErrNotFound) {
		// Spend the time of a hash anyway, so timing does not reveal which
		// user IDs exist.
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
	ok, err := s.hasher.Verify(ctx, password, acct.PasswordHash)
	if err != nil {
		return db.Account{}, matrix.Internal(err)
	}
	if !ok {
		return db.Account{}, ErrInvalidLogin
	}
	return acct, nil
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
