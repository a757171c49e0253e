package impl

import (
	"context"
	"strconv"
	"strings"

	"registrar/api"
	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/matrix"
	"registrar/impl/useradmin"
)

// errNotAdmin refuses the admin API to anyone but a server admin.
var errNotAdmin = matrix.Forbidden("You are not a server admin")

// requireAdmin allows server admins only: never a guest, never an
// application service.
func requireAdmin(ctx context.Context) error {
	_, err := adminActor(ctx)
	return err
}

// adminActor is the admin making the request, for the audit record.
func adminActor(ctx context.Context) (string, error) {
	who := requesterFrom(ctx)
	if who == nil || !who.Admin || who.IsGuest || who.AppService != nil {
		return "", errNotAdmin
	}
	return who.UserID, nil
}

// adminUserJSON is an account as the admin API shows it; threepids are
// given (nil for the list, which leaves them out).
func adminUserJSON(a db.Account, threepids []db.Threepid) api.AdminUser {
	u := api.AdminUser{Name: a.UserID, Admin: a.Admin, Deactivated: a.Deactivated(), Erased: a.Erased,
		Locked: a.Locked, Suspended: a.Suspended, Approved: !a.ApprovalPending, IsGuest: a.Kind == db.KindGuest,
		CreationTs: a.CreatedAt, ShadowBanned: a.ShadowBanned}
	setOrNull(&u.Displayname, a.DisplayName, a.DisplayName != "")
	setOrNull(&u.AvatarUrl, a.AvatarURL, a.AvatarURL != "")
	setOrNull(&u.AppserviceId, a.AppserviceID, a.AppserviceID != "")
	setOrNull(&u.UserType, derefString(a.UserType), a.UserType != nil)
	if a.LastSeenAt != nil {
		u.LastSeenTs.Set(*a.LastSeenAt)
	} else {
		u.LastSeenTs.SetNull()
	}
	if threepids != nil {
		list := make([]api.AdminThreepid, len(threepids))
		for i, t := range threepids {
			list[i] = api.AdminThreepid{Medium: t.Medium, Address: t.Address, AddedAt: t.AddedAt, ValidatedAt: t.ValidatedAt}
		}
		u.Threepids = &list
		u.ExternalIds = &[]api.AdminExternalID{}
		u.ConsentServerNoticeSent.SetNull()
		setOrNull(&u.ConsentVersion, a.ConsentVersion, a.ConsentVersion != "")
		if a.ConsentAt != nil {
			u.ConsentTs.Set(*a.ConsentAt)
		} else {
			u.ConsentTs.SetNull()
		}
	}
	return u
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// adminUser is one account with its addresses, for the admin API.
func (s *Server) adminUser(ctx context.Context, userID string) (api.AdminUser, error) {
	u, err := s.users.Get(ctx, userID)
	if err != nil {
		return api.AdminUser{}, err
	}
	out := adminUserJSON(u.Account, nonNil(u.Threepids))
	ext, err := s.store.ExternalIDs(ctx, u.Account.UserID)
	if err != nil {
		return api.AdminUser{}, matrix.Internal(err)
	}
	for _, e := range ext {
		*out.ExternalIds = append(*out.ExternalIds, api.AdminExternalID{AuthProvider: e.AuthProvider, ExternalId: e.ExternalID})
	}
	return out, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ListUsersAdminV2 is GET /_synapse/admin/v2/users: deactivated=true
// includes deactivated accounts.
func (s *Server) ListUsersAdminV2(ctx context.Context, req api.ListUsersAdminV2RequestObject) (api.ListUsersAdminV2ResponseObject, error) {
	p := req.Params
	q := accountQuery(p.UserId, p.Name, p.Guests, p.Admins, p.Locked, p.Approved, p.UserTypes, p.NotUserType,
		(*string)(p.OrderBy), (*string)(p.Dir), p.From, p.Limit)
	if p.Deactivated == nil || !*p.Deactivated {
		q.Deactivated = ptrTo(false)
	}
	page, err := s.listUsers(ctx, q)
	return api.ListUsersAdminV2200JSONResponse(page), err
}

// ListUsersAdminV3 is GET /_synapse/admin/v3/users: deactivated keeps
// only deactivated accounts (true), only active ones (false), or both.
func (s *Server) ListUsersAdminV3(ctx context.Context, req api.ListUsersAdminV3RequestObject) (api.ListUsersAdminV3ResponseObject, error) {
	p := req.Params
	q := accountQuery(p.UserId, p.Name, p.Guests, p.Admins, p.Locked, p.Approved, p.UserTypes, p.NotUserType,
		(*string)(p.OrderBy), (*string)(p.Dir), p.From, p.Limit)
	q.Deactivated = p.Deactivated
	page, err := s.listUsers(ctx, q)
	return api.ListUsersAdminV3200JSONResponse(page), err
}

// userPage is the body of both list versions.
type userPage = struct {
	NextToken *string         `json:"next_token,omitempty"`
	Total     int64           `json:"total"`
	Users     []api.AdminUser `json:"users"`
}

// accountQuery reads the list parameters both versions share, with
// Synapse's defaults: guests included, locked accounts left out, by name,
// 100 from the first.
func accountQuery(userID, name *string, guests, admins, locked, approved *bool, userTypes, notUserTypes *[]string,
	orderBy, dir *string, from, limit *int64) db.AccountQuery {
	q := db.AccountQuery{UserID: derefString(userID), Name: derefString(name), Guests: guests == nil || *guests,
		Admins: admins, OnlyUnapproved: approved != nil && !*approved, OrderBy: derefString(orderBy),
		Backwards: derefString(dir) == "b", Limit: 100}
	if locked == nil || !*locked {
		q.Locked = ptrTo(false)
	}
	if userTypes != nil {
		q.UserTypes = *userTypes
	}
	if notUserTypes != nil {
		q.NotUserTypes = *notUserTypes
	}
	if from != nil {
		q.From = int(*from)
	}
	if limit != nil {
		q.Limit = int(*limit)
	}
	return q
}

func ptrTo[T any](v T) *T { return &v }

func (s *Server) listUsers(ctx context.Context, q db.AccountQuery) (userPage, error) {
	if err := requireAdmin(ctx); err != nil {
		return userPage{}, err
	}
	page := userPage{Users: []api.AdminUser{}}
	if q.Limit == 0 {
		_, total, err := s.users.List(ctx, db.AccountQuery{Limit: 0})
		page.Total = total
		return page, err
	}
	list, total, err := s.users.List(ctx, q)
	if err != nil {
		return userPage{}, err
	}
	for _, a := range list {
		page.Users = append(page.Users, adminUserJSON(a, nil))
	}
	page.Total = total
	if next := int64(q.From) + int64(len(list)); next < total && len(list) > 0 {
		token := strconv.FormatInt(next, 10)
		page.NextToken = &token
	}
	return page, nil
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

// UpdateUserAdmin is PUT /_synapse/admin/v2/users/{userId}: creates the
// account (201) or changes it (200), in one transaction.
func (s *Server) UpdateUserAdmin(ctx context.Context, req api.UpdateUserAdminRequestObject) (api.UpdateUserAdminResponseObject, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	c := useradmin.Changes{Password: b.Password, LogoutDevices: b.LogoutDevices, Admin: b.Admin, Deactivated: b.Deactivated,
		Locked: b.Locked, Approved: b.Approved, DisplayName: b.Displayname, AvatarURL: b.AvatarUrl}
	if b.UserType.IsSpecified() {
		c.SetUserType = true
		if !b.UserType.IsNull() {
			c.UserType = ptrTo(b.UserType.MustGet())
		}
	}
	if b.Threepids != nil {
		tps := make([]useradmin.Threepid, len(*b.Threepids))
		for i, t := range *b.Threepids {
			tps[i] = useradmin.Threepid{Medium: t.Medium, Address: t.Address}
		}
		c.Threepids = &tps
	}
	if b.ExternalIds != nil {
		c.ExternalIDs = len(*b.ExternalIds)
	}
	u, created, err := s.users.Put(ctx, actor, req.UserId, c)
	if err != nil {
		return nil, err
	}
	out := adminUserJSON(u.Account, nonNil(u.Threepids))
	if created {
		return api.UpdateUserAdmin201JSONResponse(out), nil
	}
	return api.UpdateUserAdmin200JSONResponse(out), nil
}

// DeactivateUserAdmin is POST /_synapse/admin/v1/deactivate/{userId}.
func (s *Server) DeactivateUserAdmin(ctx context.Context, req api.DeactivateUserAdminRequestObject) (api.DeactivateUserAdminResponseObject, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	erase := req.Body != nil && boolValue(req.Body.Erase)
	if err := s.users.Deactivate(ctx, actor, req.UserId, erase); err != nil {
		return nil, err
	}
	return api.DeactivateUserAdmin200JSONResponse{IdServerUnbindResult: "success"}, nil
}

// ResetPasswordAdmin is POST /_synapse/admin/v1/reset_password/{userId}.
func (s *Server) ResetPasswordAdmin(ctx context.Context, req api.ResetPasswordAdminRequestObject) (api.ResetPasswordAdminResponseObject, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	logout := req.Body.LogoutDevices == nil || *req.Body.LogoutDevices
	if err := s.users.ResetPassword(ctx, actor, req.UserId, req.Body.NewPassword, logout); err != nil {
		return nil, err
	}
	return api.ResetPasswordAdmin200JSONResponse{}, nil
}

// UsernameAvailableAdmin is GET /_synapse/admin/v1/username_available:
// /register/available for admins, with registration closed too.
func (s *Server) UsernameAvailableAdmin(ctx context.Context, req api.UsernameAvailableAdminRequestObject) (api.UsernameAvailableAdminResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if len(req.Params.Username) > accounts.MaxUsernameInput {
		return nil, matrix.BadRequest(matrix.CodeInvalidUsername, "Invalid username")
	}
	if err := s.accounts.CheckUsername(ctx, strings.ToLower(req.Params.Username), false); err != nil {
		return nil, err
	}
	return api.UsernameAvailableAdmin200JSONResponse{Available: true}, nil
}

// LoginAsUserAdmin is POST /_synapse/admin/v1/users/{userId}/login.
func (s *Server) LoginAsUserAdmin(ctx context.Context, req api.LoginAsUserAdminRequestObject) (api.LoginAsUserAdminResponseObject, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	var validUntil *int64
	if req.Body != nil && req.Body.ValidUntilMs.IsSpecified() && !req.Body.ValidUntilMs.IsNull() {
		validUntil = ptrTo(req.Body.ValidUntilMs.MustGet())
		if *validUntil <= s.now().UnixMilli() {
			return nil, matrix.BadRequest(matrix.CodeInvalidParam, "valid_until_ms must be in the future")
		}
	}
	token, err := s.users.LoginAs(ctx, actor, req.UserId, validUntil)
	if err != nil {
		return nil, err
	}
	return api.LoginAsUserAdmin200JSONResponse{AccessToken: token}, nil
}

// GetUserAdminStatus is GET /_synapse/admin/v1/users/{userId}/admin.
func (s *Server) GetUserAdminStatus(ctx context.Context, req api.GetUserAdminStatusRequestObject) (api.GetUserAdminStatusResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	a, err := s.users.Account(ctx, req.UserId)
	if err != nil {
		return nil, err
	}
	return api.GetUserAdminStatus200JSONResponse{Admin: a.Admin}, nil
}

// SetUserAdminStatus is PUT /_synapse/admin/v1/users/{userId}/admin.
func (s *Server) SetUserAdminStatus(ctx context.Context, req api.SetUserAdminStatusRequestObject) (api.SetUserAdminStatusResponseObject, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.users.SetAdmin(ctx, actor, req.UserId, req.Body.Admin); err != nil {
		return nil, err
	}
	return api.SetUserAdminStatus200JSONResponse{}, nil
}

// WhoisAdmin is GET /_synapse/admin/v1/whois/{userId}.
func (s *Server) WhoisAdmin(ctx context.Context, req api.WhoisAdminRequestObject) (api.WhoisAdminResponseObject, error) {
	info, err := s.whois(ctx, req.UserId)
	if err != nil {
		return nil, err
	}
	return api.WhoisAdmin200JSONResponse(info), nil
}

// GetWhoIs is GET /_matrix/client/v3/admin/whois/{userId}.
func (s *Server) GetWhoIs(ctx context.Context, req api.GetWhoIsRequestObject) (api.GetWhoIsResponseObject, error) {
	info, err := s.whois(ctx, req.UserId)
	if err != nil {
		return nil, err
	}
	return api.GetWhoIs200JSONResponse(info), nil
}

// whois is for server admins and the user themselves: each device with
// one session, its connections newest first.
func (s *Server) whois(ctx context.Context, userID string) (api.WhoisInfo, error) {
	if who := requesterFrom(ctx); who.UserID != userID || who.AppService != nil {
		if err := requireAdmin(ctx); err != nil {
			return api.WhoisInfo{}, err
		}
	}
	byDevice, err := s.users.Whois(ctx, userID)
	if err != nil {
		return api.WhoisInfo{}, err
	}
	out := api.WhoisInfo{UserId: userID, Devices: map[string]api.WhoisDevice{}}
	for device, ips := range byDevice {
		conns := make([]api.WhoisConnection, len(ips))
		for i, ip := range ips {
			conns[i] = api.WhoisConnection{Ip: ip.IP, LastSeen: ip.LastSeen, UserAgent: ip.UserAgent}
		}
		out.Devices[device] = api.WhoisDevice{Sessions: []api.WhoisSession{{Connections: conns}}}
	}
	return out, nil
}

// setOrNull sets a nullable field to v when ok, else to null.
func setOrNull[T any](n interface {
	Set(T)
	SetNull()
}, v T, ok bool) {
	if ok {
		n.Set(v)
	} else {
		n.SetNull()
	}
}
