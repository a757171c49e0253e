package impl

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/secrets"
	"registrar/impl/uia"
)

// clientSecretRE is the client_secret grammar (identity service API).
var clientSecretRE = regexp.MustCompile(`^[0-9a-zA-Z.=_-]{1,255}$`)

// threepidSessionLifetime is how long a validation session lives.
const threepidSessionLifetime = 24 * time.Hour

const (
	emailSubmitPath  = "_matrix/client/unstable/registration/email/submit_token"
	msisdnSubmitPath = "_matrix/client/unstable/add_threepid/msisdn/submit_token"
)

var errThreepidNotAllowed = &matrix.Error{Status: http.StatusForbidden, Code: matrix.CodeThreepidDenied, Message: "Third-party identifier is not allowed"}

// canonicalEmail returns the address in canonical form (lower-cased) or ""
// when it is not a bare address.
func canonicalEmail(s string) string {
	s = strings.TrimSpace(s)
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || len(s) < 3 || len(s) > 500 {
		return ""
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return ""
	}
	return strings.ToLower(local) + "@" + strings.ToLower(domain)
}

// canonicalMsisdn turns a number dialled from country into E.164 digits
// without the plus, or "".
func canonicalMsisdn(country, phone string) string {
	n, err := phonenumbers.Parse(phone, strings.ToUpper(country))
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return ""
	}
	return strings.TrimPrefix(phonenumbers.Format(n, phonenumbers.E164), "+")
}

// tokenRequest is one requestToken call.
type tokenRequest struct {
	medium, address, clientSecret string
	sendAttempt                   int
	nextLink                      *string
	purpose                       string
	// country and phone are the number as given, for a delegate.
	country, phone string
}

// requestToken is the common core of every requestToken endpoint: checks,
// send limits, address ownership, send_attempt idempotence, then the
// message, sent after the session is committed.
func (s *Server) requestToken(ctx context.Context, r tokenRequest) (api.RequestTokenResponse, error) {
	var none api.RequestTokenResponse
	switch {
	case r.medium == db.MediumEmail && s.mailer == nil:
		return none, matrix.BadRequest(matrix.CodeThreepidMediumUnknown, "Email-based verification is not enabled on this server")
	case r.medium == db.MediumMsisdn && !s.cfg.MsisdnEnabled():
		return none, matrix.BadRequest(matrix.CodeThreepidMediumUnknown, "Phone number verification is not enabled on this server")
	case r.medium == db.MediumMsisdn && r.purpose == purposeRegistration && s.cfg.DisableMsisdnRegistration:
		return none, matrix.BadRequest(matrix.CodeThreepidMediumUnknown, "Phone number registration is disabled on this server")
	case r.purpose == purposeAddThreepid && !s.cfg.Enable3PIDChanges:
		return none, matrix.BadRequest(matrix.CodeForbidden, "3PID changes are disabled on this server")
	}
	if !clientSecretRE.MatchString(r.clientSecret) {
		return none, matrix.BadRequest(matrix.CodeInvalidParam, "Invalid client_secret")
	}
	if r.address == "" {
		return none, matrix.BadRequest(matrix.CodeInvalidParam, map[string]string{db.MediumEmail: "Invalid email address",
			db.MediumMsisdn: "Invalid phone number"}[r.medium])
	}
	if err := s.checkNextLink(r.nextLink); err != nil {
		return none, err
	}
	now := s.now()
	if err := s.limits.threepidValidation.Take(r.medium+" "+addressKey(ctx), now); err != nil {
		return none, err
	}
	if err := s.limits.threepidValidation.Take(r.medium+" "+r.address, now); err != nil {
		return none, err
	}
	if !s.cfg.ThreepidAllowed(r.medium, r.address) {
		return none, errThreepidNotAllowed
	}
	_, err := s.store.ThreepidOwner(ctx, r.medium, r.address)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return none, matrix.Internal(err)
	}
	bound := err == nil
	switch {
	case r.purpose == purposePasswordReset && !bound:
		if s.cfg.RequestTokenInhibit3PIDErrors {
			return s.fakeSid(ctx, r)
		}
		return none, matrix.BadRequest(matrix.CodeThreepidNotFound, "Third-party identifier not found")
	case r.purpose != purposePasswordReset && bound:
		if s.cfg.RequestTokenInhibit3PIDErrors {
			if r.medium == db.MediumEmail && r.purpose == purposeRegistration {
				// Tell the address's owner instead of the requester.
				if err := s.mailer.send(ctx, r.address, purposeAlreadyInUse, messageData{Address: r.address}); err != nil {
					s.log.Warn("could not send email", "purpose", purposeAlreadyInUse, "error", err)
				}
			}
			return s.fakeSid(ctx, r)
		}
		return none, matrix.BadRequest(matrix.CodeThreepidInUse, "The specified address is already in use")
	}

	if r.medium == db.MediumMsisdn && s.delegate != nil {
		sid, err := s.delegate.requestToken(ctx, r)
		if err != nil {
			return none, &matrix.Error{Status: http.StatusInternalServerError, Code: matrix.CodeUnknown, Message: "could not send SMS", Internal: err}
		}
		submit := s.cfg.PublicBaseURL + msisdnSubmitPath
		return api.RequestTokenResponse{Sid: sid, SubmitUrl: &submit}, nil
	}
	token := secrets.RandomString(32)
	if r.medium == db.MediumMsisdn {
		token = secrets.RandomFrom("0123456789", 6)
	}
	next := db.ThreepidSession{Sid: secrets.RandomString(16), ClientSecret: r.clientSecret, Medium: r.medium, Address: r.address,
		Purpose: r.purpose, SendAttempt: int64(r.sendAttempt), TokenHash: secrets.HashToken(token),
		TokenExpiresAt: now.Add(s.validationTokenLifetime()).UnixMilli(), ExpiresAt: now.Add(threepidSessionLifetime).UnixMilli()}
	if r.nextLink != nil {
		next.NextLink = *r.nextLink
	}
	sess, send, err := s.store.StartThreepidValidation(ctx, next)
	if err != nil {
		return none, matrix.Internal(err)
	}
	resp := api.RequestTokenResponse{Sid: sess.Sid}
	if r.medium == db.MediumMsisdn {
		submit := s.cfg.PublicBaseURL + msisdnSubmitPath
		resp.SubmitUrl = &submit
	}
	if !send {
		return resp, nil
	}
	if r.medium == db.MediumEmail {
		link := s.cfg.PublicBaseURL + emailSubmitPath + "?" + url.Values{"sid": {sess.Sid},
			"client_secret": {r.clientSecret}, "token": {token}}.Encode()
		if err := s.mailer.send(ctx, r.address, r.purpose, messageData{Address: r.address, Link: link, Token: token}); err != nil {
			return none, &matrix.Error{Status: http.StatusInternalServerError, Code: matrix.CodeUnknown, Message: "could not send email", Internal: err}
		}
	} else {
		text := "Your " + s.appName() + " validation code for " + s.cfg.ServerName + " is " + token
		if err := s.sms.send(ctx, r.address, text); err != nil {
			return none, &matrix.Error{Status: http.StatusInternalServerError, Code: matrix.CodeUnknown, Message: "could not send SMS", Internal: err}
		}
	}
	s.log.Info("validation token sent", "medium", r.medium, "purpose", r.purpose, "sid", sess.Sid)
	return resp, nil
}

func (s *Server) appName() string {
	if s.cfg.Email != nil {
		return s.cfg.Email.AppName
	}
	return "Matrix"
}

func (s *Server) validationTokenLifetime() time.Duration {
	if s.cfg.Email != nil {
		return s.cfg.Email.ValidationTokenLifetime.Duration
	}
	return time.Hour
}

// fakeSid answers like a successful request after a random delay, so that
// request_token_inhibit_3pid_errors hides which addresses have accounts.
func (s *Server) fakeSid(ctx context.Context, r tokenRequest) (api.RequestTokenResponse, error) {
	n, _ := rand.Int(rand.Reader, big.NewInt(900))
	select {
	case <-time.After(time.Duration(100+n.Int64()) * time.Millisecond):
	case <-ctx.Done():
		return api.RequestTokenResponse{}, ctx.Err()
	}
	resp := api.RequestTokenResponse{Sid: secrets.RandomString(16)}
	if r.medium == db.MediumMsisdn {
		submit := s.cfg.PublicBaseURL + msisdnSubmitPath
		resp.SubmitUrl = &submit
	}
	return resp, nil
}

// checkNextLink refuses non-http(s) links and, with
// next_link_domain_whitelist, other domains.
func (s *Server) checkNextLink(link *string) error {
	if link == nil || *link == "" {
		return nil
	}
	u, err := url.Parse(*link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return matrix.BadRequest(matrix.CodeInvalidParam, "next_link uses an unsupported protocol")
	}
	if s.cfg.NextLinkDomainWhitelist != nil {
		for _, d := range *s.cfg.NextLinkDomainWhitelist {
			if strings.EqualFold(d, u.Hostname()) {
				return nil
			}
		}
		return matrix.BadRequest(matrix.CodeInvalidParam, "next_link domain is not in the whitelist")
	}
	return nil
}

func emailRequest(b api.EmailValidationRequest, purpose string) tokenRequest {
	return tokenRequest{medium: db.MediumEmail, address: canonicalEmail(b.Email), clientSecret: b.ClientSecret,
		sendAttempt: b.SendAttempt, nextLink: b.NextLink, purpose: purpose}
}

func msisdnRequest(b api.MsisdnValidationRequest, purpose string) tokenRequest {
	return tokenRequest{medium: db.MediumMsisdn, address: canonicalMsisdn(b.Country, b.PhoneNumber), clientSecret: b.ClientSecret,
		sendAttempt: b.SendAttempt, nextLink: b.NextLink, purpose: purpose, country: b.Country, phone: b.PhoneNumber}
}

// RequestTokenToRegisterEmail is POST /_matrix/client/v3/register/email/requestToken.
func (s *Server) RequestTokenToRegisterEmail(ctx context.Context, req api.RequestTokenToRegisterEmailRequestObject) (api.RequestTokenToRegisterEmailResponseObject, error) {
	resp, err := s.requestToken(ctx, emailRequest(*req.Body, purposeRegistration))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenToRegisterEmail200JSONResponse(resp), nil
}

// RequestTokenToRegisterMSISDN is POST /_matrix/client/v3/register/msisdn/requestToken.
func (s *Server) RequestTokenToRegisterMSISDN(ctx context.Context, req api.RequestTokenToRegisterMSISDNRequestObject) (api.RequestTokenToRegisterMSISDNResponseObject, error) {
	resp, err := s.requestToken(ctx, msisdnRequest(*req.Body, purposeRegistration))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenToRegisterMSISDN200JSONResponse(resp), nil
}

// RequestTokenToResetPasswordEmail is POST /_matrix/client/v3/account/password/email/requestToken.
func (s *Server) RequestTokenToResetPasswordEmail(ctx context.Context, req api.RequestTokenToResetPasswordEmailRequestObject) (api.RequestTokenToResetPasswordEmailResponseObject, error) {
	resp, err := s.requestToken(ctx, emailRequest(*req.Body, purposePasswordReset))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenToResetPasswordEmail200JSONResponse(resp), nil
}

// RequestTokenToResetPasswordMSISDN is POST /_matrix/client/v3/account/password/msisdn/requestToken.
func (s *Server) RequestTokenToResetPasswordMSISDN(ctx context.Context, req api.RequestTokenToResetPasswordMSISDNRequestObject) (api.RequestTokenToResetPasswordMSISDNResponseObject, error) {
	resp, err := s.requestToken(ctx, msisdnRequest(*req.Body, purposePasswordReset))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenToResetPasswordMSISDN200JSONResponse(resp), nil
}

// RequestTokenTo3PIDEmail is POST /_matrix/client/v3/account/3pid/email/requestToken.
func (s *Server) RequestTokenTo3PIDEmail(ctx context.Context, req api.RequestTokenTo3PIDEmailRequestObject) (api.RequestTokenTo3PIDEmailResponseObject, error) {
	resp, err := s.requestToken(ctx, emailRequest(*req.Body, purposeAddThreepid))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenTo3PIDEmail200JSONResponse(resp), nil
}

// RequestTokenTo3PIDMSISDN is POST /_matrix/client/v3/account/3pid/msisdn/requestToken.
func (s *Server) RequestTokenTo3PIDMSISDN(ctx context.Context, req api.RequestTokenTo3PIDMSISDNRequestObject) (api.RequestTokenTo3PIDMSISDNResponseObject, error) {
	resp, err := s.requestToken(ctx, msisdnRequest(*req.Body, purposeAddThreepid))
	if err != nil {
		return nil, err
	}
	return api.RequestTokenTo3PIDMSISDN200JSONResponse(resp), nil
}

// validatedThreepid is the result of a 3PID UIA stage.
type validatedThreepid struct {
	Medium      string `json:"medium"`
	Address     string `json:"address"`
	ValidatedAt int64  `json:"validated_at"`
	Sid         string `json:"sid"`
}

// validatedSession returns the validated session sid of medium if
// clientSecret is its secret.
func (s *Server) validatedSession(ctx context.Context, medium, sid, clientSecret string) (validatedThreepid, bool, error) {
	if medium == db.MediumMsisdn && s.delegate != nil {
		v, ok, err := s.delegate.validated(ctx, sid, clientSecret)
		if err != nil {
			return v, false, &matrix.Error{Status: http.StatusServiceUnavailable, Code: matrix.CodeUnknown, Message: "The identity server is unavailable", Internal: err}
		}
		return v, ok, nil
	}
	sess, err := s.store.ThreepidSession(ctx, sid)
	if errors.Is(err, db.ErrNotFound) {
		return validatedThreepid{}, false, nil
	}
	if err != nil {
		return validatedThreepid{}, false, matrix.Internal(err)
	}
	if subtle.ConstantTimeCompare([]byte(sess.ClientSecret), []byte(clientSecret)) != 1 ||
		sess.Medium != medium || sess.ValidatedAt == nil {
		return validatedThreepid{}, false, nil
	}
	return validatedThreepid{Medium: sess.Medium, Address: sess.Address, ValidatedAt: *sess.ValidatedAt, Sid: sess.Sid}, true, nil
}

// ValidatedThreepid implements uia.ThreepidValidator: the address a
// validated session proved, as the stage's result.
func (s *Server) ValidatedThreepid(ctx context.Context, medium, sid, clientSecret string) (string, bool, error) {
	v, ok, err := s.validatedSession(ctx, medium, sid, clientSecret)
	if err != nil || !ok {
		return "", false, err
	}
	return string(mustJSON(v)), true, nil
}

// sessionThreepids returns the addresses the session's 3PID stages proved.
func sessionThreepids(sess *uia.Session) []validatedThreepid {
	var out []validatedThreepid
	for _, t := range []string{uia.TypeEmail, uia.TypeMsisdn} {
		if r := sess.Result(t); r != "" {
			var v validatedThreepid
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
	if who.IsGuest {
		return nil, matrix.ErrGuestForbidden
	}
	if !s.cfg.Enable3PIDChanges {
		return nil, matrix.BadRequest(matrix.CodeForbidden, "3PID changes are disabled on this server")
	}
	err := s.protect(ctx, s.uiaRequest(ctx, http.MethodPost, add3PIDPath, req.Body.Auth, reauthFlows), func(*uia.Session) error {
		return s.addThreepid(ctx, who.UserID, req.Body.Sid, req.Body.ClientSecret)
	})
	if err != nil {
		return nil, err
	}
	return api.Add3PID200JSONResponse{}, nil
}

// addThreepid binds the address a validated session proved to the user.
func (s *Server) addThreepid(ctx context.Context, userID, sid, clientSecret string) error {
	var v validatedThreepid
	found := false
	for _, medium := range []string{db.MediumEmail, db.MediumMsisdn} {
		var err error
		if v, found, err = s.validatedSession(ctx, medium, sid, clientSecret); err != nil {
			return err
		}
		if found {
			break
		}
	}
	if !found {
		return matrix.BadRequest(matrix.CodeThreepidAuthFailed, "No validated 3pid session found")
	}
	if !s.cfg.ThreepidAllowed(v.Medium, v.Address) {
		return errThreepidNotAllowed
	}
	err := s.store.AddThreepid(ctx, userID, db.NewThreepid{Medium: v.Medium, Address: v.Address, ValidatedAt: v.ValidatedAt, SessionID: v.Sid})
	if errors.Is(err, db.ErrThreepidInUse) {
		return matrix.BadRequest(matrix.CodeThreepidInUse, "The specified address is already in use")
	}
	if err != nil {
		return matrix.Internal(err)
	}
	return nil
}

// Delete3pidFromAccount is POST /_matrix/client/v3/account/3pid/delete.
// registrar binds nothing on identity servers, so there is nothing to
// unbind: the result is success.
func (s *Server) Delete3pidFromAccount(ctx context.Context, req api.Delete3pidFromAccountRequestObject) (api.Delete3pidFromAccountResponseObject, error) {
	who := requesterFrom(ctx)
	if who.IsGuest {
		return nil, matrix.ErrGuestForbidden
	}
	if !s.cfg.Enable3PIDChanges {
		return nil, matrix.BadRequest(matrix.CodeForbidden, "3PID changes are disabled on this server")
	}
	address := req.Body.Address
	if string(req.Body.Medium) == db.MediumEmail {
		if c := canonicalEmail(address); c != "" {
			address = c
		}
	}
	if err := s.store.DeleteThreepid(ctx, who.UserID, string(req.Body.Medium), address); err != nil {
		return nil, matrix.Internal(err)
	}
	return api.Delete3pidFromAccount200JSONResponse{IdServerUnbindResult: "success"}, nil
}
