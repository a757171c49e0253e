package impl

import (
	"context"
	"errors"
	"strings"

	"registrar/api"
	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/matrix"
)

// registerAppService is POST /register with type m.login.application_service
// (application service API, "Server admin style permissions"): no UIA, the
// username must be in the service's namespaces.
func (s *Server) registerAppService(ctx context.Context, body *api.RegisterJSONRequestBody) (api.RegisterResponseObject, error) {
	who := requesterFrom(ctx)
	if who == nil {
		return nil, matrix.ErrMissingToken
	}
	if who.AppService == nil {
		return nil, matrix.Forbidden("Invalid application service token.")
	}
	if body.Username == nil {
		return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing username")
	}
	created, err := s.accounts.Create(ctx, accounts.NewAccount{Source: accounts.SourceAppService, Localpart: *body.Username,
		AppService: who.AppService, Login: registerParams{DeviceID: body.DeviceId, InitialDeviceDisplayName: body.InitialDeviceDisplayName,
			InhibitLogin: body.InhibitLogin, RefreshToken: body.RefreshToken}.loginRequest()})
	if err != nil {
		return nil, err
	}
	return s.registerResponse(created.UserID, created.Login), nil
}

// loginAppService is POST /login with m.login.application_service: the
// service logs in one of its users.
func (s *Server) loginAppService(ctx context.Context, body *api.LoginJSONRequestBody) (api.LoginResponseObject, error) {
	token := presentedToken(ctx)
	if token == "" {
		return nil, matrix.ErrMissingToken
	}
	as := s.appServices.ByToken(token)
	if as == nil {
		return nil, matrix.Forbidden("Invalid application service token.")
	}
	if body.Identifier == nil || body.Identifier.Type != "m.id.user" || body.Identifier.User == nil {
		return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing identifier: an m.id.user is required")
	}
	localpart, ok := s.accounts.Localpart(*body.Identifier.User)
	if !ok {
		return nil, matrix.Forbidden("Invalid username")
	}
	acct, err := s.store.Account(ctx, strings.ToLower(localpart))
	if errors.Is(err, db.ErrNotFound) {
		return nil, matrix.Forbidden("Invalid username")
	}
	if err != nil {
		return nil, matrix.Internal(err)
	}
	if !as.Interested(acct.UserID, s.accounts.UserID(as.SenderLocalpart)) {
		return nil, matrix.BadRequest(matrix.CodeExclusive, "Invalid user for this application service.")
	}
	if acct.Deactivated() {
		return nil, matrix.ErrUserDeactivated
	}
	return s.loginResponse(ctx, acct.UserID, "", body)
}
