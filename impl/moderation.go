package impl

import (
	"context"

	"registrar/api"
	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/matrix"
)

// moderationTarget is the account a server admin locks or suspends
// (Matrix v1.18): authorisation before any lookup, then a local, active
// account, and when changing it, neither the admin nor another admin.
func (s *Server) moderationTarget(ctx context.Context, userID string, changing bool) (string, db.Account, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return "", db.Account{}, err
	}
	a, err := s.users.Account(ctx, userID)
	if err != nil {
		return "", db.Account{}, err
	}
	if a.Deactivated() {
		return "", db.Account{}, accounts.ErrNoSuchUser
	}
	if changing && (a.UserID == actor || a.Admin) {
		return "", db.Account{}, matrix.Forbidden("Server administrators cannot lock or suspend themselves or other administrators.")
	}
	return actor, a, nil
}

// GetAdminLockUser is GET /_matrix/client/v1/admin/lock/{userId} (Matrix v1.18).
func (s *Server) GetAdminLockUser(ctx context.Context, req api.GetAdminLockUserRequestObject) (api.GetAdminLockUserResponseObject, error) {
	_, a, err := s.moderationTarget(ctx, req.UserId, false)
	if err != nil {
		return nil, err
	}
	return api.GetAdminLockUser200JSONResponse{Locked: a.Locked}, nil
}

// SetAdminLockUser is PUT /_matrix/client/v1/admin/lock/{userId} (Matrix v1.18).
func (s *Server) SetAdminLockUser(ctx context.Context, req api.SetAdminLockUserRequestObject) (api.SetAdminLockUserResponseObject, error) {
	actor, a, err := s.moderationTarget(ctx, req.UserId, true)
	if err != nil {
		return nil, err
	}
	if err := s.users.SetLocked(ctx, actor, a.UserID, req.Body.Locked); err != nil {
		return nil, err
	}
	return api.SetAdminLockUser200JSONResponse{Locked: req.Body.Locked}, nil
}

// GetAdminSuspendUser is GET /_matrix/client/v1/admin/suspend/{userId} (Matrix v1.18).
func (s *Server) GetAdminSuspendUser(ctx context.Context, req api.GetAdminSuspendUserRequestObject) (api.GetAdminSuspendUserResponseObject, error) {
	_, a, err := s.moderationTarget(ctx, req.UserId, false)
	if err != nil {
		return nil, err
	}
	return api.GetAdminSuspendUser200JSONResponse{Suspended: a.Suspended}, nil
}

// SetAdminSuspendUser is PUT /_matrix/client/v1/admin/suspend/{userId} (Matrix v1.18).
func (s *Server) SetAdminSuspendUser(ctx context.Context, req api.SetAdminSuspendUserRequestObject) (api.SetAdminSuspendUserResponseObject, error) {
	actor, a, err := s.moderationTarget(ctx, req.UserId, true)
	if err != nil {
		return nil, err
	}
	if err := s.users.SetSuspended(ctx, actor, a.UserID, req.Body.Suspended); err != nil {
		return nil, err
	}
	return api.SetAdminSuspendUser200JSONResponse{Suspended: req.Body.Suspended}, nil
}
