package impl

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/oapi-codegen/nullable"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/secrets"
	"registrar/impl/uia"
)

const (
	tokenAlphabetURLSafe = secrets.Alphanumeric + "._~-"
	defaultTokenLength   = 16
)

// RegistrationTokenValidity is GET
// /_matrix/client/v1/register/m.login.registration_token/validity (Matrix
// v1.2): a point-in-time check that reserves nothing.
func (s *Server) RegistrationTokenValidity(ctx context.Context, req api.RegistrationTokenValidityRequestObject) (api.RegistrationTokenValidityResponseObject, error) {
	if err := s.limits.tokenValidity.Take(addressKey(ctx), s.now()); err != nil {
		return nil, err
	}
	if !s.cfg.EnableRegistration {
		return nil, matrix.Forbidden("Registration is not enabled on this homeserver.")
	}
	t, err := s.store.RegistrationToken(ctx, req.Params.Token)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return nil, matrix.Internal(err)
	}
	return api.RegistrationTokenValidity200JSONResponse{Valid: err == nil && t.Valid(s.now().UnixMilli())}, nil
}

// requireAdmin refuses callers that are not server admins.
func requireAdmin(ctx context.Context) error {
	who := requesterFrom(ctx)
	if who == nil || !who.Admin {
		return matrix.Forbidden("You are not a server admin")
	}
	return nil
}

// TokenSpec describes a registration token to create: Token empty means a
// random one of Length characters.
type TokenSpec struct {
	Token       string
	Length      int
	UsesAllowed *int
	ExpiryTime  *int64
}

// createRegistrationToken validates spec as Synapse's admin API does and
// stores the token.
func (s *Server) createRegistrationToken(ctx context.Context, spec TokenSpec) (db.RegistrationToken, error) {
	t := db.RegistrationToken{Token: spec.Token, UsesAllowed: spec.UsesAllowed, ExpiryTime: spec.ExpiryTime}
	if err := s.checkTokenLimits(spec.UsesAllowed, spec.ExpiryTime); err != nil {
		return t, err
	}
	random := t.Token == ""
	if random {
		if spec.Length == 0 {
			spec.Length = defaultTokenLength
		}
		if spec.Length < 1 || spec.Length > 64 {
			return t, matrix.BadRequest(matrix.CodeInvalidParam, "length must be an integer between 1 and 64")
		}
	} else if !uia.ValidRegistrationToken(t.Token) {
		return t, matrix.BadRequest(matrix.CodeInvalidParam, "token must consist of 1-64 characters of [A-Za-z0-9._~-]")
	}
	for attempt := 0; ; attempt++ {
		if random {
			t.Token = secrets.RandomFrom(tokenAlphabetURLSafe, spec.Length)
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

func (s *Server) checkTokenLimits(usesAllowed *int, expiry *int64) *matrix.Error {
	if usesAllowed != nil && *usesAllowed < 0 {
		return matrix.BadRequest(matrix.CodeInvalidParam, "uses_allowed must be a non-negative integer or null")
	}
	if expiry != nil && *expiry < s.now().UnixMilli() {
		return matrix.BadRequest(matrix.CodeInvalidParam, "expiry_time must not be in the past")
	}
	return nil
}

func tokenJSON(t db.RegistrationToken) api.RegistrationToken {
	out := api.RegistrationToken{Token: t.Token, Pending: t.Pending, Completed: t.Completed}
	if t.UsesAllowed != nil {
		out.UsesAllowed.Set(*t.UsesAllowed)
	} else {
		out.UsesAllowed.SetNull()
	}
	if t.ExpiryTime != nil {
		out.ExpiryTime.Set(*t.ExpiryTime)
	} else {
		out.ExpiryTime.SetNull()
	}
	return out
}

var errNoSuchToken = &matrix.Error{Status: http.StatusNotFound, Code: matrix.CodeNotFound, Message: "No such registration token"}

// ListRegistrationTokens is GET /_synapse/admin/v1/registration_tokens.
func (s *Server) ListRegistrationTokens(ctx context.Context, req api.ListRegistrationTokensRequestObject) (api.ListRegistrationTokensResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	tokens, err := s.store.RegistrationTokens(ctx, req.Params.Valid)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	out := make([]api.RegistrationToken, 0, len(tokens))
	for _, t := range tokens {
		out = append(out, tokenJSON(t))
	}
	return api.ListRegistrationTokens200JSONResponse{RegistrationTokens: out}, nil
}

// CreateRegistrationToken is POST /_synapse/admin/v1/registration_tokens/new.
func (s *Server) CreateRegistrationToken(ctx context.Context, req api.CreateRegistrationTokenRequestObject) (api.CreateRegistrationTokenResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	b := req.Body
	spec := TokenSpec{UsesAllowed: nullableValue(b.UsesAllowed), ExpiryTime: nullableValue(b.ExpiryTime)}
	if b.Token != nil {
		spec.Token = *b.Token
		if spec.Token == "" {
			return nil, matrix.BadRequest(matrix.CodeInvalidParam, "token must consist of 1-64 characters of [A-Za-z0-9._~-]")
		}
	}
	if b.Length != nil {
		if *b.Length < 1 {
			return nil, matrix.BadRequest(matrix.CodeInvalidParam, "length must be an integer between 1 and 64")
		}
		spec.Length = *b.Length
	}
	t, err := s.createRegistrationToken(ctx, spec)
	if err != nil {
		return nil, err
	}
	return api.CreateRegistrationToken200JSONResponse(tokenJSON(t)), nil
}

// GetRegistrationToken is GET /_synapse/admin/v1/registration_tokens/{token}.
func (s *Server) GetRegistrationToken(ctx context.Context, req api.GetRegistrationTokenRequestObject) (api.GetRegistrationTokenResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	t, err := s.store.RegistrationToken(ctx, req.Token)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errNoSuchToken
	}
	if err != nil {
		return nil, matrix.Internal(err)
	}
	return api.GetRegistrationToken200JSONResponse(tokenJSON(t)), nil
}

// UpdateRegistrationToken is PUT /_synapse/admin/v1/registration_tokens/{token}:
// an absent field is kept, null removes the limit.
func (s *Server) UpdateRegistrationToken(ctx context.Context, req api.UpdateRegistrationTokenRequestObject) (api.UpdateRegistrationTokenResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	var u db.TokenUpdate
	if req.Body.UsesAllowed.IsSpecified() {
		v := nullableValue(req.Body.UsesAllowed)
		u.UsesAllowed = &v
	}
	if req.Body.ExpiryTime.IsSpecified() {
		v := nullableValue(req.Body.ExpiryTime)
		u.ExpiryTime = &v
	}
	t, err := s.updateRegistrationToken(ctx, req.Token, u)
	if err != nil {
		return nil, err
	}
	return api.UpdateRegistrationToken200JSONResponse(tokenJSON(t)), nil
}

func (s *Server) updateRegistrationToken(ctx context.Context, token string, u db.TokenUpdate) (db.RegistrationToken, error) {
	var uses *int
	var expiry *int64
	if u.UsesAllowed != nil {
		uses = *u.UsesAllowed
	}
	if u.ExpiryTime != nil {
		expiry = *u.ExpiryTime
	}
	if err := s.checkTokenLimits(uses, expiry); err != nil {
		return db.RegistrationToken{}, err
	}
	t, err := s.store.UpdateRegistrationToken(ctx, token, u)
	if errors.Is(err, db.ErrNotFound) {
		return t, errNoSuchToken
	}
	if err != nil {
		return t, matrix.Internal(err)
	}
	return t, nil
}

// DeleteRegistrationToken is DELETE /_synapse/admin/v1/registration_tokens/{token}.
func (s *Server) DeleteRegistrationToken(ctx context.Context, req api.DeleteRegistrationTokenRequestObject) (api.DeleteRegistrationTokenResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	err := s.store.DeleteRegistrationToken(ctx, req.Token)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errNoSuchToken
	}
	if err != nil {
		return nil, matrix.Internal(err)
	}
	return api.DeleteRegistrationToken200JSONResponse{}, nil
}

// nullableValue returns nil for an absent or null field.
func nullableValue[T any](n nullable.Nullable[T]) *T {
	if !n.IsSpecified() || n.IsNull() {
		return nil
	}
	v, err := n.Get()
	if err != nil {
		return nil
	}
	return &v
}

// abandonedReservationAge is how old a token reservation without a live
// session must be before the sweep gives its use back; it spares the
// reservations of one-step registrations still in flight.
const abandonedReservationAge = 10 * time.Minute
