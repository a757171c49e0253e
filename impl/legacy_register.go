package impl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"registrar/api"
	"registrar/impl/matrix"
	"registrar/impl/uia"
)

// The registration APIs before r0 (spec/legacy/, served with
// legacy_client_apis): v1's stage-by-stage protocol and v2_alpha's
// User-Interactive Authentication. Both go through POST /register's own
// handler, so the username rules, flows, rate limits, registration
// tokens and account creation are v3's; an account is one account
// whichever API made it, and a UIA session is v3's session.

// v1 registration stage types beside v3's stages.
const (
	// v1TypePassword is v1's last stage: the username and password, which
	// register the account once the other stages of a flow are done.
	v1TypePassword = "m.login.password"
)

// GetRegistrationInfo is GET /_matrix/client/api/v1/register (the v1
// registration API): the flows /register offers, in v1's shape. A v1
// flow is a v3 flow without its dummy stage, ending with
// m.login.password, which submits the username and password.
func (s *Server) GetRegistrationInfo(ctx context.Context, _ api.GetRegistrationInfoRequestObject) (api.GetRegistrationInfoResponseObject, error) {
	if !s.cfg.EnableRegistration {
		return nil, errRegistrationDisabled
	}
	flows := []api.RegistrationInfo{}
	for _, stages := range s.v1Flows() {
		info := api.RegistrationInfo{Type: &stages[0]}
		if len(stages) > 1 {
			info.Stages = &stages
		}
		flows = append(flows, info)
	}
	return api.GetRegistrationInfo200JSONResponse{Flows: &flows}, nil
}

// v1Flows are the registration flows as v1 lists them.
func (s *Server) v1Flows() [][]string {
	var out [][]string
	for _, f := range s.registrationFlows() {
		stages := slices.DeleteFunc(slices.Clone(f), func(t string) bool { return t == uia.TypeDummy })
		stages = append(stages, v1TypePassword)
		if !slices.ContainsFunc(out, func(o []string) bool { return slices.Equal(o, stages) }) {
			out = append(out, stages)
		}
	}
	return out
}

// SubmitRegistration is POST /_matrix/client/api/v1/register (the v1
// registration API): one stage of a flow, by type, with the session of
// the earlier stages. A stage other than m.login.password answers the
// session and the next stage; m.login.password (user, password) ends the
// flow and answers the account. Stage failures are Matrix errors.
func (s *Server) SubmitRegistration(ctx context.Context, req api.SubmitRegistrationRequestObject) (api.SubmitRegistrationResponseObject, error) {
	b := req.Body
	typ := deref(b.Type)
	keys := b.AdditionalProperties
	if typ == "" {
		return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing JSON keys: type")
	}
	if typ == v1TypePassword {
		return s.v1Register(ctx, b.Session, keys)
	}
	session := b.Session
	if session == nil {
		// Start the session first, so that it is kept even when this stage
		// completes the flow (the password comes later).
		_, challenge, err := s.v3Register(ctx, api.RegisterRequestObject{Body: &api.RegisterJSONRequestBody{}})
		if challenge == nil {
			return nil, orInternal(err, "a v1 stage registered an account")
		}
		session = challenge.Session
	}
	auth, err := v1StageAuth(typ, session, keys)
	if err != nil {
		return nil, err
	}
	_, challenge, err := s.v3Register(ctx, api.RegisterRequestObject{Body: &api.RegisterJSONRequestBody{Auth: auth}})
	switch {
	case challenge != nil:
		if challenge.Errcode != nil {
			return nil, &matrix.Error{Status: http.StatusUnauthorized, Code: *challenge.Errcode, Message: deref(challenge.Error)}
		}
		return s.v1Next(session, derefSlice(challenge.Completed)), nil
	case errors.Is(err, errMissingPassword):
		// The flow is complete; the password stage registers.
		return api.SubmitRegistration200JSONResponse{Session: session, Next: ptrTo(v1TypePassword)}, nil
	default:
		return nil, orInternal(err, "a v1 stage registered an account")
	}
}

// v1Register is v1's m.login.password stage: the account, registered
// with v3's policy, the session's other stages done.
func (s *Server) v1Register(ctx context.Context, session *string, keys map[string]any) (api.SubmitRegistrationResponseObject, error) {
	password, ok := keys["password"].(string)
	if !ok {
		return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing JSON keys: password")
	}
	auth := &api.AuthData{Session: session}
	if slices.ContainsFunc(s.registrationFlows(), func(f []string) bool { return slices.Contains(f, uia.TypeDummy) }) {
		// The dummy stage ends a flow that needs no verification; with no
		// such flow, the session's own stages must have completed one.
		auth.Type = ptrTo(uia.TypeDummy)
	}
	body := &api.RegisterJSONRequestBody{Password: &password, Auth: auth}
	if user, ok := keys["user"].(string); ok && user != "" {
		body.Username = &user
	}
	done, challenge, err := s.v3Register(ctx, api.RegisterRequestObject{Body: body})
	switch {
	case challenge != nil:
		// Stages of the flow remain.
		if session == nil || challenge.Errcode != nil {
			return nil, matrix.BadRequest(matrix.CodeUnknown, "Bad login type: this server's registration flows need other stages first (GET /register lists them)")
		}
		return s.v1Next(session, derefSlice(challenge.Completed)), nil
	case err != nil:
		return nil, err
	}
	return api.SubmitRegistration200JSONResponse{UserId: &done.UserId, AccessToken: done.AccessToken}, nil
}

// v3Register runs POST /register's handler: the account made, or the
// challenge of the stages left, or the refusal.
func (s *Server) v3Register(ctx context.Context, req api.RegisterRequestObject) (*api.Register200JSONResponse, *api.AuthResponse, error) {
	resp, err := s.Register(ctx, req)
	var challenge *matrix.Challenge
	if errors.As(err, &challenge) {
		c, _ := challenge.Body.(api.AuthResponse)
		return nil, &c, nil
	}
	if err != nil {
		return nil, nil, err
	}
	done, ok := resp.(api.Register200JSONResponse)
	if !ok {
		return nil, nil, matrix.Internal(fmt.Errorf("/register answered %T", resp))
	}
	return &done, nil, nil
}

// orInternal is err, or, when there is none, an internal error: what
// should not have happened did.
func orInternal(err error, what string) error {
	if err == nil {
		return matrix.Internal(errors.New(what))
	}
	return err
}

// v1Next answers a stage done: the session and the next stage of the
// first v1 flow that the completed stages begin.
func (s *Server) v1Next(session *string, completed []string) api.SubmitRegistration200JSONResponse {
	next := v1TypePassword
	for _, f := range s.v1Flows() {
		rest := f[:len(f)-1]
		if len(completed) < len(rest) && slices.Equal(rest[:len(completed)], completed) {
			next = rest[len(completed)]
			break
		}
	}
	return api.SubmitRegistration200JSONResponse{Session: session, Next: &next}
}

// v1StageAuth is the v3 auth dict of a v1 stage submission: v1 named the
// email stage's credentials threepidCreds (a list, camelCase) and sent
// the recaptcha challenge beside the response.
func v1StageAuth(typ string, session *string, keys map[string]any) (*api.AuthData, error) {
	auth := &api.AuthData{Type: &typ, Session: session}
	str := func(k string) *string {
		if v, ok := keys[k].(string); ok {
			return &v
		}
		return nil
	}
	auth.Response, auth.Token = str("response"), str("token")
	if creds, ok := keys["threepidCreds"].([]any); ok && len(creds) > 0 {
		c, _ := creds[0].(map[string]any)
		sid, _ := c["sid"].(string)
		secret, _ := c["clientSecret"].(string)
		auth.ThreepidCreds = &api.ThreepidCredentials{Sid: &sid, ClientSecret: &secret}
	} else if c, ok := keys["threepid_creds"].(map[string]any); ok {
		sid, _ := c["sid"].(string)
		secret, _ := c["client_secret"].(string)
		auth.ThreepidCreds = &api.ThreepidCredentials{Sid: &sid, ClientSecret: &secret}
	}
	switch typ {
	case uia.TypeRecaptcha:
		if auth.Response == nil {
			return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing JSON keys: response")
		}
	case uia.TypeRegistrationToken:
		if auth.Token == nil {
			return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing JSON keys: token")
		}
	case uia.TypeEmail, uia.TypeMsisdn:
		if auth.ThreepidCreds == nil || deref(auth.ThreepidCreds.Sid) == "" || deref(auth.ThreepidCreds.ClientSecret) == "" {
			return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing JSON keys: threepidCreds")
		}
	case uia.TypeTerms:
	default:
		return nil, matrix.BadRequest(matrix.CodeUnknown, "Bad login type: "+typ)
	}
	return auth, nil
}

// RegisterV2Alpha is POST /_matrix/client/api/v2_alpha/register (the
// v2_alpha registration API): /register with User-Interactive
// Authentication, kind user or guest. bind_email is accepted: the email
// validated during registration is bound to the account locally, as it
// is on v3 (there is no identity server). The answer has a refresh token
// when refresh tokens are enabled (refreshable_access_token_lifetime).
func (s *Server) RegisterV2Alpha(ctx context.Context, req api.RegisterV2AlphaRequestObject) (api.RegisterV2AlphaResponseObject, error) {
	b := req.Body
	v3 := api.RegisterRequestObject{Body: &api.RegisterJSONRequestBody{Username: b.Username, Password: b.Password, Auth: b.Auth}}
	if req.Params.Kind != nil && *req.Params.Kind == api.RegisterV2AlphaParamsKindGuest {
		v3.Params.Kind = ptrTo(api.RegisterParamsKindGuest)
	} else if b.Password == nil && (b.Auth == nil || b.Auth.Session == nil) {
		return nil, errMissingPassword
	}
	if s.cfg.RefreshableAccessTokenLifetime != nil {
		v3.Body.RefreshToken = ptrTo(true)
	}
	resp, err := s.Register(ctx, v3) // a challenge passes through: v2_alpha used UIA
	if err != nil {
		return nil, err
	}
	done, ok := resp.(api.Register200JSONResponse)
	if !ok {
		return nil, matrix.Internal(fmt.Errorf("/register answered %T", resp))
	}
	return api.RegisterV2Alpha200JSONResponse{UserId: &done.UserId, AccessToken: done.AccessToken, HomeServer: done.HomeServer,
		RefreshToken: done.RefreshToken}, nil
}
