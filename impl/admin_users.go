package impl

import (
	"context"
	"errors"

	"registrar/api"
	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/matrix"
)

func adminUserJSON(a db.Account) api.AdminUser {
	u := api.AdminUser{Name: a.UserID, Admin: a.Admin, Deactivated: a.Deactivated(), Approved: !a.ApprovalPending,
		IsGuest: a.Kind == db.KindGuest, CreationTs: a.CreatedAt, Erased: &a.Erased}
	if a.AppserviceID != "" {
		u.AppserviceId.Set(a.AppserviceID)
	} else {
		u.AppserviceId.SetNull()
	}
	if a.DisplayName != "" {
		u.Displayname = &a.DisplayName
	}
	return u
}

// GetUserAdmin is GET /_synapse/admin/v2/users/{userId}.
func (s *Server) GetUserAdmin(ctx context.Context, req api.GetUserAdminRequestObject) (api.GetUserAdminResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	u, err := s.adminUser(ctx, req.UserId)
	if err != nil {
		return nil, err
	}
	return api.GetUserAdmin200JSONResponse(u), nil
}

func (s *Server) adminUser(ctx context.Context, userID string) (api.AdminUser, error) {
	a, err := s.store.AccountByUserID(ctx, userID)
	if errors.Is(err, db.ErrNotFound) {
		return api.AdminUser{}, accounts.ErrNoSuchUser
	}
	if err != nil {
		return api.AdminUser{}, matrix.Internal(err)
	}
	return adminUserJSON(a), nil
}

// UpdateUserAdmin is PUT /_synapse/admin/v2/users/{userId}; registrar
// applies approved (MSC3866).
func (s *Server) UpdateUserAdmin(ctx context.Context, req api.UpdateUserAdminRequestObject) (api.UpdateUserAdminResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if req.Body.Approved != nil {
		if err := s.accounts.SetApproved(ctx, req.UserId, *req.Body.Approved); err != nil {
			return nil, err
		}
	}
	u, err := s.adminUser(ctx, req.UserId)
	if err != nil {
		return nil, err
	}
	return api.UpdateUserAdmin200JSONResponse(u), nil
}
