// Package regtokens manages registration tokens (Matrix v1.2) as
// Synapse's admin API does: creation (named or random), limits, listing,
// deletion. It knows nothing of the server; the UIA stage that spends
// them is impl/uia's.
package regtokens

import (
	"context"
	"errors"
	"net/http"
	"time"

	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/secrets"
	"registrar/impl/uia"
)

// Store is what token management needs of the database.
type Store interface {
	CreateRegistrationToken(ctx context.Context, t db.RegistrationToken) error
	RegistrationToken(ctx context.Context, token string) (db.RegistrationToken, error)
	RegistrationTokens(ctx context.Context, valid *bool) ([]db.RegistrationToken, error)
	UpdateRegistrationToken(ctx context.Context, token string, u db.TokenUpdate) (db.RegistrationToken, error)
	DeleteRegistrationToken(ctx context.Context, token string) error
}

const (
	alphabet      = secrets.Alphanumeric + "._~-"
	defaultLength = 16
)

// ErrNoSuchToken is 404 M_NOT_FOUND.
var ErrNoSuchToken = &matrix.Error{Status: http.StatusNotFound, Code: matrix.CodeNotFound, Message: "No such registration token"}

// Service manages tokens.
type Service struct {
	store Store
	now   func() time.Time
}

// New returns the service over store.
func New(store Store, now func() time.Time) *Service { return &Service{store: store, now: now} }

// Spec describes a token to create: Token empty means a random one of
// Length characters (default 16).
type Spec struct {
	Token       string
	Length      int
	UsesAllowed *int
	ExpiryTime  *int64
}

// Create validates spec as Synapse's admin API does and stores the token.
func (s *Service) Create(ctx context.Context, spec Spec) (db.RegistrationToken, error) {
	t := db.RegistrationToken{Token: spec.Token, UsesAllowed: spec.UsesAllowed, ExpiryTime: spec.ExpiryTime}
	if err := s.checkLimits(spec.UsesAllowed, spec.ExpiryTime); err != nil {
		return t, err
	}
	random := t.Token == ""
	if random {
		if spec.Length == 0 {
			spec.Length = defaultLength
		}
		if spec.Length < 1 || spec.Length > 64 {
			return t, matrix.BadRequest(matrix.CodeInvalidParam, "length must be an integer between 1 and 64")
		}
	} else if !uia.ValidRegistrationToken(t.Token) {
		return t, matrix.BadRequest(matrix.CodeInvalidParam, "token must consist of 1-64 characters of [A-Za-z0-9._~-]")
	}
	for attempt := 0; ; attempt++ {
		if random {
			t.Token = secrets.RandomFrom(alphabet, spec.Length)
		}
		err := s.store.CreateRegistrationToken(ctx, t)
		if errors.Is(err, db.ErrTokenExists) {
			if random && attempt < 5 {
				continue
			}
			return t, matrix.BadRequest(matrix.CodeInvalidParam, "Token already exists")
		}
		if err != nil {
			return t, matrix.Internal(err)
		}
		return t, nil
	}
}

func (s *Service) checkLimits(usesAllowed *int, expiry *int64) *matrix.Error {
	if usesAllowed != nil && *usesAllowed < 0 {
		return matrix.BadRequest(matrix.CodeInvalidParam, "uses_allowed must be a non-negative integer or null")
	}
	if expiry != nil && *expiry < s.now().UnixMilli() {
		return matrix.BadRequest(matrix.CodeInvalidParam, "expiry_time must not be in the past")
	}
	return nil
}

// Update changes a token's limits: an absent field is kept, null removes
// the limit.
func (s *Service) Update(ctx context.Context, token string, u db.TokenUpdate) (db.RegistrationToken, error) {
	var uses *int
	var expiry *int64
	if u.UsesAllowed != nil {
		uses = *u.UsesAllowed
	}
	if u.ExpiryTime != nil {
		expiry = *u.ExpiryTime
	}
	if err := s.checkLimits(uses, expiry); err != nil {
		return db.RegistrationToken{}, err
	}
	t, err := s.store.UpdateRegistrationToken(ctx, token, u)
	return t, notFoundAs(err, ErrNoSuchToken)
}

// Get returns one token.
func (s *Service) Get(ctx context.Context, token string) (db.RegistrationToken, error) {
	t, err := s.store.RegistrationToken(ctx, token)
	return t, notFoundAs(err, ErrNoSuchToken)
}

// List lists tokens, all or only the (in)valid ones.
func (s *Service) List(ctx context.Context, valid *bool) ([]db.RegistrationToken, error) {
	tokens, err := s.store.RegistrationTokens(ctx, valid)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	return tokens, nil
}

// Delete deletes a token (and its reservations).
func (s *Service) Delete(ctx context.Context, token string) error {
	return notFoundAs(s.store.DeleteRegistrationToken(ctx, token), ErrNoSuchToken)
}

// Valid reports whether token could be used now (the validity endpoint);
// it reserves nothing.
func (s *Service) Valid(ctx context.Context, token string) (bool, error) {
	t, err := s.store.RegistrationToken(ctx, token)
	if errors.Is(err, db.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, matrix.Internal(err)
	}
	return t.Valid(s.now().UnixMilli()), nil
}

// notFoundAs maps db.ErrNotFound to notFound and other failures to 500s.
func notFoundAs(err error, notFound *matrix.Error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, db.ErrNotFound):
		return notFound
	}
	return matrix.Internal(err)
}
