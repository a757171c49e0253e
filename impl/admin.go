package impl

import (
	"context"
	"encoding/hex"
	"log/slog"
	"strings"

	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/config"
)

// Admin performs operator tasks directly on the store, for the CLI. It
// applies the same rules as the HTTP API.
type Admin struct{ s *Server }

// NewAdmin builds an Admin over store.
func NewAdmin(cfg config.Config, store *db.Store, log *slog.Logger) (*Admin, error) {
	s, err := NewServer(cfg, store, Options{Logger: log})
	if err != nil {
		return nil, err
	}
	return &Admin{s: s}, nil
}

// RegisterUser creates an account with a password; it works while public
// registration is disabled.
func (a *Admin) RegisterUser(ctx context.Context, username, password string, admin bool) (string, error) {
	created, err := a.s.accounts.Create(ctx, accounts.NewAccount{Source: accounts.SourceOperator, Localpart: strings.ToLower(username),
		Password: &password, Admin: admin})
	return created.UserID, err
}

// RegistrationTokens lists tokens, all or only the (in)valid ones.
func (a *Admin) RegistrationTokens(ctx context.Context, valid *bool) ([]db.RegistrationToken, error) {
	return a.s.store.RegistrationTokens(ctx, valid)
}

// CreateRegistrationToken creates a token as POST .../registration_tokens/new does.
func (a *Admin) CreateRegistrationToken(ctx context.Context, spec TokenSpec) (db.RegistrationToken, error) {
	return a.s.createRegistrationToken(ctx, spec)
}

// RegistrationToken returns one token.
func (a *Admin) RegistrationToken(ctx context.Context, token string) (db.RegistrationToken, error) {
	t, err := a.s.store.RegistrationToken(ctx, token)
	if err == db.ErrNotFound {
		return t, errNoSuchToken
	}
	return t, err
}

// UpdateRegistrationToken changes a token's limits.
func (a *Admin) UpdateRegistrationToken(ctx context.Context, token string, u db.TokenUpdate) (db.RegistrationToken, error) {
	return a.s.updateRegistrationToken(ctx, token, u)
}

// DeleteRegistrationToken deletes a token.
func (a *Admin) DeleteRegistrationToken(ctx context.Context, token string) error {
	err := a.s.store.DeleteRegistrationToken(ctx, token)
	if err == db.ErrNotFound {
		return errNoSuchToken
	}
	return err
}

// SharedSecretMAC computes the mac of shared-secret registration.
func SharedSecretMAC(secret []byte, nonce, username, password string, admin bool) string {
	return hex.EncodeToString(sharedSecretMAC(secret, nonce, username, password, admin, ""))
}

// ApproveUser approves an account awaiting approval (userID may be a
// localpart).
func (a *Admin) ApproveUser(ctx context.Context, userID string) (string, error) {
	userID, _ = a.s.accounts.CanonicalUserID(userID)
	return userID, a.s.accounts.SetApproved(ctx, userID, true)
}
