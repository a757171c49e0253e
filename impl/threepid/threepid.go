// Package threepid validates third-party identifiers (email addresses and
// phone numbers) as the client-server API's requestToken endpoints
// describe, without an identity server: sessions, tokens sent by email
// (SMTP) or SMS (an HTTP gateway, or a delegated identity server), their
// submission, and binding a validated address to an account. It knows
// nothing of the server.
package threepid

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"registrar/db"
	"registrar/impl/config"
	"registrar/impl/matrix"
	"registrar/impl/metrics"
	"registrar/impl/ratelimit"
	"registrar/impl/secrets"
)

// Store is what validation needs of the database.
type Store interface {
	StartThreepidValidation(ctx context.Context, next db.ThreepidSession) (db.ThreepidSession, bool, error)
	ThreepidSession(ctx context.Context, sid string) (db.ThreepidSession, error)
	MarkThreepidValidated(ctx context.Context, sid, tokenHash string) (bool, error)
	ThreepidOwner(ctx context.Context, medium, address string) (string, error)
	AddThreepid(ctx context.Context, userID string, t db.NewThreepid) error
}

// sessionLifetime is how long a validation session lives.
const sessionLifetime = 24 * time.Hour

// The pages a token is submitted to, under public_baseurl.
const (
	EmailSubmitPath  = "_matrix/client/unstable/registration/email/submit_token"
	MsisdnSubmitPath = "_matrix/client/unstable/add_threepid/msisdn/submit_token"
)

// Service validates addresses.
type Service struct {
	cfg      *config.Config
	store    Store
	mailer   *mailer
	sms      *smsSender
	delegate *identityDelegate
	// limit is rc_3pid_validation, per medium and client address and per
	// medium and address.
	limit   *ratelimit.Limiter
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics.Set
}

// New builds the service; cfg must be prepared; remote, when not nil,
// shares the validation limit between instances.
func New(cfg *config.Config, store Store, remote *ratelimit.Remote, now func() time.Time, log *slog.Logger, m *metrics.Set) (*Service, error) {
	s := &Service{cfg: cfg, store: store, limit: ratelimit.Shared("rc_3pid_validation", cfg.Rc3PIDValidation, remote), now: now, log: log, metrics: m}
	if cfg.Email != nil {
		var err error
		if s.mailer, err = newMailer(*cfg.Email, cfg.ServerName, brandOf(cfg)); err != nil {
			return nil, err
		}
	}
	if cfg.SMSGateway != nil {
		s.sms = newSMSSender(*cfg.SMSGateway)
	}
	if d := cfg.AccountThreepidDelegates.Msisdn; d != "" {
		s.delegate = newIdentityDelegate(d)
	}
	return s, nil
}

// Limiter is the validation limiter (to reclaim idle buckets).
func (s *Service) Limiter() *ratelimit.Limiter { return s.limit }

// EmailEnabled reports whether email addresses can be validated.
func (s *Service) EmailEnabled() bool { return s.mailer != nil }

// MsisdnEnabled reports whether phone numbers can be validated.
func (s *Service) MsisdnEnabled() bool { return s.sms != nil || s.delegate != nil }

// Request is one requestToken call.
type Request struct {
	Medium, Address, ClientSecret string
	SendAttempt                   int
	NextLink                      *string
	Purpose                       string
	// Country and Phone are the number as given, for a delegate.
	Country, Phone string
	// ClientKey is the client address's rate-limit key.
	ClientKey string
	// ShortCode sends a code short enough to type (the sign-up and account
	// pages ask for it; wrong tries are rate limited there) with the link.
	ShortCode bool
}

// Response is a requestToken answer.
type Response struct {
	Sid       string
	SubmitURL *string
}

// CodeAlphabet is the alphabet of short codes: consonants and digits
// without 0, 1 (no words, no O/0 or I/1 confusion).
const CodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ23456789"

// NormalizeCode reads a typed code: case, spaces and dashes do not matter.
func NormalizeCode(typed string) string {
	return strings.NewReplacer(" ", "", "-", "").Replace(strings.ToUpper(strings.TrimSpace(typed)))
}

// clientSecretRE is the client_secret grammar (identity service API):
// 1-255 of these characters, the length checked apart.
var clientSecretRE = regexp.MustCompile(`^[0-9a-zA-Z.=_-]+$`)

var (
	errNotFound = matrix.BadRequest(matrix.CodeThreepidNotFound, "Third-party identifier not found")
	errInUse    = matrix.BadRequest(matrix.CodeThreepidInUse, "The specified address is already in use")
	// ErrDenied is an address allowed_local_3pids does not allow.
	ErrDenied = &matrix.Error{Status: http.StatusForbidden, Code: matrix.CodeThreepidDenied, Message: "Third-party identifier is not allowed"}
)

// RequestToken is the common core of every requestToken endpoint: checks,
// send limits, address ownership, send_attempt idempotence, then the
// message, sent after the session is committed.
func (s *Service) RequestToken(ctx context.Context, r Request) (Response, error) {
	if err := s.checkEnabled(r); err != nil {
		return Response{}, err
	}
	if err := s.checkRequest(r); err != nil {
		return Response{}, err
	}
	if err := s.charge(r); err != nil {
		return Response{}, err
	}
	if err := s.checkOwnership(ctx, r); err != nil {
		if err == errConcealed {
			return s.fakeResponse(ctx, r)
		}
		return Response{}, err
	}
	if r.Medium == db.MediumMsisdn && s.delegate != nil {
		start := time.Now()
		sid, err := s.delegate.requestToken(ctx, r)
		s.metrics.MessageSent(r.Medium, r.Purpose, err, time.Since(start))
		if err != nil {
			return Response{}, &matrix.Error{Status: http.StatusInternalServerError, Code: matrix.CodeUnknown, Message: "could not send SMS", Internal: err}
		}
		return Response{Sid: sid, SubmitURL: s.submitURL(r.Medium)}, nil
	}
	return s.startAndSend(ctx, r)
}

// checkEnabled refuses a medium or purpose this server does not offer.
func (s *Service) checkEnabled(r Request) error {
	switch {
	case r.Medium == db.MediumEmail && s.mailer == nil:
		return matrix.BadRequest(matrix.CodeThreepidMediumUnknown, "Email-based verification is not enabled on this server")
	case r.Medium == db.MediumMsisdn && !s.MsisdnEnabled():
		return matrix.BadRequest(matrix.CodeThreepidMediumUnknown, "Phone number verification is not enabled on this server")
	case r.Medium == db.MediumMsisdn && r.Purpose == PurposeRegistration && s.cfg.DisableMsisdnRegistration:
		return matrix.BadRequest(matrix.CodeThreepidMediumUnknown, "Phone number registration is disabled on this server")
	case r.Purpose == PurposeAddThreepid && !s.cfg.Enable3PIDChanges:
		return matrix.BadRequest(matrix.CodeForbidden, "3PID changes are disabled on this server")
	}
	return nil
}

// checkRequest applies the grammars: client_secret, the address, and
// next_link.
func (s *Service) checkRequest(r Request) error {
	if len(r.ClientSecret) > 255 || !clientSecretRE.MatchString(r.ClientSecret) {
		return matrix.BadRequest(matrix.CodeInvalidParam, "Invalid client_secret")
	}
	if r.Address == "" {
		return matrix.BadRequest(matrix.CodeInvalidParam, map[string]string{db.MediumEmail: "Invalid email address",
			db.MediumMsisdn: "Invalid phone number"}[r.Medium])
	}
	return s.checkNextLink(r.NextLink)
}

// checkNextLink refuses non-http(s) links and, with
// next_link_domain_whitelist, other domains.
func (s *Service) checkNextLink(link *string) error {
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

// charge takes rc_3pid_validation from the client's address and from the
// address validated.
func (s *Service) charge(r Request) error {
	now := s.now()
	if err := s.limit.Take(r.Medium+" "+r.ClientKey, now); err != nil {
		return err
	}
	if err := s.limit.Take(r.Medium+" "+r.Address, now); err != nil {
		return err
	}
	return nil
}

// errConcealed is an ownership refusal that
// request_token_inhibit_3pid_errors hides behind a fake answer.
var errConcealed = errors.New("concealed")

// checkOwnership refuses an address allowed_local_3pids does not allow, an
// unbound one for a password reset, and a bound one otherwise.
func (s *Service) checkOwnership(ctx context.Context, r Request) error {
	if !s.cfg.ThreepidAllowed(r.Medium, r.Address) {
		return ErrDenied
	}
	_, err := s.store.ThreepidOwner(ctx, r.Medium, r.Address)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return matrix.Internal(err)
	}
	bound := err == nil
	switch {
	case r.Purpose == PurposePasswordReset && !bound:
		if s.cfg.RequestTokenInhibit3PIDErrors {
			return errConcealed
		}
		return errNotFound
	case r.Purpose != PurposePasswordReset && bound:
		if !s.cfg.RequestTokenInhibit3PIDErrors {
			return errInUse
		}
		if r.Medium == db.MediumEmail && r.Purpose == PurposeRegistration {
			// Tell the address's owner instead of the requester.
			if err := s.mailer.send(ctx, r.Address, purposeAlreadyInUse, messageData{Address: r.Address}); err != nil {
				s.log.WarnContext(ctx, "could not send email", "purpose", purposeAlreadyInUse, "error", err)
			}
		}
		return errConcealed
	}
	return nil
}

// startAndSend records the session (a repeated send_attempt sends
// nothing), then sends its token.
func (s *Service) startAndSend(ctx context.Context, r Request) (Response, error) {
	now := s.now()
	token := secrets.RandomString(32)
	switch {
	case r.Medium == db.MediumMsisdn:
		token = secrets.RandomFrom("0123456789", 6)
	case r.ShortCode:
		token = secrets.RandomFrom(CodeAlphabet, 8)
	}
	next := db.ThreepidSession{Sid: secrets.RandomString(16), ClientSecret: r.ClientSecret, Medium: r.Medium, Address: r.Address,
		Purpose: r.Purpose, SendAttempt: int64(r.SendAttempt), TokenHash: secrets.HashToken(token),
		TokenExpiresAt: now.Add(s.tokenLifetime()).UnixMilli(), ExpiresAt: now.Add(sessionLifetime).UnixMilli()}
	if r.NextLink != nil {
		next.NextLink = *r.NextLink
	}
	sess, send, err := s.store.StartThreepidValidation(ctx, next)
	if err != nil {
		return Response{}, matrix.Internal(err)
	}
	if send {
		if err := s.send(ctx, r, sess.Sid, token); err != nil {
			return Response{}, err
		}
	}
	return Response{Sid: sess.Sid, SubmitURL: s.submitURL(r.Medium)}, nil
}

// send delivers a token: an email with the link (and the code), or an SMS.
func (s *Service) send(ctx context.Context, r Request, sid, token string) (err error) {
	start := time.Now()
	defer func() { s.metrics.MessageSent(r.Medium, r.Purpose, err, time.Since(start)) }()
	if r.Medium == db.MediumEmail {
		link := s.cfg.PublicBaseURL + EmailSubmitPath + "?" + url.Values{"sid": {sid},
			"client_secret": {r.ClientSecret}, "token": {token}}.Encode()
		data := messageData{Address: r.Address, Link: link, Token: token}
		if r.ShortCode {
			data.Code = token
		}
		if err := s.mailer.send(ctx, r.Address, r.Purpose, data); err != nil {
			return &matrix.Error{Status: http.StatusInternalServerError, Code: matrix.CodeUnknown, Message: "could not send email", Internal: err}
		}
	} else {
		text := "Your " + s.appName() + " validation code for " + s.cfg.ServerName + " is " + token
		if err := s.sms.send(ctx, r.Address, text); err != nil {
			return &matrix.Error{Status: http.StatusInternalServerError, Code: matrix.CodeUnknown, Message: "could not send SMS", Internal: err}
		}
	}
	s.log.InfoContext(ctx, "validation token sent", "medium", r.Medium, "purpose", r.Purpose, "sid", sid)
	return nil
}

func (s *Service) submitURL(medium string) *string {
	if medium != db.MediumMsisdn {
		return nil
	}
	u := s.cfg.PublicBaseURL + MsisdnSubmitPath
	return &u
}

func (s *Service) appName() string {
	if s.cfg.Email != nil {
		return s.cfg.Email.AppName
	}
	return "Matrix"
}

func (s *Service) tokenLifetime() time.Duration {
	if s.cfg.Email != nil {
		return s.cfg.Email.ValidationTokenLifetime.Duration
	}
	return time.Hour
}

// fakeResponse answers like a successful request after a random delay,
// so that request_token_inhibit_3pid_errors hides which addresses have
// accounts.
func (s *Service) fakeResponse(ctx context.Context, r Request) (Response, error) {
	n, _ := rand.Int(rand.Reader, big.NewInt(900))
	select {
	case <-time.After(time.Duration(100+n.Int64()) * time.Millisecond):
	case <-ctx.Done():
		return Response{}, ctx.Err()
	}
	return Response{Sid: secrets.RandomString(16), SubmitURL: s.submitURL(r.Medium)}, nil
}

// Validated is what a validated session proved.
type Validated struct {
	Medium      string `json:"medium"`
	Address     string `json:"address"`
	ValidatedAt int64  `json:"validated_at"`
	Sid         string `json:"sid"`
}

// Validated returns the address the validated session sid of medium
// proved, if clientSecret is its secret.
func (s *Service) Validated(ctx context.Context, medium, sid, clientSecret string) (Validated, bool, error) {
	if medium == db.MediumMsisdn && s.delegate != nil {
		v, ok, err := s.delegate.validated(ctx, sid, clientSecret)
		if err != nil {
			return v, false, matrix.Unavailable("The identity server is unavailable", err)
		}
		return v, ok, nil
	}
	sess, err := s.store.ThreepidSession(ctx, sid)
	if errors.Is(err, db.ErrNotFound) {
		return Validated{}, false, nil
	}
	if err != nil {
		return Validated{}, false, matrix.Internal(err)
	}
	if subtle.ConstantTimeCompare([]byte(sess.ClientSecret), []byte(clientSecret)) != 1 ||
		sess.Medium != medium || sess.ValidatedAt == nil {
		return Validated{}, false, nil
	}
	return Validated{Medium: sess.Medium, Address: sess.Address, ValidatedAt: *sess.ValidatedAt, Sid: sess.Sid}, true, nil
}

// Bind binds the address a validated session (of either medium) proved
// to the user, consuming the session.
func (s *Service) Bind(ctx context.Context, userID, sid, clientSecret string) error {
	var v Validated
	found := false
	for _, medium := range []string{db.MediumEmail, db.MediumMsisdn} {
		var err error
		if v, found, err = s.Validated(ctx, medium, sid, clientSecret); err != nil {
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
		return ErrDenied
	}
	err := s.store.AddThreepid(ctx, userID, db.NewThreepid{Medium: v.Medium, Address: v.Address, ValidatedAt: v.ValidatedAt, SessionID: v.Sid})
	if errors.Is(err, db.ErrThreepidInUse) {
		return errInUse
	}
	if err != nil {
		return matrix.Internal(err)
	}
	return nil
}

var (
	// ErrBadLink is a wrong or expired validation token.
	ErrBadLink = matrix.BadRequest(matrix.CodeTokenIncorrect, "This validation link is invalid or has expired. Request a new one from your application.")
	// ErrLinkUsed is a validation token used already.
	ErrLinkUsed = matrix.BadRequest(matrix.CodeTokenIncorrect, "This validation link has already been used.")
)

// Purpose is what a live validation session is for, or "".
func (s *Service) Purpose(ctx context.Context, sid string) string {
	sess, err := s.store.ThreepidSession(ctx, sid)
	if err != nil {
		return ""
	}
	return sess.Purpose
}

// Submit checks a validation token (constant-time comparisons, expiry)
// and marks its session validated; each token validates once. A wrong,
// expired or used token is 400 M_TOKEN_INCORRECT.
func (s *Service) Submit(ctx context.Context, medium, sid, clientSecret, token string) (db.ThreepidSession, error) {
	sess, err := s.store.ThreepidSession(ctx, sid)
	if errors.Is(err, db.ErrNotFound) {
		return sess, ErrBadLink
	}
	if err != nil {
		return sess, matrix.Internal(err)
	}
	if sess.Medium != medium || subtle.ConstantTimeCompare([]byte(sess.ClientSecret), []byte(clientSecret)) != 1 {
		return sess, ErrBadLink
	}
	hash := secrets.HashToken(token)
	if sess.TokenHash == "" {
		return sess, ErrLinkUsed
	}
	if subtle.ConstantTimeCompare([]byte(sess.TokenHash), []byte(hash)) != 1 || sess.TokenExpiresAt <= s.now().UnixMilli() {
		return sess, ErrBadLink
	}
	ok, err := s.store.MarkThreepidValidated(ctx, sid, hash)
	if err != nil {
		return sess, matrix.Internal(err)
	}
	if !ok {
		return sess, ErrLinkUsed
	}
	s.log.InfoContext(ctx, "third-party identifier validated", "medium", medium, "sid", sid)
	return sess, nil
}

// SubmitDelegated passes a phone token on to the identity server that
// sent it, when phone numbers are delegated; handled reports whether they
// are.
func (s *Service) SubmitDelegated(ctx context.Context, sid, clientSecret, token string) (ok, handled bool, err error) {
	if s.delegate == nil {
		return false, false, nil
	}
	ok, err = s.delegate.submitToken(ctx, sid, clientSecret, token)
	if err != nil {
		return false, true, matrix.Unavailable("The identity server is unavailable", err)
	}
	return ok, true, nil
}

// NotifySecurity mails a security notice (a second factor added or
// removed) to every verified email address of the account, when email is
// configured; a failure is logged, the change stands.
func (s *Service) NotifySecurity(ctx context.Context, userID string, addresses []string, event string) {
	if s.mailer == nil {
		return
	}
	for _, to := range addresses {
		if err := s.mailer.send(ctx, to, PurposeSecurityNotice, messageData{Address: userID, Event: event}); err != nil {
			s.log.WarnContext(ctx, "sending a security notice failed", "user_id", userID, "error", err)
		}
	}
}
