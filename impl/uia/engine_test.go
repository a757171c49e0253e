package uia

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
)

// memStore keeps sessions in memory with the database's semantics.
type memStore struct {
	mu   sync.Mutex
	rows map[string]db.UIASession
	now  func() time.Time
}

func (m *memStore) CreateUIASession(_ context.Context, s db.UIASession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rows[s.SessionID]; ok {
		return db.ErrConflict
	}
	m.rows[s.SessionID] = s
	return nil
}

func (m *memStore) UIASession(_ context.Context, id string) (db.UIASession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.rows[id]
	if !ok || s.ExpiresAt <= m.now().UnixMilli() {
		return s, db.ErrNotFound
	}
	return s, nil
}

func (m *memStore) UpdateUIASession(_ context.Context, s db.UIASession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.rows[s.SessionID]
	if !ok || old.Version != s.Version {
		return db.ErrConflict
	}
	s.Version++
	m.rows[s.SessionID] = s
	return nil
}

func (m *memStore) InProgressUIASessions(_ context.Context, key string, byRequester bool) (n, oldest int64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.rows {
		mine := s.ClientAddr == key && s.Requester == ""
		if byRequester {
			mine = s.Requester == key
		}
		if mine && !s.Consumed && !s.FlowComplete && s.ExpiresAt > m.now().UnixMilli() {
			n++
			if oldest == 0 || s.ExpiresAt < oldest {
				oldest = s.ExpiresAt
			}
		}
	}
	return n, oldest, nil
}

// failingStage fails until told otherwise.
type failingStage struct{ ok bool }

func (*failingStage) Type() string           { return "test.flaky" }
func (*failingStage) Params() map[string]any { return map[string]any{"k": "v"} }
func (f *failingStage) Check(context.Context, *Attempt) (string, error) {
	if !f.ok {
		return "", Fail(matrix.CodeForbidden, "nope")
	}
	return "done", nil
}

// proverStage proves whatever user the auth dict's user names.
type proverStage struct{}

func (proverStage) Type() string           { return TypePassword }
func (proverStage) Params() map[string]any { return nil }
func (proverStage) ProvesUser()            {}
func (proverStage) Check(_ context.Context, a *Attempt) (string, error) {
	return *a.Auth.User, nil
}

type countingLimiter struct{ n, max int }

func (c *countingLimiter) Take(string, time.Time) *matrix.Error {
	c.n++
	if c.n > c.max {
		return &matrix.Error{Status: http.StatusTooManyRequests, Code: matrix.CodeLimitExceeded, Message: "slow down"}
	}
	return nil
}

type fixture struct {
	t      *testing.T
	now    time.Time
	store  *memStore
	engine *Engine
	flaky  *failingStage
	starts *countingLimiter
}

func newFixture(t *testing.T, maxPerAddr int) *fixture {
	f := &fixture{t: t, now: time.Unix(1_700_000_000, 0), flaky: &failingStage{}, starts: &countingLimiter{max: 1000}}
	clock := func() time.Time { return f.now }
	f.store = &memStore{rows: map[string]db.UIASession{}, now: clock}
	var err error
	f.engine, err = New(Config{Lifetime: 48 * time.Hour, MaxInProgress: maxPerAddr, Secret: []byte("0123456789abcdef0123"), Now: clock},
		f.store, f.starts, Dummy{}, f.flaky, proverStage{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var opA = Operation{http.MethodPost, "/_matrix/client/v3/account/password"}

func str(s string) *string { return &s }

func (f *fixture) run(op Operation, requester, session, authType string, flows [][]string, user ...string) (*Session, error) {
	return f.runWith(func(*Request) {}, op, requester, session, authType, flows, user...)
}

// runWith runs a request that adjust changes first.
func (f *fixture) runWith(adjust func(*Request), op Operation, requester, session, authType string, flows [][]string, user ...string) (*Session, error) {
	auth := &api.AuthData{}
	if session != "" {
		auth.Session = &session
	}
	if authType != "" {
		auth.Type = &authType
	}
	if len(user) > 0 {
		auth.User = &user[0]
	}
	req := &Request{Op: op, Auth: auth, Flows: flows, Requester: requester, ClientIP: "192.0.2.1", ClientKey: "192.0.2.1",
		Params: []byte(`{"p":1}`)}
	adjust(req)
	sess, err := f.engine.Load(context.Background(), req)
	if err != nil {
		return nil, err
	}
	return f.engine.Authenticate(context.Background(), sess, req)
}

func challengeOf(t *testing.T, err error) api.AuthResponse {
	t.Helper()
	var c *matrix.Challenge
	if !errors.As(err, &c) {
		t.Fatalf("want a 401 challenge, got %v", err)
	}
	return c.Body.(api.AuthResponse)
}

func wantError(t *testing.T, err error, status int, code string) {
	t.Helper()
	e, ok := matrix.As(err)
	if !ok || e.Status != status || e.Code != code {
		t.Fatalf("want %d %s, got %v", status, code, err)
	}
}

func TestStartWritesNothingAndCarriesItsParams(t *testing.T) {
	f := newFixture(t, 0)
	twoStep := [][]string{{"test.flaky", TypeDummy}}
	_, err := f.run(opA, "@a:x", "", "", twoStep)
	body := challengeOf(t, err)
	if len(f.store.rows) != 0 || body.Session == nil || len(*body.Session) < 40 {
		t.Fatalf("rows %d, session %v", len(f.store.rows), body.Session)
	}
	if p := (*body.Params)["test.flaky"]; p["k"] != "v" {
		t.Fatalf("params %v", body.Params)
	}
	// A failed stage stores nothing either.
	_, err = f.run(opA, "@a:x", *body.Session, "test.flaky", twoStep)
	if b := challengeOf(t, err); b.Errcode == nil || *b.Errcode != "M_FORBIDDEN" || len(f.store.rows) != 0 {
		t.Fatalf("failure: %+v, rows %d", b, len(f.store.rows))
	}
	// Progress is stored; the session keeps the first request's params.
	f.flaky.ok = true
	_, err = f.run(opA, "@a:x", *body.Session, "test.flaky", twoStep)
	if b := challengeOf(t, err); len(*b.Completed) != 1 || len(f.store.rows) != 1 {
		t.Fatalf("progress: %+v, rows %d", b, len(f.store.rows))
	}
	sess, err := f.run(opA, "@a:x", *body.Session, TypeDummy, twoStep)
	if err != nil || string(sess.Params) != `{"p":1}` || sess.Result("test.flaky") != "done" {
		t.Fatalf("complete: %+v %v", sess, err)
	}
}

func TestSessionIsBoundToOperationAndRequester(t *testing.T) {
	f := newFixture(t, 0)
	flows := [][]string{{TypeDummy}}
	_, err := f.run(opA, "@a:x", "", "", flows)
	id := *challengeOf(t, err).Session
	other := Operation{http.MethodPost, "/_matrix/client/v3/account/deactivate"}
	_, err = f.run(other, "@a:x", id, TypeDummy, flows)
	wantError(t, err, 403, "M_FORBIDDEN")
	_, err = f.run(opA, "@b:x", id, TypeDummy, flows)
	wantError(t, err, 403, "M_FORBIDDEN")
	_, err = f.run(opA, "", id, TypeDummy, flows)
	wantError(t, err, 403, "M_FORBIDDEN")
	// The r0 path is the same operation.
	if _, err := f.run(Operation{http.MethodPost, "/_matrix/client/r0/account/password"}, "@a:x", id, TypeDummy, flows); err != nil {
		t.Fatal(err)
	}
}

func TestProvenUserMustBeTheRequester(t *testing.T) {
	f := newFixture(t, 0)
	flows := [][]string{{TypePassword}}
	_, err := f.run(opA, "@a:x", "", TypePassword, flows, "@b:x")
	wantError(t, err, 403, "M_FORBIDDEN")
	if sess, err := f.run(opA, "@a:x", "", TypePassword, flows, "@a:x"); err != nil || sess.Result(TypePassword) != "@a:x" {
		t.Fatal(err)
	}
}

func TestConsumedSessionAuthorisesNothing(t *testing.T) {
	f := newFixture(t, 0)
	flows := [][]string{{TypeDummy}}
	_, err := f.run(opA, "@a:x", "", "", flows)
	id := *challengeOf(t, err).Session
	sess, err := f.run(opA, "@a:x", id, TypeDummy, flows)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.engine.Consume(context.Background(), sess); err != nil {
		t.Fatal(err)
	}
	for _, authType := range []string{"", TypeDummy} {
		_, err = f.run(opA, "@a:x", id, authType, flows)
		wantError(t, err, 400, "M_UNKNOWN")
	}
	// Released after a failed operation, it works again.
	f.engine.Release(context.Background(), sess)
	if _, err := f.run(opA, "@a:x", id, "", flows); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestConcurrentConsumptionSpendsOnce(t *testing.T) {
	f := newFixture(t, 0)
	flows := [][]string{{TypeDummy}}
	_, err := f.run(opA, "@a:x", "", "", flows)
	id := *challengeOf(t, err).Session
	var a, b *Session
	a, _ = f.run(opA, "@a:x", id, TypeDummy, flows)
	b, _ = f.run(opA, "@a:x", id, TypeDummy, flows)
	if err := f.engine.Consume(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	wantError(t, f.engine.Consume(context.Background(), b), 409, "M_UNKNOWN")
}

func TestForgedExpiredAndUnknownSessions(t *testing.T) {
	f := newFixture(t, 0)
	flows := [][]string{{TypeDummy}}
	_, err := f.run(opA, "@a:x", "", "", flows)
	id := *challengeOf(t, err).Session
	// The last character changed (to one it is not).
	last := "A"
	if strings.HasSuffix(id, last) {
		last = "B"
	}
	for _, bad := range []string{"doesnotexist", id[:len(id)-1] + last, id + "A"} {
		_, err := f.run(opA, "@a:x", bad, TypeDummy, flows)
		wantError(t, err, 400, "M_UNKNOWN")
	}
	other, _ := New(Config{Lifetime: time.Hour, Secret: []byte("another server's secret"), Now: time.Now}, f.store, nil)
	if _, err := other.LoadAny(context.Background(), id); err == nil {
		t.Fatal("a session opened under another key")
	}
	f.now = f.now.Add(48 * time.Hour)
	_, err = f.run(opA, "@a:x", id, TypeDummy, flows)
	wantError(t, err, 400, "M_UNKNOWN")
}

func TestStartsAreChargedAndStoredSessionsCapped(t *testing.T) {
	f := newFixture(t, 2)
	f.starts.max = 3
	twoStep := [][]string{{TypeDummy, "test.flaky"}}
	var ids []string
	for i := 0; i < 3; i++ {
		_, err := f.run(opA, "@a:x", "", "", twoStep)
		ids = append(ids, *challengeOf(t, err).Session)
	}
	_, err := f.run(opA, "@a:x", "", "", twoStep)
	wantError(t, err, 429, "M_LIMIT_EXCEEDED")
	for i, id := range ids {
		_, err := f.run(opA, "@a:x", id, TypeDummy, twoStep)
		if i < 2 {
			challengeOf(t, err)
		} else {
			wantError(t, err, 429, "M_LIMIT_EXCEEDED")
		}
	}
}

// TestRegistrationTokenGrammar: 1-64 characters of [A-Za-z0-9._~-].
func TestRegistrationTokenGrammar(t *testing.T) {
	for token, want := range map[string]bool{
		"": false, "a": true, "A-z_0.9~": true, strings.Repeat("t", 64): true, strings.Repeat("t", 65): false,
		"has space": false, "é": false, "a/b": false,
	} {
		if got := ValidRegistrationToken(token); got != want {
			t.Errorf("%q: %v, want %v", token, got, want)
		}
	}
}

// TestOnlySessionsInProgressAreCapped: sessions whose flow is complete or
// that were consumed never count, a logged-in user's sessions count for
// that user and not for the address, and the 429 says when a slot frees.
func TestOnlySessionsInProgressAreCapped(t *testing.T) {
	f := newFixture(t, 2)
	twoStep := [][]string{{TypeDummy, "test.flaky"}}
	oneStep := [][]string{{TypeDummy}}
	// Many completed and consumed sessions of the user: none counts.
	for i := 0; i < 5; i++ {
		sess, err := f.run(opA, "@a:x", "", TypeDummy, oneStep)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.engine.Consume(context.Background(), sess); err != nil {
			t.Fatalf("consuming session %d: %v", i, err)
		}
		_, err = f.run(opA, "@a:x", "", "", twoStep)
		sess, err = f.run(opA, "@a:x", *challengeOf(t, err).Session, TypeDummy, oneStep)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.engine.Keep(context.Background(), sess); err != nil {
			t.Fatalf("keeping completed session %d: %v", i, err)
		}
	}
	// Two in progress for @a:x, stored an hour apart.
	progress := func(requester string) error {
		_, err := f.run(opA, requester, "", "", twoStep)
		_, err = f.run(opA, requester, *challengeOf(t, err).Session, TypeDummy, twoStep)
		return err
	}
	challengeOf(t, progress("@a:x"))
	f.now = f.now.Add(time.Hour)
	challengeOf(t, progress("@a:x"))
	f.now = f.now.Add(time.Hour)
	err := progress("@a:x")
	wantError(t, err, 429, "M_LIMIT_EXCEEDED")
	if e, _ := matrix.As(err); e.RetryAfterMS != (46 * time.Hour).Milliseconds() {
		t.Fatalf("retry_after_ms %d, want the first session's expiry (46 h)", e.RetryAfterMS)
	}
	// Another user from the same address, and a registration (nobody
	// logged in) from it, are not held back by @a:x's sessions.
	challengeOf(t, progress("@b:x"))
	challengeOf(t, progress(""))
	challengeOf(t, progress(""))
	wantError(t, progress(""), 429, "M_LIMIT_EXCEEDED")
	// When the first session expires, @a:x may store another.
	f.now = f.now.Add(46*time.Hour + time.Millisecond)
	challengeOf(t, progress("@a:x"))
}

// TestKeptValuesStayOutOfTheSessionID: a kept value is stored (sealed)
// with the session from its first request, given back to the next
// request, and can be forgotten; the ID is the same size with or without
// one.
func TestKeptValuesStayOutOfTheSessionID(t *testing.T) {
	f := newFixture(t, 0)
	twoStep := [][]string{{TypeDummy, "test.flaky"}}
	keep := func(r *Request) { r.Kept = map[string]string{"password": "hunter2-secret"} }
	_, err := f.run(opA, "", "", "", twoStep)
	plainID := *challengeOf(t, err).Session
	_, err = f.runWith(keep, opA, "", "", "", twoStep)
	id := *challengeOf(t, err).Session
	if len(id) != len(plainID) {
		t.Fatalf("the session ID grew with a kept value: %d -> %d characters", len(plainID), len(id))
	}
	if len(f.store.rows) != 1 {
		t.Fatalf("a session keeping a value is stored at once: %d rows", len(f.store.rows))
	}
	for _, row := range f.store.rows {
		if strings.Contains(row.Data, "hunter2") {
			t.Fatalf("the kept value is stored in clear: %s", row.Data)
		}
	}
	sess, err := f.engine.Load(context.Background(), &Request{Op: opA, Auth: &api.AuthData{Session: &id}})
	if err != nil || sess.Kept("password") != "hunter2-secret" {
		t.Fatalf("kept %q, %v", sess.Kept("password"), err)
	}
	sess.Forget("password")
	if err := f.engine.Complete(context.Background(), sess, TypeDummy, ""); err != nil {
		t.Fatal(err)
	}
	sess, _ = f.engine.Load(context.Background(), &Request{Op: opA, Auth: &api.AuthData{Session: &id}})
	if sess.Kept("password") != "" {
		t.Fatal("a forgotten value came back")
	}
}
