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

func (m *memStore) LiveUIASessions(_ context.Context, addr string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, s := range m.rows {
		if s.ClientAddr == addr && !s.Consumed && s.ExpiresAt > m.now().UnixMilli() {
			n++
		}
	}
	return n, nil
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
	f.engine, err = New(Config{Lifetime: 48 * time.Hour, MaxStoredPerAddress: maxPerAddr, Secret: []byte("0123456789abcdef0123"), Now: clock},
		f.store, f.starts, Dummy{}, f.flaky, proverStage{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var opA = Operation{http.MethodPost, "/_matrix/client/v3/account/password"}

func str(s string) *string { return &s }

func (f *fixture) run(op Operation, requester, session, authType string, flows [][]string, user ...string) (*Session, error) {
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
	for _, bad := range []string{"doesnotexist", id[:len(id)-1] + "A", id + "A"} {
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
