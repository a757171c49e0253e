package impl

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/secrets"
	"registrar/impl/uia"
)

const registerPath = "/_matrix/client/v3/register"

// registerParams are /register's parameters as kept in the UIA session
// (sealed into its ID, never stored), so that a follow-up request carrying
// only auth registers with them.
type registerParams struct {
	Username                 *string `json:"username,omitempty"`
	Password                 *string `json:"password,omitempty"`
	DeviceID                 *string `json:"device_id,omitempty"`
	InitialDeviceDisplayName *string `json:"initial_device_display_name,omitempty"`
	InhibitLogin             *bool   `json:"inhibit_login,omitempty"`
	RefreshToken             *bool   `json:"refresh_token,omitempty"`
	GuestUserID              string  `json:"guest_user_id,omitempty"`
}

// fillFrom takes every parameter this request left out from the session.
func (p *registerParams) fillFrom(stored registerParams) {
	if p.Username == nil {
		p.Username = stored.Username
	}
	if p.Password == nil {
		p.Password = stored.Password
	}
	if p.DeviceID == nil {
		p.DeviceID = stored.DeviceID
	}
	if p.InitialDeviceDisplayName == nil {
		p.InitialDeviceDisplayName = stored.InitialDeviceDisplayName
	}
	if p.InhibitLogin == nil {
		p.InhibitLogin = stored.InhibitLogin
	}
	if p.RefreshToken == nil {
		p.RefreshToken = stored.RefreshToken
	}
	if p.GuestUserID == "" {
		p.GuestUserID = stored.GuestUserID
	}
}

// sessionRegisteredUser is the session data key of the user a session
// registered.
const sessionRegisteredUser = "registered_user_id"

// Register is POST /_matrix/client/v3/register (client-server API v1.7,
// "Account registration"). Checks run in Synapse's order: kind, application
// service, registration enabled, username rules, then UIA, then creation.
func (s *Server) Register(ctx context.Context, req api.RegisterRequestObject) (api.RegisterResponseObject, error) {
	body := req.Body
	if body.Type != nil && *body.Type == "m.login.application_service" {
		return s.registerAppService(ctx, body)
	}
	if err := s.limits.checkRegistration(addressKey(ctx), s.now()); err != nil {
		return nil, err
	}
	if req.Params.Kind != nil && *req.Params.Kind == api.Guest {
		return s.registerGuest(ctx, body)
	}
	if requesterFrom(ctx) != nil {
		return nil, matrix.BadRequest(matrix.CodeUnknown, "An access token may only be given to register as an application service")
	}
	if !s.cfg.EnableRegistration {
		return nil, errRegistrationDisabled
	}
	params, err := s.registerParamsOf(ctx, body)
	if err != nil {
		return nil, err
	}
	uiaReq := s.uiaRequest(ctx, http.MethodPost, registerPath, body.Auth, s.registrationFlows())
	sess, err := s.uia.Load(ctx, uiaReq)
	if err != nil {
		return nil, err
	}
	if sess != nil {
		var stored registerParams
		if len(sess.Params) > 0 {
			if err := json.Unmarshal(sess.Params, &stored); err != nil {
				return nil, matrix.Internal(err)
			}
		}
		params.fillFrom(stored)
		if userID := sess.Data[sessionRegisteredUser]; userID != "" && s.cfg.RequireApprovalForNewAccounts {
			return nil, matrix.ErrAwaitingApproval
		} else if userID != "" {
			// A repeated final request: same account, a fresh login.
			return s.registered(ctx, userID, params)
		}
	}
	localpart := ""
	if params.Username != nil {
		localpart = strings.ToLower(*params.Username)
		if err := s.checkUsername(ctx, localpart, params.GuestUserID != ""); err != nil {
			if userID := s.registeredMeanwhile(ctx, sess, err); userID != "" {
				return s.registered(ctx, userID, params)
			}
			return nil, err
		}
	}
	uiaReq.Params = mustJSON(params)
	sess, err = s.uia.Authenticate(ctx, sess, uiaReq)
	if err != nil {
		return nil, err
	}
	if params.Password == nil {
		return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing params: password")
	}
	hash, err := s.hasher.Hash(ctx, *params.Password)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	// A session the client knows of records the account, so that a retry
	// returns it; one started and finished by this request need not.
	known := body.Auth != nil && body.Auth.Session != nil
	return s.createAccount(ctx, sess, known, localpart, hash, params)
}

// registerParamsOf checks the request's own parameters (Synapse's order:
// username length, password length and policy) and seals the password.
func (s *Server) registerParamsOf(ctx context.Context, body *api.RegisterJSONRequestBody) (registerParams, error) {
	p := registerParams{DeviceID: body.DeviceId, InitialDeviceDisplayName: body.InitialDeviceDisplayName,
		InhibitLogin: body.InhibitLogin, RefreshToken: body.RefreshToken}
	if body.Username != nil {
		if len(*body.Username) > maxUsernameInput {
			return p, matrix.BadRequest(matrix.CodeInvalidParam, "Invalid username")
		}
		p.Username = body.Username
	}
	if body.Password != nil {
		if err := checkPasswordPolicy(s.cfg.PasswordConfig.Policy, *body.Password); err != nil {
			return p, err
		}
		p.Password = body.Password
	} else {
		// Synapse drops the display name of a request without a password
		// (a workaround for clients resending it on every stage).
		p.InitialDeviceDisplayName = nil
	}
	if err := checkDeviceParams(p.DeviceID, p.InitialDeviceDisplayName); err != nil {
		return p, err
	}
	if body.GuestAccessToken != nil {
		owner, err := s.store.LookupAccessToken(ctx, secrets.HashToken(*body.GuestAccessToken))
		if err != nil || owner.Kind != db.KindGuest || owner.Deactivated {
			return p, matrix.Forbidden("Invalid guest access token")
		}
		lp, _ := s.localpartOf(owner.UserID)
		if p.Username == nil || strings.ToLower(*p.Username) != lp {
			return p, matrix.Forbidden("A guest account can only be upgraded to its own user ID")
		}
		p.GuestUserID = owner.UserID
	}
	return p, nil
}

const maxDeviceIDLength = 255
const maxDisplayNameLength = 512

func checkDeviceParams(deviceID, displayName *string) *matrix.Error {
	if deviceID != nil && (*deviceID == "" || len(*deviceID) > maxDeviceIDLength) {
		return matrix.BadRequest(matrix.CodeInvalidParam, "device_id must be 1-255 bytes")
	}
	if displayName != nil && len(*displayName) > maxDisplayNameLength {
		return matrix.BadRequest(matrix.CodeInvalidParam, "initial_device_display_name is too long")
	}
	return nil
}

// createAccount writes the account (and its login unless inhibited) in one
// transaction that also records the user in the UIA session; a name taken
// meanwhile is M_USER_IN_USE and leaves nothing behind.
func (s *Server) createAccount(ctx context.Context, sess *uia.Session, known bool, localpart, hash string, p registerParams) (api.RegisterResponseObject, error) {
	if err := s.limits.takeRegistration(addressKey(ctx), s.now()); err != nil {
		return nil, err
	}
	generated := localpart == ""
	for attempt := 0; ; attempt++ {
		if generated {
			localpart = generateLocalpart()
		}
		reg := db.Registration{Account: db.Account{UserID: s.userID(localpart), LocalpartLower: localpart,
			PasswordHash: hash, Kind: db.KindUser, ApprovalPending: s.cfg.RequireApprovalForNewAccounts}}
		if p.GuestUserID != "" {
			reg.Account.UserID, reg.UpgradeGuest = p.GuestUserID, true
		}
		var out loginResult
		if !boolValue(p.InhibitLogin) && !reg.Account.ApprovalPending {
			login, res, err := s.newLogin(p.DeviceID, p.InitialDeviceDisplayName, boolValue(p.RefreshToken))
			if err != nil {
				return nil, err
			}
			reg.Login, out = &login, res
		}
		if known || sess.Stored() {
			sess.Data[sessionRegisteredUser] = reg.Account.UserID
			row := s.uia.Row(sess)
			reg.Session = &row
		}
		if sess.Data[uia.DataRegistrationToken] != "" {
			reg.TokenSessionID = sess.ReservationID()
		}
		for _, t := range sessionThreepids(sess) {
			if !s.cfg.ThreepidAllowed(t.Medium, t.Address) {
				return nil, errThreepidNotAllowed
			}
			reg.Threepids = append(reg.Threepids, db.NewThreepid{Medium: t.Medium, Address: t.Address, ValidatedAt: t.ValidatedAt, SessionID: t.Sid})
		}
		err := s.store.Register(ctx, reg)
		if errors.Is(err, db.ErrTokenInvalid) {
			return nil, matrix.Forbidden("The registration token reservation of this session has expired; start again")
		}
		if errors.Is(err, db.ErrThreepidInUse) {
			return nil, matrix.BadRequest(matrix.CodeThreepidInUse, "The specified address is already in use")
		}
		if errors.Is(err, db.ErrUserExists) {
			if generated && attempt < 10 {
				continue
			}
			inUse := matrix.BadRequest(matrix.CodeUserInUse, "User ID already taken.")
			if userID := s.registeredMeanwhile(ctx, sess, inUse); known && userID != "" {
				return s.registered(ctx, userID, p)
			}
			return nil, inUse
		}
		if err != nil {
			return nil, matrix.Internal(err)
		}
		s.log.Info("registered user", "user_id", reg.Account.UserID, "guest_upgrade", reg.UpgradeGuest,
			"awaiting_approval", reg.Account.ApprovalPending)
		if reg.Account.ApprovalPending {
			return nil, matrix.ErrAwaitingApproval
		}
		return s.registerResponse(reg.Account.UserID, p, out), nil
	}
}

// registeredMeanwhile returns the user that a concurrent request of the
// same UIA session registered, when err is the M_USER_IN_USE that this
// request ran into because of it; the account and the session's record of
// it commit together, so a request that sees one sees the other.
func (s *Server) registeredMeanwhile(ctx context.Context, sess *uia.Session, err *matrix.Error) string {
	if sess == nil || err.Code != matrix.CodeUserInUse {
		return ""
	}
	return s.uia.Recorded(ctx, sess, sessionRegisteredUser)
}

// registered answers a repeated final request of a completed session: the
// account exists, so only a new login is issued.
func (s *Server) registered(ctx context.Context, userID string, p registerParams) (api.RegisterResponseObject, error) {
	var out loginResult
	if !boolValue(p.InhibitLogin) {
		login, res, err := s.newLogin(p.DeviceID, p.InitialDeviceDisplayName, boolValue(p.RefreshToken))
		if err != nil {
			return nil, err
		}
		err = s.issueLogin(ctx, userID, login)
		if err != nil {
			return nil, err
		}
		out = res
	}
	return s.registerResponse(userID, p, out), nil
}

func (s *Server) registerResponse(userID string, p registerParams, out loginResult) api.Register200JSONResponse {
	resp := api.Register200JSONResponse{UserId: userID, HomeServer: &s.cfg.ServerName}
	if out.AccessToken != "" {
		resp.AccessToken, resp.DeviceId = &out.AccessToken, &out.DeviceID
		if out.RefreshToken != "" {
			resp.RefreshToken = &out.RefreshToken
		}
		if out.ExpiresInMS != nil {
			ms := int(*out.ExpiresInMS)
			resp.ExpiresInMs = &ms
		}
	}
	return resp
}

// registerGuest is POST /register?kind=guest: no UIA, every body field but
// initial_device_display_name ignored, a numeric localpart and a server
// chosen device.
func (s *Server) registerGuest(ctx context.Context, body *api.RegisterJSONRequestBody) (api.RegisterResponseObject, error) {
	if !s.cfg.AllowGuestAccess {
		return nil, matrix.Forbidden("Guest access is disabled")
	}
	display := body.InitialDeviceDisplayName
	if err := checkDeviceParams(nil, display); err != nil {
		return nil, err
	}
	if err := s.limits.takeRegistration(addressKey(ctx), s.now()); err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 10; attempt++ {
		n, err := s.store.MaxNumericLocalpart(ctx)
		if err != nil {
			return nil, matrix.Internal(err)
		}
		localpart := strconv.FormatInt(n+1, 10)
		login, out, err := s.newLogin(nil, display, false)
		if err != nil {
			return nil, err
		}
		err = s.store.Register(ctx, db.Registration{Account: db.Account{UserID: s.userID(localpart),
			LocalpartLower: localpart, Kind: db.KindGuest}, Login: &login})
		if errors.Is(err, db.ErrUserExists) {
			continue
		}
		if err != nil {
			return nil, matrix.Internal(err)
		}
		return s.registerResponse(s.userID(localpart), registerParams{}, out), nil
	}
	return nil, matrix.Internal(errors.New("could not allocate a guest user ID"))
}

// generateLocalpart returns a random localpart for a registration without
// a username: lower-case letters and digits starting with a letter, so it
// never collides with the numeric IDs reserved for guests.
func generateLocalpart() string {
	return secrets.RandomFrom("abcdefghijklmnopqrstuvwxyz", 1) + secrets.RandomFrom("abcdefghijklmnopqrstuvwxyz0123456789", 11)
}

// CheckUsernameAvailability is GET /_matrix/client/v3/register/available
// (client-server API v1.7): the same username checks as /register; it
// reserves nothing.
func (s *Server) CheckUsernameAvailability(ctx context.Context, req api.CheckUsernameAvailabilityRequestObject) (api.CheckUsernameAvailabilityResponseObject, error) {
	if err := s.limits.usernameAvailability.Take(addressKey(ctx), s.now()); err != nil {
		return nil, err
	}
	if !s.cfg.EnableRegistration {
		return nil, errRegistrationDisabled
	}
	if len(req.Params.Username) > maxUsernameInput {
		return nil, matrix.BadRequest(matrix.CodeInvalidUsername, "Invalid username")
	}
	if err := s.checkUsername(ctx, strings.ToLower(req.Params.Username), false); err != nil {
		return nil, err
	}
	available := true
	return api.CheckUsernameAvailability200JSONResponse{Available: &available}, nil
}

func boolValue(b *bool) bool { return b != nil && *b }
