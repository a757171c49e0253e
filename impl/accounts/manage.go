package accounts

import (
	"context"
	"errors"
	"net/http"

	"registrar/db"
	"registrar/impl/matrix"
)

// ErrNoSuchUser is 404 M_NOT_FOUND for an unknown user.
var ErrNoSuchUser = &matrix.Error{Status: http.StatusNotFound, Code: matrix.CodeNotFound, Message: "User not found"}

// SetPassword hashes and sets a new password and ends what logout says
// (devices, browser sign-ins), in one transaction.
func (s *Service) SetPassword(ctx context.Context, userID, password string, logout db.PasswordLogout) error {
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return matrix.Internal(err)
	}
	err = s.store.SetPassword(ctx, userID, hash, logout)
	if errors.Is(err, db.ErrNotFound) {
		return ErrNoSuchUser
	}
	if err != nil {
		return matrix.Internal(err)
	}
	s.log.InfoContext(ctx, "password changed", "user_id", userID, "logout_devices", logout.Devices)
	return nil
}

// Deactivate deactivates an account in one transaction (devices, tokens,
// addresses and password go; the user ID stays taken); with erase the
// profile goes too. An account already deactivated is not an error.
func (s *Service) Deactivate(ctx context.Context, userID string, erase bool) error {
	err := s.store.Deactivate(ctx, userID, erase)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return matrix.Internal(err)
	}
	s.log.InfoContext(ctx, "account deactivated", "user_id", userID, "erase", erase)
	return nil
}

// SetApproved approves (or un-approves) an account.
func (s *Service) SetApproved(ctx context.Context, userID string, approved bool) error {
	err := s.store.SetApproved(ctx, userID, approved)
	if errors.Is(err, db.ErrNotFound) {
		return ErrNoSuchUser
	}
	if err != nil {
		return matrix.Internal(err)
	}
	s.log.InfoContext(ctx, "account approval changed", "user_id", userID, "approved", approved)
	return nil
}
