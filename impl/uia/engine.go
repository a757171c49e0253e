// Package uia is User-Interactive Authentication (client-server API,
// "User-Interactive Authentication API"): sessions, flows, the 401
// challenge and completion, shared by every protected endpoint. Stages are
// values that plug in; each gets what it needs through a narrow interface,
// never the server.
//
// A session is bound when it starts to its operation (method and path)
// and to its requester (the access token's user, or nobody for
// registration and password reset); any other operation or requester is
// refused. A session nobody has progressed in costs no database write:
// its ID is sealed with the server's key and carries its start
// (operation, requester, time, the request's parameters, never a secret).
// Its state is stored once a stage completes, or once it must keep a
// secret for a later request (the registration password, sealed in the
// stored state), and a protected operation consumes it.
package uia

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/metrics"
	"registrar/impl/secrets"
)

// Auth types (client-server API, "Authentication types").
const (
	TypeDummy             = "m.login.dummy"
	TypePassword          = "m.login.password"
	TypeTerms             = "m.login.terms"
	TypeRegistrationToken = "m.login.registration_token"
	TypeRecaptcha         = "m.login.recaptcha"
	TypeEmail             = "m.login.email.identity"
	TypeMsisdn            = "m.login.msisdn"
	TypeSSO               = "m.login.sso"
	// TypeSecondFactor is registrar's own stage: the account's second
	// factor, on its fallback page.
	TypeSecondFactor = "org.registrar.login.second_factor"
)

// Stage is one auth type.
type Stage interface {
	// Type is the auth type, e.g. m.login.dummy.
	Type() string
	// Params is the stage's entry in the 401's params, or nil.
	Params() map[string]any
	// Check verifies the client's auth dict. It returns the stage's result
	// (kept in the session), a *Failure to report in the 401, or any other
	// error to end the request with.
	Check(ctx context.Context, a *Attempt) (string, error)
}

// UserProver is a stage whose result is the user ID it proved (the
// password stage); a session's proven users must be its requester.
type UserProver interface{ ProvesUser() }

// Attempt is one submission of a stage.
type Attempt struct {
	Auth    *api.AuthData
	Session *Session
	// Requester is the access token's user, or "".
	Requester string
	// ClientIP is the client's address.
	ClientIP string
}

// Failure is a failed attempt at a stage, merged into the 401 body as
// errcode/error; the client may retry.
type Failure struct{ Code, Message string }

func (f *Failure) Error() string { return f.Code + ": " + f.Message }

// ErrorCode is the failure's errcode.
func (f *Failure) ErrorCode() string { return f.Code }

// Fail returns a stage failure.
func Fail(code, message string) error { return &Failure{Code: code, Message: message} }

// Operation is the endpoint a session authorises.
type Operation struct{ Method, Path string }

// Request is one call of a protected endpoint.
type Request struct {
	Op    Operation
	Auth  *api.AuthData
	Flows [][]string
	// Requester is the access token's user, or "" without a token.
	Requester string
	// ClientIP is the client's address; ClientKey its rate-limit key.
	ClientIP, ClientKey string
	// Params are the request's parameters, kept in a session it starts
	// (they travel, sealed, in the session ID: no secrets).
	Params []byte
	// Kept are values later requests of the session need that must not
	// travel in its ID (a password): they are kept in the stored
	// session, sealed with the server's key, and a session holding one is
	// stored as soon as it starts.
	Kept map[string]string
}

// Session is a UIA session.
type Session struct {
	ID        string
	Op        Operation
	Requester string
	Started   time.Time
	// Params are the parameters of the request that started the session.
	Params    []byte
	Completed []string
	// Data holds per-session values: stage results ("stage:<type>") and
	// what endpoints record (e.g. the registered user ID).
	Data map[string]string

	rowID     string
	version   int64
	stored    bool
	consumed  bool
	complete  bool
	clientKey string
	opener    *secrets.Sealer
}

// Result is the result of a completed stage.
func (s *Session) Result(authType string) string { return s.Data["stage:"+authType] }

// keptPrefix marks the session data that Request.Kept stored.
const keptPrefix = "kept:"

// Kept returns a value a request of the session asked to keep, or "".
func (s *Session) Kept(key string) string {
	sealed := s.Data[keptPrefix+key]
	if sealed == "" || s.opener == nil {
		return ""
	}
	plain, _, err := s.opener.Open(sealed, keptContext)
	if err != nil {
		return ""
	}
	return string(plain)
}

// Forget drops a kept value (stored with the session's next write).
func (s *Session) Forget(key string) { delete(s.Data, keptPrefix+key) }

// Stored reports whether the session has been written to the store.
func (s *Session) Stored() bool { return s.stored }

// Store is what the engine needs of the database.
type Store interface {
	CreateUIASession(ctx context.Context, s db.UIASession) error
	UIASession(ctx context.Context, id string) (db.UIASession, error)
	UpdateUIASession(ctx context.Context, s db.UIASession) error
	InProgressUIASessions(ctx context.Context, key string, byRequester bool) (n, oldestExpiry int64, err error)
}

// StartLimiter charges the start of a session to the client.
type StartLimiter interface {
	Take(key string, now time.Time) *matrix.Error
}

// Config tunes the engine.
type Config struct {
	// Lifetime is how long a session lives (Synapse: 48 h).
	Lifetime time.Duration
	// MaxInProgress caps the stored sessions in progress (no flow complete
	// yet, not consumed) of one client address for sessions without a
	// requester, and of one user for a logged-in requester's; 0 means no
	// cap.
	MaxInProgress int
	// Secret is the server's secret, from which the key sealing session
	// IDs is derived.
	Secret []byte
	// Now is the clock.
	Now func() time.Time
	// Metrics counts sessions and stage failures; nil counts nothing.
	Metrics *metrics.Set
}

// Engine runs User-Interactive Authentication.
type Engine struct {
	cfg    Config
	store  Store
	starts StartLimiter
	sealer *secrets.Sealer
	stages map[string]Stage
}

// New builds an engine offering stages; starts may be nil.
func New(cfg Config, store Store, starts StartLimiter, stages ...Stage) (*Engine, error) {
	sealer, err := secrets.NewSealer(cfg.Secret, "uia session")
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, store: store, starts: starts, sealer: sealer, stages: map[string]Stage{}}
	for _, st := range stages {
		e.stages[st.Type()] = st
	}
	return e, nil
}

// Offers reports whether the engine has the stage.
func (e *Engine) Offers(authType string) bool { _, ok := e.stages[authType]; return ok }

// Stage returns the engine's stage of authType, or nil.
func (e *Engine) Stage(authType string) Stage { return e.stages[authType] }

const (
	sealContext = "session v1"
	keptContext = "kept value v1"
)

// sessionStart is what a session ID carries.
type sessionStart struct {
	Created   int64           `json:"c"`
	Requester string          `json:"u,omitempty"`
	Method    string          `json:"m"`
	Path      string          `json:"p"`
	Params    json.RawMessage `json:"a,omitempty"`
}

var (
	errUnknownSession = matrix.BadRequest(matrix.CodeUnknown, "Unknown session ID")
	errUsedSession    = matrix.BadRequest(matrix.CodeUnknown, "This authentication session has been used; start a new one")
	errOpChanged      = matrix.Forbidden("Requested operation has changed during the UI authentication session.")
	errInvalidAuth    = matrix.Forbidden("Invalid auth")
	errConflict       = &matrix.Error{Status: http.StatusConflict, Code: matrix.CodeUnknown,
		Message: "Another request in this authentication session was processed first; retry"}
)

// Load returns the session named by auth.session, or nil when there is
// none. A session of another operation or another requester is refused,
// and so is a consumed one.
func (e *Engine) Load(ctx context.Context, req *Request) (*Session, error) {
	if req.Auth == nil || req.Auth.Session == nil {
		return nil, nil
	}
	sess, err := e.open(ctx, *req.Auth.Session)
	if err != nil {
		return nil, err
	}
	if sess.Op.Method != req.Op.Method || NormalisePath(sess.Op.Path) != NormalisePath(req.Op.Path) {
		return nil, errOpChanged
	}
	if sess.Requester != req.Requester {
		return nil, errInvalidAuth
	}
	return sess, nil
}

// LoadAny returns a session whatever its operation and requester (the
// fallback pages, which complete a stage without any token).
func (e *Engine) LoadAny(ctx context.Context, id string) (*Session, error) {
	return e.open(ctx, id)
}

func (e *Engine) open(ctx context.Context, id string) (*Session, error) {
	plain, nonce, err := e.sealer.Open(id, sealContext)
	if err != nil {
		return nil, errUnknownSession
	}
	var start sessionStart
	if err := json.Unmarshal(plain, &start); err != nil {
		return nil, errUnknownSession
	}
	started := time.UnixMilli(start.Created)
	if !e.cfg.Now().Before(started.Add(e.cfg.Lifetime)) {
		return nil, errUnknownSession
	}
	sess := &Session{ID: id, Op: Operation{start.Method, start.Path}, Requester: start.Requester, Started: started,
		Params: start.Params, Data: map[string]string{}, rowID: rowID(nonce), opener: e.sealer}
	row, err := e.store.UIASession(ctx, sess.rowID)
	if errors.Is(err, db.ErrNotFound) {
		return sess, nil
	}
	if err != nil {
		return nil, matrix.Internal(err)
	}
	if row.Consumed {
		return nil, errUsedSession
	}
	if err := json.Unmarshal([]byte(row.Completed), &sess.Completed); err != nil {
		return nil, matrix.Internal(err)
	}
	if err := json.Unmarshal([]byte(row.Data), &sess.Data); err != nil {
		return nil, matrix.Internal(err)
	}
	sess.version, sess.stored, sess.clientKey, sess.complete = row.Version, true, row.ClientAddr, row.FlowComplete
	return sess, nil
}

// rowID is the key of a session's stored state: its seal's nonce, unique
// per session.
func rowID(nonce []byte) string { return secrets.EncodeID(nonce) }

// start makes a new session for req; nothing is written.
func (e *Engine) start(req *Request) (*Session, error) {
	if e.starts != nil {
		if err := e.starts.Take(req.ClientKey, e.cfg.Now()); err != nil {
			return nil, err
		}
	}
	now := e.cfg.Now()
	op := Operation{req.Op.Method, NormalisePath(req.Op.Path)}
	plain, err := json.Marshal(sessionStart{Created: now.UnixMilli(), Requester: req.Requester, Method: op.Method,
		Path: op.Path, Params: req.Params})
	if err != nil {
		return nil, matrix.Internal(err)
	}
	id, nonce := e.sealer.Seal(plain, sealContext)
	e.cfg.Metrics.UIAStarted()
	return &Session{ID: id, Op: op, Requester: req.Requester, Started: time.UnixMilli(now.UnixMilli()), Params: req.Params,
		Data: map[string]string{}, rowID: rowID(nonce), clientKey: req.ClientKey, opener: e.sealer}, nil
}

// Authenticate runs the submitted stage, if any, and returns the session
// once some flow is complete and every user it proved is the requester;
// otherwise a *matrix.Challenge (401). sess may be nil (no session yet):
// a request whose auth completes a flow on its own succeeds without one.
func (e *Engine) Authenticate(ctx context.Context, sess *Session, req *Request) (*Session, error) {
	if sess == nil {
		var err error
		if sess, err = e.start(req); err != nil {
			return nil, err
		}
	}
	if !sess.stored {
		// The state is stored under the address of whoever progresses first.
		sess.clientKey = req.ClientKey
	}
	var failure *Failure
	progressed := false
	if req.Auth != nil && req.Auth.Type != nil && *req.Auth.Type != "" {
		authType := *req.Auth.Type
		st, ok := e.stages[authType]
		if !ok || !offered(req.Flows, authType) {
			return nil, matrix.BadRequest(matrix.CodeUnrecognized, "Unrecognised authentication type")
		}
		result, err := st.Check(ctx, &Attempt{Auth: req.Auth, Session: sess, Requester: req.Requester, ClientIP: req.ClientIP})
		switch {
		case errors.As(err, &failure):
			e.cfg.Metrics.StageFailure(authType, failure.Code)
		case err != nil:
			return nil, err
		default:
			if !slices.Contains(sess.Completed, authType) {
				sess.Completed = append(sess.Completed, authType)
			}
			sess.Data["stage:"+authType] = result
			progressed = true
		}
	}
	kept := e.keep(sess, req.Kept)
	if failure == nil && flowComplete(req.Flows, sess.Completed) {
		if err := e.checkProvenUsers(sess); err != nil {
			return nil, err
		}
		wasComplete := sess.complete
		sess.complete = true
		// A session the operation runs with now need not be stored; one
		// stored already records its progress and that it is complete.
		if sess.stored && (progressed || kept || !wasComplete) {
			if err := e.save(ctx, sess); err != nil {
				return nil, err
			}
		}
		e.cfg.Metrics.UIACompleted()
		return sess, nil
	}
	if progressed || kept {
		if err := e.save(ctx, sess); err != nil {
			return nil, err
		}
	}
	return nil, e.challenge(sess, req.Flows, failure)
}

// keep seals values into the session's data; it reports whether any
// changed.
func (e *Engine) keep(sess *Session, values map[string]string) bool {
	changed := false
	for k, v := range values {
		if sess.Kept(k) == v {
			continue
		}
		sealed, _ := e.sealer.Seal([]byte(v), keptContext)
		sess.Data[keptPrefix+k] = sealed
		changed = true
	}
	return changed
}

// Keep stores a session whose flow completed in a request that could not
// go on (a registration without its password), so that a later request
// with the session finishes without doing the stages again.
func (e *Engine) Keep(ctx context.Context, sess *Session) error {
	if sess.stored {
		return nil
	}
	return e.save(ctx, sess)
}

// checkProvenUsers is Synapse's final check: a stage that proved a user
// proved the requester, or the session authorises nothing.
func (e *Engine) checkProvenUsers(sess *Session) error {
	for _, t := range sess.Completed {
		if _, ok := e.stages[t].(UserProver); ok && sess.Result(t) != sess.Requester {
			return errInvalidAuth
		}
	}
	return nil
}

// Complete marks a stage done in a session (the fallback pages).
func (e *Engine) Complete(ctx context.Context, sess *Session, authType, result string) error {
	if !slices.Contains(sess.Completed, authType) {
		sess.Completed = append(sess.Completed, authType)
	}
	sess.Data["stage:"+authType] = result
	return e.save(ctx, sess)
}

// Consume spends a completed session on its operation: from now on it
// authorises nothing. Of concurrent requests of one session, one consumes
// it and the others get a 409.
func (e *Engine) Consume(ctx context.Context, sess *Session) error {
	sess.consumed = true
	if err := e.save(ctx, sess); err != nil {
		sess.consumed = false
		return err
	}
	return nil
}

// Release gives a consumed session back when its operation failed, so the
// client can retry without authenticating again.
func (e *Engine) Release(ctx context.Context, sess *Session) {
	if !sess.consumed {
		return
	}
	sess.consumed = false
	_ = e.save(ctx, sess)
}

// Row is the session as stored, for a transaction of the caller's that
// records its outcome (registration).
func (e *Engine) Row(sess *Session) db.UIASession {
	return db.UIASession{SessionID: sess.rowID, Method: sess.Op.Method, Path: NormalisePath(sess.Op.Path),
		Requester: sess.Requester, ClientAddr: sess.clientKey, Completed: string(mustJSON(orEmpty(sess.Completed))),
		Data: string(mustJSON(sess.Data)), Consumed: sess.consumed, FlowComplete: sess.complete, Version: sess.version,
		CreatedAt: sess.Started.UnixMilli(), ExpiresAt: sess.Started.Add(e.cfg.Lifetime).UnixMilli()}
}

// Recorded returns what the stored state of sess says under key now (a
// concurrent request may have recorded it).
func (e *Engine) Recorded(ctx context.Context, sess *Session, key string) string {
	row, err := e.store.UIASession(ctx, sess.rowID)
	if err != nil {
		return ""
	}
	var data map[string]string
	if json.Unmarshal([]byte(row.Data), &data) != nil {
		return ""
	}
	return data[key]
}

// checkInProgress refuses to store a new session when its requester (or,
// without one, its client address) has MaxInProgress sessions in
// progress; the 429 says when the first of them expires.
func (e *Engine) checkInProgress(ctx context.Context, sess *Session) error {
	limit := e.cfg.MaxInProgress
	key, byRequester := sess.clientKey, false
	if sess.Requester != "" {
		key, byRequester = sess.Requester, true
	}
	if limit <= 0 || key == "" {
		return nil
	}
	n, oldest, err := e.store.InProgressUIASessions(ctx, key, byRequester)
	if err != nil {
		return matrix.Internal(err)
	}
	if n < int64(limit) {
		return nil
	}
	who := "from this address"
	if byRequester {
		who = "of this account"
	}
	return &matrix.Error{Status: http.StatusTooManyRequests, Code: matrix.CodeLimitExceeded,
		Message:      "Too many authentication sessions in progress " + who + "; finish one or wait",
		RetryAfterMS: max(oldest-e.cfg.Now().UnixMilli(), 1)}
}

// save creates or updates the session; a concurrent change of the same
// session makes this request fail with a retryable 409 without losing the
// other's work.
func (e *Engine) save(ctx context.Context, sess *Session) error {
	if !sess.stored && !sess.complete {
		if err := e.checkInProgress(ctx, sess); err != nil {
			return err
		}
	}
	row := e.Row(sess)
	if !sess.stored {
		err := e.store.CreateUIASession(ctx, row)
		if errors.Is(err, db.ErrConflict) {
			return errConflict
		}
		if err != nil {
			return matrix.Internal(err)
		}
		sess.stored = true
		return nil
	}
	err := e.store.UpdateUIASession(ctx, row)
	if errors.Is(err, db.ErrConflict) {
		return errConflict
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
func (e *Engine) challenge(sess *Session, flows [][]string, failure *Failure) *matrix.Challenge {
	body := api.AuthResponse{Flows: make([]api.AuthFlow, 0, len(flows)), Session: &sess.ID}
	params := map[string]map[string]any{}
	for _, f := range flows {
		body.Flows = append(body.Flows, api.AuthFlow{Stages: f})
		for _, t := range f {
			if st, ok := e.stages[t]; ok {
				if p := st.Params(); p != nil {
					params[t] = p
				}
			}
		}
	}
	body.Params = &params
	completed := orEmpty(sess.Completed)
	body.Completed = &completed
	code := ""
	if failure != nil {
		body.Errcode = &failure.Code
		body.Error = &failure.Message
		code = failure.Code
	}
	return &matrix.Challenge{Body: body, Code: code}
}

// The legacy r0 and the v3 prefix of the client-server API.
const (
	V3Prefix = "/_matrix/client/v3/"
	R0Prefix = "/_matrix/client/r0/"
)

// NormalisePath makes the legacy r0 and the v3 path of an endpoint equal.
func NormalisePath(p string) string {
	if rest, ok := strings.CutPrefix(p, R0Prefix); ok {
		return V3Prefix + rest
	}
	return p
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

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
