package impl

import (
	"context"
	"errors"
	"net/http"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
)

func isHistoricalLocalpart(lp string) bool {
	if lp == "" {
		return false
	}
	for i := 0; i < len(lp); i++ {
		if lp[i] < 0x21 || lp[i] > 0x7e || lp[i] == ':' {
			return false
		}
	}
	return true
}

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
	localpart := *body.Username
	userID := s.userID(localpart)
	if !isHistoricalLocalpart(localpart) || len(userID) > maxUserIDLength {
		return nil, matrix.BadRequest(matrix.CodeInvalidUsername, "Invalid user localpart")
	}
	as := who.AppService
	if !as.Interested(userID, s.userID(as.SenderLocalpart)) {
		return nil, matrix.BadRequest(matrix.CodeExclusive, "Invalid user localpart for this application service.")
	}
	if owner := s.appServices.ExclusiveOwner(userID); owner != nil && owner != as {
		return nil, matrix.BadRequest(matrix.CodeExclusive, "This user ID is reserved by an application service.")
	}
	reg := db.Registration{Account: db.Account{UserID: userID, LocalpartLower: lowerASCII(localpart), Kind: db.KindUser, AppserviceID: as.ID}}
	var out loginResult
	if !boolValue(body.InhibitLogin) {
		login, res, err := s.newLogin(body.DeviceId, body.InitialDeviceDisplayName, boolValue(body.RefreshToken))
		if err != nil {
			return nil, err
		}
		reg.Login, out = &login, res
	}
	err := s.store.Register(ctx, reg)
	if errors.Is(err, db.ErrUserExists) {
		return nil, matrix.BadRequest(matrix.CodeUserInUse, "User ID already taken.")
	}
	if err != nil {
		return nil, matrix.Internal(err)
	}
	s.log.Info("application service registered user", "user_id", userID, "appservice", as.ID)
	return s.registerResponse(userID, registerParams{}, out), nil
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
	localpart, ok := s.localpartOf(*body.Identifier.User)
	if !ok {
		return nil, matrix.Forbidden("Invalid username")
	}
	acct, err := s.store.Account(ctx, lowerASCII(localpart))
	if errors.Is(err, db.ErrNotFound) {
		return nil, matrix.Forbidden("Invalid username")
	}
	if err != nil {
		return nil, matrix.Internal(err)
	}
	if !as.Interested(acct.UserID, s.userID(as.SenderLocalpart)) {
		return nil, matrix.BadRequest(matrix.CodeExclusive, "Invalid user for this application service.")
	}
	if acct.Deactivated() {
		return nil, &matrix.Error{Status: http.StatusForbidden, Code: matrix.CodeUserDeactivated, Message: "This account has been deactivated"}
	}
	return s.issueLoginResponse(ctx, acct.UserID, "", body)
}
