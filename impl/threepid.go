package impl

import (
	"context"
	"encoding/json"
	"net/http"

	"registrar/api"
	"registrar/db"
	"registrar/impl/canonical"
	"registrar/impl/matrix"
	"registrar/impl/threepid"
	"registrar/impl/uia"
)

func emailRequest(ctx context.Context, b api.EmailValidationRequest, purpose string) threepid.Request {
	return threepid.Request{Medium: db.MediumEmail, Address: canonical.Email(b.Email), ClientSecret: b.ClientSecret,
		SendAttempt: b.SendAttempt, NextLink: b.NextLink, Purpose: purpose, ClientKey: addressKey(ctx)}
}

func msisdnRequest(ctx context.Context, b api.MsisdnValidationRequest, purpose string) threepid.Request {
	return threepid.Request{Medium: db.MediumMsisdn, Address: canonical.Msisdn(b.Country, b.PhoneNumber),
		ClientSecret: b.ClientSecret, SendAttempt: b.SendAttempt, NextLink: b.NextLink, Purpose: purpose,
		Country: b.Country, Phone: b.PhoneNumber, ClientKey: addressKey(ctx)}
}

// requestToken runs a requestToken call and answers it.
func (s *Server) requestToken(ctx context.Context, r threepid.Request) (api.RequestTokenResponse, error) {
	resp, err := s.threepids.RequestToken(ctx, r)
	if err != nil {
		return api.RequestTokenResponse{}, err
	}
	return api.RequestTokenResponse{Sid: resp.Sid, SubmitUrl: resp.SubmitURL}, nil
}

// RequestTokenToRegisterEmail is POST /_matrix/client/v3/register/email/requestToken.
func (s *Server) RequestTokenToRegisterEmail(ctx context.Context, req api.RequestTokenToRegisterEmailRequestObject) (api.RequestTokenToRegisterEmailResponseObject, error) {
	resp, err := s.requestToken(ctx, emailRequest(ctx, *req.Body, threepid.PurposeRegistration))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenToRegisterEmail200JSONResponse(resp), nil
}

// RequestTokenToRegisterMSISDN is POST /_matrix/client/v3/register/msisdn/requestToken.
func (s *Server) RequestTokenToRegisterMSISDN(ctx context.Context, req api.RequestTokenToRegisterMSISDNRequestObject) (api.RequestTokenToRegisterMSISDNResponseObject, error) {
	resp, err := s.requestToken(ctx, msisdnRequest(ctx, *req.Body, threepid.PurposeRegistration))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenToRegisterMSISDN200JSONResponse(resp), nil
}

// RequestTokenToResetPasswordEmail is POST /_matrix/client/v3/account/password/email/requestToken.
func (s *Server) RequestTokenToResetPasswordEmail(ctx context.Context, req api.RequestTokenToResetPasswordEmailRequestObject) (api.RequestTokenToResetPasswordEmailResponseObject, error) {
	resp, err := s.requestToken(ctx, emailRequest(ctx, *req.Body, threepid.PurposePasswordReset))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenToResetPasswordEmail200JSONResponse(resp), nil
}

// RequestTokenToResetPasswordMSISDN is POST /_matrix/client/v3/account/password/msisdn/requestToken.
func (s *Server) RequestTokenToResetPasswordMSISDN(ctx context.Context, req api.RequestTokenToResetPasswordMSISDNRequestObject) (api.RequestTokenToResetPasswordMSISDNResponseObject, error) {
	resp, err := s.requestToken(ctx, msisdnRequest(ctx, *req.Body, threepid.PurposePasswordReset))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenToResetPasswordMSISDN200JSONResponse(resp), nil
}

// RequestTokenTo3PIDEmail is POST /_matrix/client/v3/account/3pid/email/requestToken.
func (s *Server) RequestTokenTo3PIDEmail(ctx context.Context, req api.RequestTokenTo3PIDEmailRequestObject) (api.RequestTokenTo3PIDEmailResponseObject, error) {
	resp, err := s.requestToken(ctx, emailRequest(ctx, *req.Body, threepid.PurposeAddThreepid))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenTo3PIDEmail200JSONResponse(resp), nil
}

// RequestTokenTo3PIDMSISDN is POST /_matrix/client/v3/account/3pid/msisdn/requestToken.
func (s *Server) RequestTokenTo3PIDMSISDN(ctx context.Context, req api.RequestTokenTo3PIDMSISDNRequestObject) (api.RequestTokenTo3PIDMSISDNResponseObject, error) {
	resp, err := s.requestToken(ctx, msisdnRequest(ctx, *req.Body, threepid.PurposeAddThreepid))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenTo3PIDMSISDN200JSONResponse(resp), nil
}

// threepidValidator is the 3PID stages' view of validation: a validated
// session's address, as the stage's result.
type threepidValidator struct{ threepids *threepid.Service }

// ValidatedThreepid implements uia.ThreepidValidator.
func (v threepidValidator) ValidatedThreepid(ctx context.Context, medium, sid, clientSecret string) (string, bool, error) {
	val, ok, err := v.threepids.Validated(ctx, medium, sid, clientSecret)
	if err != nil || !ok {
		return "", false, err
	}
	return string(mustJSON(val)), true, nil
}

// sessionThreepids returns the addresses the session's 3PID stages proved.
func sessionThreepids(sess *uia.Session) []threepid.Validated {
	var out []threepid.Validated
	for _, t := range []string{uia.TypeEmail, uia.TypeMsisdn} {
		if r := sess.Result(t); r != "" {
			var v threepid.Validated
			if json.Unmarshal([]byte(r), &v) == nil {
				out = append(out, v)
			}
		}
	}
	return out
}

// GetAccount3PIDs is GET /_matrix/client/v3/account/3pid.
func (s *Server) GetAccount3PIDs(ctx context.Context, _ api.GetAccount3PIDsRequestObject) (api.GetAccount3PIDsResponseObject, error) {
	who := requesterFrom(ctx)
	list, err := s.store.Threepids(ctx, who.UserID)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	out := make([]api.ThirdPartyIdentifier, 0, len(list))
	for _, t := range list {
		out = append(out, api.ThirdPartyIdentifier{Medium: api.ThirdPartyIdentifierMedium(t.Medium), Address: t.Address,
			ValidatedAt: t.ValidatedAt, AddedAt: t.AddedAt})
	}
	return api.GetAccount3PIDs200JSONResponse{Threepids: out}, nil
}

const add3PIDPath = "/_matrix/client/v3/account/3pid/add"

// Add3PID is POST /_matrix/client/v3/account/3pid/add: after re-authentication,
// binds the validated address to the account.
func (s *Server) Add3PID(ctx context.Context, req api.Add3PIDRequestObject) (api.Add3PIDResponseObject, error) {
	who := requesterFrom(ctx)
	if err := mayChangeAccount(who); err != nil {
		return nil, err
	}
	if !s.cfg.Enable3PIDChanges {
		return nil, matrix.BadRequest(matrix.CodeForbidden, "3PID changes are disabled on this server")
	}
	err := s.protect(ctx, s.uiaRequest(ctx, http.MethodPost, add3PIDPath, req.Body.Auth, s.reauthFlows(ctx)), func(*uia.Session) error {
		return s.threepids.Bind(ctx, who.UserID, req.Body.Sid, req.Body.ClientSecret)
	})
	if err != nil {
		return nil, err
	}
	return api.Add3PID200JSONResponse{}, nil
}

// Post3PIDs is the deprecated POST /_matrix/client/v3/account/3pid
// (r0.6): adds the address a session this server validated proved, with
// Synapse's semantics (its credentials as three_pid_creds, threePidCreds
// or threepid_creds; bind and id_server ignored). It predates UIA.
func (s *Server) Post3PIDs(ctx context.Context, req api.Post3PIDsRequestObject) (api.Post3PIDsResponseObject, error) {
	who := requesterFrom(ctx)
	if err := mayChangeAccount(who); err != nil {
		return nil, err
	}
	if !s.cfg.Enable3PIDChanges {
		return nil, matrix.BadRequest(matrix.CodeForbidden, "3PID changes are disabled on this server")
	}
	creds := req.Body.ThreePidCreds
	if creds == nil {
		creds = req.Body.ThreePidCredsCamelCase
	}
	if creds == nil {
		creds = req.Body.ThreepidCreds
	}
	if creds == nil || creds.Sid == nil || creds.ClientSecret == nil {
		return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing param three_pid_creds (sid and client_secret)")
	}
	if err := s.threepids.Bind(ctx, who.UserID, *creds.Sid, *creds.ClientSecret); err != nil {
		return nil, err
	}
	return api.Post3PIDs200JSONResponse{}, nil
}

// Delete3pidFromAccount is POST /_matrix/client/v3/account/3pid/delete.
// registrar binds nothing on identity servers, so there is nothing to
// unbind: the result is success.
func (s *Server) Delete3pidFromAccount(ctx context.Context, req api.Delete3pidFromAccountRequestObject) (api.Delete3pidFromAccountResponseObject, error) {
	who := requesterFrom(ctx)
	if err := mayChangeAccount(who); err != nil {
		return nil, err
	}
	if !s.cfg.Enable3PIDChanges {
		return nil, matrix.BadRequest(matrix.CodeForbidden, "3PID changes are disabled on this server")
	}
	address := req.Body.Address
	if string(req.Body.Medium) == db.MediumEmail {
		if c := canonical.Email(address); c != "" {
			address = c
		}
	}
	if err := s.store.DeleteThreepid(ctx, who.UserID, string(req.Body.Medium), address); err != nil {
		return nil, matrix.Internal(err)
	}
	return api.Delete3pidFromAccount200JSONResponse{IdServerUnbindResult: "success"}, nil
}
