package impl

import (
	"context"

	"github.com/oapi-codegen/nullable"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/regtokens"
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
	valid, err := s.regtokens.Valid(ctx, req.Params.Token)
	if err != nil {
		return nil, err
	}
	return api.RegistrationTokenValidity200JSONResponse{Valid: valid}, nil
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

// ListRegistrationTokens is GET /_synapse/admin/v1/registration_tokens.
func (s *Server) ListRegistrationTokens(ctx context.Context, req api.ListRegistrationTokensRequestObject) (api.ListRegistrationTokensResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	tokens, err := s.regtokens.List(ctx, req.Params.Valid)
	if err != nil {
		return nil, err
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
	spec := regtokens.Spec{UsesAllowed: nullableValue(b.UsesAllowed), ExpiryTime: nullableValue(b.ExpiryTime)}
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
	t, err := s.regtokens.Create(ctx, spec)
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
	t, err := s.regtokens.Get(ctx, req.Token)
	if err != nil {
		return nil, err
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
	t, err := s.regtokens.Update(ctx, req.Token, u)
	if err != nil {
		return nil, err
	}
	return api.UpdateRegistrationToken200JSONResponse(tokenJSON(t)), nil
}

// DeleteRegistrationToken is DELETE /_synapse/admin/v1/registration_tokens/{token}.
func (s *Server) DeleteRegistrationToken(ctx context.Context, req api.DeleteRegistrationTokenRequestObject) (api.DeleteRegistrationTokenResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.regtokens.Delete(ctx, req.Token); err != nil {
		return nil, err
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
