package impl

import (
	"context"
	"errors"
	"net/http"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/uia"
)

const (
	passwordPath   = "/_matrix/client/v3/account/password"
	deactivatePath = "/_matrix/client/v3/account/deactivate"
)

// ChangePassword is POST /_matrix/client/v3/account/password (client-server
// API v1.7). With an access token the user re-authenticates with its
// password; the identity proven must be the token's own user.
func (s *Server) ChangePassword(ctx context.Context, req api.ChangePasswordRequestObject) (api.ChangePasswordResponseObject, error) {
	body := req.Body
	who, err := optionalRequester(ctx)
	if err != nil {
		return nil, err
	}
	if who != nil {
		if err := mayChangeAccount(who); err != nil {
			return nil, err
		}
	}
	if !s.cfg.PasswordConfig.Enabled {
		return nil, matrix.Forbidden("Password change disabled")
	}
	if err := s.accounts.CheckPasswordPolicy(body.NewPassword); err != nil {
		return nil, err
	}
	flows := s.reauthFlows(ctx)
	if who == nil {
		flows = s.resetFlows()
	}
	err = s.protect(ctx, s.uiaRequest(ctx, http.MethodPost, passwordPath, body.Auth, flows), func(sess *uia.Session) error {
		if who == nil {
			return s.resetPassword(ctx, sess, body.NewPassword)
		}
		logoutOthers := body.LogoutDevices == nil || *body.LogoutDevices
		return s.accounts.SetPassword(ctx, who.UserID, body.NewPassword, db.PasswordLogout{Devices: logoutOthers, KeepDevice: who.DeviceID})
	})
	if err != nil {
		return nil, err
	}
	return api.ChangePassword200JSONResponse{}, nil
}

// DeactivateAccount is POST /_matrix/client/v3/account/deactivate
// (client-server API v1.7, erase from v1.10). The account, its password,
// devices and tokens go in one transaction; the user ID stays taken.
func (s *Server) DeactivateAccount(ctx context.Context, req api.DeactivateAccountRequestObject) (api.DeactivateAccountResponseObject, error) {
	body := req.Body
	who, err := optionalRequester(ctx)
	if err != nil {
		return nil, err
	}
	if who == nil {
		return nil, matrix.ErrMissingToken
	}
	if who.IsGuest {
		return nil, matrix.ErrGuestForbidden
	}
	if !s.cfg.AllowDeactivation {
		return nil, matrix.Forbidden("Account deactivation is disabled on this server")
	}
	err = s.protect(ctx, s.uiaRequest(ctx, http.MethodPost, deactivatePath, body.Auth, s.reauthFlows(ctx)), func(*uia.Session) error {
		return s.accounts.Deactivate(ctx, who.UserID, boolValue(body.Erase))
	})
	if err != nil {
		return nil, err
	}
	return api.DeactivateAccount200JSONResponse{IdServerUnbindResult: "success"}, nil
}

// mayChangeAccount refuses account changes (password, addresses) to
// guests and to suspended accounts (Matrix v1.13); deactivating and
// logging out stay allowed.
func mayChangeAccount(who *requester) error {
	switch {
	case who.IsGuest:
		return matrix.ErrGuestForbidden
	case who.Suspended:
		return matrix.ErrUserSuspended
	}
	return nil
}

// resetPassword finishes a password reset: the account owning the address
// the 3PID stage proved gets the new password and loses every device.
func (s *Server) resetPassword(ctx context.Context, sess *uia.Session, newPassword string) error {
	proved := sessionThreepids(sess)
	if len(proved) == 0 {
		return matrix.Internal(errors.New("password reset completed without a 3PID stage"))
	}
	userID, err := s.store.ThreepidOwner(ctx, proved[0].Medium, proved[0].Address)
	if errors.Is(err, db.ErrNotFound) {
		return matrix.NotFound("Third-party identifier not found")
	}
	if err != nil {
		return matrix.Internal(err)
	}
	if acct, err := s.store.AccountByUserID(ctx, userID); err == nil && acct.Suspended {
		return matrix.ErrUserSuspended
	}
	if err := s.accounts.SetPassword(ctx, userID, newPassword, db.PasswordLogout{Devices: true}); err != nil {
		return err
	}
	if err := s.store.ConsumeThreepidSession(ctx, proved[0].Sid); err != nil {
		s.log.WarnContext(ctx, "could not consume validation session", "error", err)
	}
	s.log.InfoContext(ctx, "password reset", "user_id", userID, "medium", proved[0].Medium)
	return nil
}
