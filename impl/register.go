package impl

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"registrar/api"
	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/matrix"
	"registrar/impl/secrets"
	"registrar/impl/uia"
)

const registerPath = "/_matrix/client/v3/register"

// errMissingPassword refuses a registration whose flow is done without a
// password (its session is kept for the request that brings one).
var errMissingPassword = matrix.BadRequest(matrix.CodeMissingParam, "Missing params: password")

// registerParams are /register's parameters as kept in the UIA session,
// so that a follow-up request carrying only auth registers with them: the
// password in the stored session (sealed, dropped when the account is
// made), the others sealed into its ID.
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

// keptPassword is the key of the password a registration session keeps.
const keptPassword = "password"

// withoutPassword is what travels in the session ID.
func (p registerParams) withoutPassword() registerParams {
	p.Password = nil
	return p
}

// errSSOOnly refuses /register where accounts sign in only with an
// identity provider (password logins are off): they are made by signing in
// there (/login/sso/redirect with action=register, Matrix v1.18).
var errSSOOnly = matrix.Forbidden("Registration is only available through single sign-on")

// Register is POST /_matrix/client/v3/register (client-server API v1.7,
// "Account registration"). Checks run in Synapse's order: kind, application
// service, registration enabled, username rules, then UIA, then creation.
func (s *Server) Register(ctx context.Context, req api.RegisterRequestObject) (api.RegisterResponseObject, error) {
	body := req.Body
	appService := body.Type != nil && *body.Type == "m.login.application_service"
	if !s.cfg.OAuth.LegacyAPI && !appService {
		return nil, errLegacyAuthOff
	}
	if req.Params.Kind != nil && *req.Params.Kind == api.RegisterParamsKindGuest {
		// A client that logged out may still send its old token: guests
		// ignore it, as Synapse does.
		if err := s.accounts.CheckRegistration(addressKey(ctx)); err != nil {
			return nil, err
		}
		return s.registerGuest(ctx, body)
	}
	who, err := optionalRequester(ctx)
	if err != nil {
		return nil, err
	}
	if appService {
		return s.registerAppService(ctx, body)
	}
	if err := s.accounts.CheckRegistration(addressKey(ctx)); err != nil {
		return nil, err
	}
	if who != nil {
		return nil, matrix.BadRequest(matrix.CodeUnknown, "An access token may only be given to register as an application service")
	}
	if !s.cfg.EnableRegistration {
		return nil, errRegistrationDisabled
	}
	if s.upstream.Any() && !s.passwordLogins() {
		// Accounts here sign in only with an identity provider: one made
		// with a password could never log in.
		return nil, errSSOOnly
	}
	params, err := s.registerParamsOf(ctx, body)
	if err != nil {
		return nil, err
	}
	done, err := s.register(ctx, registration{params: params, auth: body.Auth, source: accounts.SourceRegister})
	if err != nil {
		return nil, err
	}
	if done.AwaitingApproval {
		return nil, matrix.ErrAwaitingApproval
	}
	return s.registerResponse(done.UserID, done.Login), nil
}

// registration is one request of a person registering: /register's, or
// the sign-up page's (which drives the same UIA session, stage by stage,
// as a client would).
type registration struct {
	params registerParams
	auth   *api.AuthData
	source accounts.Source
}

// registered is an account a registration made (or had made, on a
// repeated final request).
type registered struct {
	UserID           string
	Login            *accounts.LoginResult
	AwaitingApproval bool
}

// register applies the registration policy, in Synapse's order: the
// username, then User-Interactive Authentication (the flows the
// configuration requires: token, captcha, terms, email or phone), then
// creation. It returns the account, or a *matrix.Challenge for the next
// stage, or the refusal. Both /register and the sign-up page call it: a
// policy lives here, or in the stages and accounts.Create it calls, once.
func (s *Server) register(ctx context.Context, r registration) (registered, error) {
	params := r.params
	uiaReq := s.uiaRequest(ctx, http.MethodPost, registerPath, r.auth, s.registrationFlows())
	sess, err := s.uia.Load(ctx, uiaReq)
	if err != nil {
		return registered{}, err
	}
	if sess != nil {
		var stored registerParams
		if len(sess.Params) > 0 {
			if err := json.Unmarshal(sess.Params, &stored); err != nil {
				return registered{}, matrix.Internal(err)
			}
		}
		params.fillFrom(stored)
		if params.Password == nil {
			if pw := sess.Kept(keptPassword); pw != "" {
				params.Password = &pw
			}
		}
		if userID := sess.Data[sessionRegisteredUser]; userID != "" {
			// A repeated final request: same account, a fresh login.
			return s.registered(ctx, userID, params)
		}
	}
	localpart := ""
	if params.Username != nil {
		localpart = strings.ToLower(*params.Username)
		if err := s.accounts.CheckUsername(ctx, localpart, params.GuestUserID != ""); err != nil {
			if userID := s.registeredMeanwhile(ctx, sess, err); userID != "" {
				return s.registered(ctx, userID, params)
			}
			return registered{}, err
		}
	}
	uiaReq.Params = mustJSON(params.withoutPassword())
	if params.Password != nil {
		uiaReq.Kept = map[string]string{keptPassword: *params.Password}
	}
	sess, err = s.uia.Authenticate(ctx, sess, uiaReq)
	if err != nil {
		return registered{}, err
	}
	// A session the client knows of records the account, so that a retry
	// returns it; one started and finished by this request need not.
	known := r.auth != nil && r.auth.Session != nil
	if params.Password == nil {
		if known {
			// Done stages stay done: the client may send the password next.
			if err := s.uia.Keep(ctx, sess); err != nil {
				return registered{}, err
			}
		}
		return registered{}, errMissingPassword
	}
	return s.createAccount(ctx, sess, known, localpart, params, r.source)
}

// registerParamsOf checks the request's own parameters (Synapse's order:
// username length, password length and policy).
func (s *Server) registerParamsOf(ctx context.Context, body *api.RegisterJSONRequestBody) (registerParams, error) {
	p := registerParams{DeviceID: body.DeviceId, InitialDeviceDisplayName: body.InitialDeviceDisplayName,
		InhibitLogin: body.InhibitLogin, RefreshToken: body.RefreshToken}
	if body.Username != nil {
		if len(*body.Username) > accounts.MaxUsernameInput {
			return p, matrix.BadRequest(matrix.CodeInvalidParam, "Invalid username")
		}
		p.Username = body.Username
	}
	if body.Password != nil {
		if err := s.accounts.CheckPasswordPolicy(*body.Password); err != nil {
			return p, err
		}
		p.Password = body.Password
	} else {
		// Synapse drops the display name of a request without a password
		// (a workaround for clients resending it on every stage).
		p.InitialDeviceDisplayName = nil
	}
	if err := accounts.CheckDeviceParams(p.DeviceID, p.InitialDeviceDisplayName); err != nil {
		return p, err
	}
	if body.GuestAccessToken != nil {
		owner, err := s.store.LookupAccessToken(ctx, secrets.HashToken(*body.GuestAccessToken))
		if err != nil || owner.Kind != db.KindGuest || owner.Deactivated {
			return p, matrix.Forbidden("Invalid guest access token")
		}
		lp, _ := s.accounts.Localpart(owner.UserID)
		if p.Username == nil || strings.ToLower(*p.Username) != lp {
			return p, matrix.Forbidden("A guest account can only be upgraded to its own user ID")
		}
		p.GuestUserID = owner.UserID
	}
	return p, nil
}

// loginRequest is the login a registration asks for, nil when inhibited.
func (p registerParams) loginRequest() *accounts.LoginRequest {
	if boolValue(p.InhibitLogin) {
		return nil
	}
	return &accounts.LoginRequest{DeviceID: p.DeviceID, DisplayName: p.InitialDeviceDisplayName, Refresh: boolValue(p.RefreshToken)}
}

// createAccount makes the account a completed registration session
// authorised, with what its stages proved (addresses, the token use, the
// terms accepted).
func (s *Server) createAccount(ctx context.Context, sess *uia.Session, known bool, localpart string, p registerParams,
	source accounts.Source) (registered, error) {
	n := accounts.NewAccount{Source: source, Localpart: localpart, Password: p.Password,
		UpgradeGuest: p.GuestUserID, Login: p.loginRequest(), ClientKey: addressKey(ctx)}
	if known || sess.Stored() {
		n.Record = func(userID string) *db.UIASession {
			sess.Data[sessionRegisteredUser] = userID
			sess.Forget(keptPassword)
			row := s.uia.Row(sess)
			return &row
		}
	}
	if sess.Data[uia.DataRegistrationToken] != "" {
		n.TokenReservation = sess.ReservationID()
	}
	if accepted := sess.Result(uia.TypeTerms); accepted != "" {
		n.ConsentVersion = accepted
	}
	for _, t := range sessionThreepids(sess) {
		n.Threepids = append(n.Threepids, db.NewThreepid{Medium: t.Medium, Address: t.Address, ValidatedAt: t.ValidatedAt, SessionID: t.Sid})
	}
	created, err := s.accounts.Create(ctx, n)
	if merr, ok := matrix.As(err); ok && merr.Code == matrix.CodeUserInUse && known {
		if userID := s.registeredMeanwhile(ctx, sess, merr); userID != "" {
			return s.registered(ctx, userID, p)
		}
	}
	if err != nil {
		return registered{}, err
	}
	return registered{UserID: created.UserID, Login: created.Login, AwaitingApproval: created.AwaitingApproval}, nil
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
// account exists, so only a new login is issued (none while it awaits
// approval).
func (s *Server) registered(ctx context.Context, userID string, p registerParams) (registered, error) {
	if s.cfg.RequireApprovalForNewAccounts {
		if acct, err := s.store.AccountByUserID(ctx, userID); err != nil || acct.ApprovalPending {
			return registered{UserID: userID, AwaitingApproval: true}, nil
		}
	}
	out := registered{UserID: userID}
	if req := p.loginRequest(); req != nil {
		res, err := s.accounts.Login(ctx, userID, "", *req)
		if err != nil {
			return registered{}, err
		}
		s.noteLogin(ctx, userID, res.DeviceID)
		out.Login = &res
	}
	return out, nil
}

func (s *Server) registerResponse(userID string, out *accounts.LoginResult) api.Register200JSONResponse {
	resp := api.Register200JSONResponse{UserId: userID, HomeServer: &s.cfg.ServerName}
	if out != nil {
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
	created, err := s.accounts.Create(ctx, accounts.NewAccount{Source: accounts.SourceGuest, ClientKey: addressKey(ctx),
		Login: &accounts.LoginRequest{DisplayName: body.InitialDeviceDisplayName}})
	if err != nil {
		return nil, err
	}
	return s.registerResponse(created.UserID, created.Login), nil
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
	if len(req.Params.Username) > accounts.MaxUsernameInput {
		return nil, matrix.BadRequest(matrix.CodeInvalidUsername, "Invalid username")
	}
	if err := s.accounts.CheckUsername(ctx, strings.ToLower(req.Params.Username), false); err != nil {
		return nil, err
	}
	return usernameAvailable, nil
}

// usernameAvailable is GET /register/available's one 200 answer,
// encoded once (the generated answer encodes it by reflection into a
// buffer on every request of this unauthenticated, polled endpoint).
var usernameAvailable = func() fixedJSONAnswer {
	available := true
	return fixedJSONAnswer(append(mustJSON(api.CheckUsernameAvailability200JSONResponse{Available: &available}), '\n'))
}()

// fixedJSONAnswer is a 200 JSON answer whose body never changes.
type fixedJSONAnswer []byte

// jsonContentType is the Content-Type of JSON answers, shared by them
// (a header value is replaced, never changed in place).
var jsonContentType = []string{"application/json"}

// VisitCheckUsernameAvailabilityResponse writes the answer.
func (a fixedJSONAnswer) VisitCheckUsernameAvailabilityResponse(w http.ResponseWriter) error {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(a)
	return err
}

var errRegistrationDisabled = matrix.Forbidden("Registration has been disabled")

func boolValue(b *bool) bool { return b != nil && *b }
