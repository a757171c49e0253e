package impl

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/secrets"
)

// Auth types (client-server API, "Authentication types").
const (
	authTypeDummy             = "m.login.dummy"
	authTypePassword          = "m.login.password"
	authTypeTerms             = "m.login.terms"
	authTypeRegistrationToken = "m.login.registration_token"
	authTypeRecaptcha         = "m.login.recaptcha"
	authTypeEmail             = "m.login.email.identity"
	authTypeMsisdn            = "m.login.msisdn"
)

// stage is one User-Interactive Authentication auth type. New stages plug
// in by registering with the engine; the engine never changes for them.
type stage interface {
	// Params is the stage's entry in the 401's params, or nil.
	Params() map[string]any
	// Check verifies the client's auth dict. It returns the stage's result
	// (stored in the session), a *stageFailure to report in the 401, or any
	// other error to end the request with.
	Check(ctx context.Context, a *stageAttempt) (string, error)
}

// stageAttempt is one submission of a stage.
type stageAttempt struct {
	Auth    *api.AuthData
	Session *uiaSession
	// ExpectedUser, when set, is the only user the stage may prove: the
	// access token's owner re-authenticating.
	ExpectedUser string
}

// stageFailure is a failed attempt at a stage, merged into the 401 body as
// errcode/error; the client may retry.
type stageFailure struct{ code, message string }

func (f *stageFailure) Error() string { return f.code + ": " + f.message }

func failStage(code, message string) error { return &stageFailure{code: code, message: message} }

// uiaSession is the engine's view of a stored session.
type uiaSession struct {
	ID        string
	Method    string
	Path      string
	Params    []byte
	Completed []string
	// Data holds per-session values: stage results ("stage:<type>") and
	// what endpoints record (e.g. the registered user ID).
	Data      map[string]string
	version   int64
	persisted bool
}

func (s *uiaSession) result(authType string) string { return s.Data["stage:"+authType] }

// uiaRequest is one call of a UIA-protected endpoint.
type uiaRequest struct {
	Method, Path string
	Auth         *api.AuthData
	Flows        [][]string
	// Params is the request body minus auth, stored when the session starts.
	Params       []byte
	ExpectedUser string
}

// uiaEngine runs User-Interactive Authentication over sessions kept in the
// store, shared by every UIA-protected endpoint.
type uiaEngine struct {
	s      *Server
	stages map[string]stage
}

func newUIAEngine(s *Server) *uiaEngine {
	u := &uiaEngine{s: s, stages: map[string]stage{
		authTypeDummy:    dummyStage{},
		authTypePassword: passwordStage{s: s},
	}}
	if len(s.cfg.RegistrationTerms) > 0 {
		u.stages[authTypeTerms] = newTermsStage(s.cfg.RegistrationTerms)
	}
	if s.cfg.RegistrationRequiresToken {
		u.stages[authTypeRegistrationToken] = registrationTokenStage{s: s}
	}
	if s.cfg.EnableRegistrationCaptcha {
		u.stages[authTypeRecaptcha] = newRecaptchaStage(s)
	}
	if s.mailer != nil {
		u.stages[authTypeEmail] = threepidStage{s: s, medium: db.MediumEmail}
	}
	if s.msisdnEnabled() {
		u.stages[authTypeMsisdn] = threepidStage{s: s, medium: db.MediumMsisdn}
	}
	return u
}

var errUnknownSession = matrix.BadRequest(matrix.CodeUnknown, "Unknown session ID")

// load returns the session named by auth.session, or nil when there is
// none. A session started on another endpoint is refused.
func (u *uiaEngine) load(ctx context.Context, auth *api.AuthData, method, path string) (*uiaSession, error) {
	if auth == nil || auth.Session == nil {
		return nil, nil
	}
	row, err := u.s.store.UIASession(ctx, *auth.Session)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errUnknownSession
	}
	if err != nil {
		return nil, matrix.Internal(err)
	}
	if row.Method != method || normalisePath(row.Path) != normalisePath(path) {
		return nil, matrix.Forbidden("Requested operation has changed during the UI authentication session.")
	}
	sess := &uiaSession{ID: row.SessionID, Method: row.Method, Path: row.Path, Params: row.Params,
		Data: map[string]string{}, version: row.Version, persisted: true}
	if err := json.Unmarshal([]byte(row.Completed), &sess.Completed); err != nil {
		return nil, matrix.Internal(err)
	}
	if err := json.Unmarshal([]byte(row.Data), &sess.Data); err != nil {
		return nil, matrix.Internal(err)
	}
	return sess, nil
}

// normalisePath makes the legacy r0 and the v3 path of an endpoint equal.
func normalisePath(p string) string {
	if rest, ok := strings.CutPrefix(p, r0Prefix); ok {
		return v3Prefix + rest
	}
	return p
}

// authenticate runs the submitted stage, if any, and returns the session
// once some flow is complete; otherwise a *matrix.Challenge (401). sess may be
// nil (no session yet): a request whose auth completes a flow on its own
// succeeds without one.
func (u *uiaEngine) authenticate(ctx context.Context, sess *uiaSession, req uiaRequest) (*uiaSession, error) {
	if sess == nil {
		sess = &uiaSession{ID: secrets.RandomString(24), Method: req.Method, Path: req.Path, Params: req.Params, Data: map[string]string{}}
	}
	var failure *stageFailure
	if req.Auth != nil && req.Auth.Type != nil && *req.Auth.Type != "" {
		authType := *req.Auth.Type
		st, ok := u.stages[authType]
		if !ok || !offered(req.Flows, authType) {
			return nil, matrix.BadRequest(matrix.CodeUnrecognized, "Unrecognised authentication type")
		}
		result, err := st.Check(ctx, &stageAttempt{Auth: req.Auth, Session: sess, ExpectedUser: req.ExpectedUser})
		switch {
		case errors.As(err, &failure):
		case err != nil:
			return nil, err
		default:
			if !slices.Contains(sess.Completed, authType) {
				sess.Completed = append(sess.Completed, authType)
			}
			sess.Data["stage:"+authType] = result
		}
	}
	if failure == nil && flowComplete(req.Flows, sess.Completed) {
		if sess.persisted {
			if err := u.save(ctx, sess); err != nil {
				return nil, err
			}
		}
		return sess, nil
	}
	if err := u.save(ctx, sess); err != nil {
		return nil, err
	}
	return nil, u.challenge(sess, req.Flows, failure)
}

// save creates or updates the session; a concurrent update of the same
// session makes this request fail without losing the other's work.
func (u *uiaEngine) save(ctx context.Context, sess *uiaSession) error {
	row := db.UIASession{SessionID: sess.ID, Method: sess.Method, Path: sess.Path, Params: sess.Params,
		Completed: string(mustJSON(orEmpty(sess.Completed))), Data: string(mustJSON(sess.Data)), Version: sess.version}
	if !sess.persisted {
		now := u.s.now()
		row.CreatedAt = now.UnixMilli()
		row.ExpiresAt = now.Add(u.s.cfg.UIAuth.SessionLifetime.Duration).UnixMilli()
		if err := u.s.store.CreateUIASession(ctx, row); err != nil {
			return matrix.Internal(err)
		}
		sess.persisted = true
		return nil
	}
	err := u.s.store.UpdateUIASession(ctx, row)
	if errors.Is(err, db.ErrConflict) {
		return &matrix.Error{Status: http.StatusConflict, Code: matrix.CodeUnknown,
			Message: "Another request in this authentication session was processed first; retry"}
	}
	if err != nil {
		return matrix.Internal(err)
	}
	sess.version++
	return nil
}

// challenge builds the 401 body: flows (never null), params of the offered
// stages, the session and the completed stages, plus errcode/error of a
// failed attempt.
func (u *uiaEngine) challenge(sess *uiaSession, flows [][]string, failure *stageFailure) *matrix.Challenge {
	body := api.AuthResponse{Flows: make([]api.AuthFlow, 0, len(flows)), Session: &sess.ID}
	params := map[string]map[string]any{}
	for _, f := range flows {
		body.Flows = append(body.Flows, api.AuthFlow{Stages: f})
		for _, t := range f {
			if st, ok := u.stages[t]; ok {
				if p := st.Params(); p != nil {
					params[t] = p
				}
			}
		}
	}
	body.Params = &params
	completed := orEmpty(sess.Completed)
	body.Completed = &completed
	if failure != nil {
		body.Errcode = &failure.code
		body.Error = &failure.message
	}
	return &matrix.Challenge{Body: body}
}

func (u *uiaEngine) sweep(ctx context.Context) {
	n, err := u.s.store.DeleteExpiredUIASessions(ctx)
	if err != nil {
		if ctx.Err() == nil {
			u.s.log.Warn("sweeping expired UIA sessions failed", "error", err)
		}
		return
	}
	if n > 0 {
		u.s.log.Info("swept expired UIA sessions", "count", n)
	}
	released, err := u.s.store.ReleaseAbandonedReservations(ctx, abandonedReservationAge.Milliseconds())
	if err != nil {
		u.s.log.Warn("releasing registration token reservations failed", "error", err)
	} else if released > 0 {
		u.s.log.Info("released registration token uses of abandoned sessions", "count", released)
	}
}

func offered(flows [][]string, authType string) bool {
	for _, f := range flows {
		if slices.Contains(f, authType) {
			return true
		}
	}
	return false
}

func flowComplete(flows [][]string, completed []string) bool {
	for _, f := range flows {
		done := true
		for _, t := range f {
			if !slices.Contains(completed, t) {
				done = false
				break
			}
		}
		if done {
			return true
		}
	}
	return false
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// dummyStage is m.login.dummy: always succeeds.
type dummyStage struct{}

func (dummyStage) Params() map[string]any { return nil }
func (dummyStage) Check(context.Context, *stageAttempt) (string, error) {
	return "true", nil
}

// termsStage is m.login.terms (spec v1.11): the client accepts every
// policy in params; the accepted versions are the stage's result.
type termsStage struct {
	params   map[string]any
	accepted string
}

func newTermsStage(policies map[string]TermsPolicy) termsStage {
	out := map[string]any{}
	versions := map[string]string{}
	for id, p := range policies {
		entry := map[string]any{"version": p.Version}
		for lang, d := range p.Translations {
			entry[lang] = d
		}
		out[id] = entry
		versions[id] = p.Version
	}
	return termsStage{params: map[string]any{"policies": out}, accepted: string(mustJSON(versions))}
}

func (t termsStage) Params() map[string]any { return t.params }
func (t termsStage) Check(context.Context, *stageAttempt) (string, error) {
	return t.accepted, nil
}

// passwordStage is m.login.password: the identifier (m.id.user, or the
// deprecated top-level user) and the account's password. Its result is the
// user ID it proved.
type passwordStage struct{ s *Server }

func (passwordStage) Params() map[string]any { return nil }

func (p passwordStage) Check(ctx context.Context, a *stageAttempt) (string, error) {
	user := ""
	switch {
	case a.Auth.Identifier != nil:
		if a.Auth.Identifier.Type != "m.id.user" {
			return "", failStage(matrix.CodeUnrecognized, "Unknown login identifier type")
		}
		if a.Auth.Identifier.User != nil {
			user = *a.Auth.Identifier.User
		}
	case a.Auth.User != nil:
		user = *a.Auth.User
	}
	if user == "" || a.Auth.Password == nil {
		return "", failStage(matrix.CodeMissingParam, "Missing parameters")
	}
	acct, err := p.s.checkPassword(ctx, user, *a.Auth.Password, a.ExpectedUser)
	if err != nil {
		return "", err
	}
	return acct.UserID, nil
}
