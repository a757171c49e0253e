package impl

import (
	"context"
	"errors"
	"net/http"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/passwords"
)

const (
	passwordPath   = "/_matrix/client/v3/account/password"
	deactivatePath = "/_matrix/client/v3/account/deactivate"
)

// reauthFlows are the flows by which a logged-in user proves it is them.
var reauthFlows = [][]string{{authTypePassword}}

// resetFlows are the flows of a password reset without an access token:
// a validated address bound to the account.
func (s *Server) resetFlows() [][]string {
	flows := [][]string{{authTypeEmail}}
	if s.msisdnEnabled() {
		flows = append(flows, []string{authTypeMsisdn})
	}
	return flows
}

// ChangePassword is POST /_matrix/client/v3/account/password (client-server
// API v1.7). With an access token the user re-authenticates with its
// password; the identity proven must be the token's own user.
func (s *Server) ChangePassword(ctx context.Context, req api.ChangePasswordRequestObject) (api.ChangePasswordResponseObject, error) {
	body := req.Body
	who := requesterFrom(ctx)
	if who != nil && who.IsGuest {
		return nil, matrix.ErrGuestForbidden
	}
	if !s.cfg.PasswordConfig.Enabled {
		return nil, matrix.Forbidden("Password change disabled")
	}
	if err := checkPasswordPolicy(s.cfg.PasswordConfig.Policy, body.NewPassword); err != nil {
		return nil, err
	}
	uia := uiaRequest{Method: http.MethodPost, Path: passwordPath, Auth: body.Auth, Flows: s.resetFlows()}
	if who != nil {
		uia.Flows, uia.ExpectedUser = reauthFlows, who.UserID
	}
	sess, err := s.reauthenticate(ctx, uia)
	if err != nil {
		return nil, err
	}
	if who == nil {
		return s.resetPassword(ctx, sess, body.NewPassword)
	}
	hash, err := s.hasher.Hash(ctx, body.NewPassword)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	logoutOthers := body.LogoutDevices == nil || *body.LogoutDevices
	defer s.tokens.revokeUser(who.UserID)
	if err := s.store.SetPassword(ctx, who.UserID, hash, logoutOthers, who.DeviceID); err != nil {
		return nil, matrix.Internal(err)
	}
	s.log.Info("password changed", "user_id", who.UserID, "logout_devices", logoutOthers)
	return api.ChangePassword200JSONResponse{}, nil
}

// DeactivateAccount is POST /_matrix/client/v3/account/deactivate
// (client-server API v1.7, erase from v1.10). The account, its password,
// devices and tokens go in one transaction; the user ID stays taken.
func (s *Server) DeactivateAccount(ctx context.Context, req api.DeactivateAccountRequestObject) (api.DeactivateAccountResponseObject, error) {
	body := req.Body
	who := requesterFrom(ctx)
	if who == nil {
		return nil, matrix.ErrMissingToken
	}
	if who.IsGuest {
		return nil, matrix.ErrGuestForbidden
	}
	if !s.cfg.AllowDeactivation {
		return nil, matrix.Forbidden("Account deactivation is disabled on this server")
	}
	if _, err := s.reauthenticate(ctx, uiaRequest{Method: http.MethodPost, Path: deactivatePath, Auth: body.Auth,
		Flows: reauthFlows, ExpectedUser: who.UserID}); err != nil {
		return nil, err
	}
	defer s.tokens.revokeUser(who.UserID)
	err := s.store.Deactivate(ctx, who.UserID, boolValue(body.Erase))
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return nil, matrix.Internal(err)
	}
	s.log.Info("account deactivated", "user_id", who.UserID, "erase", boolValue(body.Erase))
	return api.DeactivateAccount200JSONResponse{IdServerUnbindResult: "success"}, nil
}

// reauthenticate runs UIA for an account-management request.
func (s *Server) reauthenticate(ctx context.Context, req uiaRequest) (*uiaSession, error) {
	sess, err := s.uia.load(ctx, req.Auth, req.Method, req.Path)
	if err != nil {
		return nil, err
	}
	return s.uia.authenticate(ctx, sess, req)
}

// resetPassword finishes a password reset: the account owning the address
// the 3PID stage proved gets the new password and loses every device.
func (s *Server) resetPassword(ctx context.Context, sess *uiaSession, newPassword string) (api.ChangePasswordResponseObject, error) {
	proved := sessionThreepids(sess)
	if len(proved) == 0 {
		return nil, matrix.Internal(errors.New("password reset completed without a 3PID stage"))
	}
	userID, err := s.store.ThreepidOwner(ctx, proved[0].Medium, proved[0].Address)
	if errors.Is(err, db.ErrNotFound) {
		return nil, &matrix.Error{Status: http.StatusNotFound, Code: matrix.CodeNotFound, Message: "Third-party identifier not found"}
	}
	if err != nil {
		return nil, matrix.Internal(err)
	}
	hash, err := s.hasher.Hash(ctx, newPassword)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	defer s.tokens.revokeUser(userID)
	if err := s.store.SetPassword(ctx, userID, hash, true, ""); err != nil {
		return nil, matrix.Internal(err)
	}
	if err := s.store.ConsumeThreepidSession(ctx, proved[0].Sid); err != nil {
		s.log.Warn("could not consume validation session", "error", err)
	}
	s.log.Info("password reset", "user_id", userID, "medium", proved[0].Medium)
	return api.ChangePassword200JSONResponse{}, nil
}

// checkPasswordPolicy answers a password the policy refuses with
// M_WEAK_PASSWORD naming the rule (an over-long one is an invalid
// parameter).
func checkPasswordPolicy(p passwords.Policy, password string) *matrix.Error {
	v := p.Check(password)
	switch {
	case v == nil:
		return nil
	case v.TooLong:
		return matrix.BadRequest(matrix.CodeInvalidParam, v.Rule)
	}
	return matrix.BadRequest(matrix.CodeWeakPassword, v.Rule)
}
