package impl_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"registrar/db"
	"registrar/impl"
	"registrar/impl/config"
	"registrar/impl/passwords"
	"registrar/impl/ratelimit"
)

// testClock is a settable clock shared by the server and the store.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testEnv is a server over a real SQLite file in a temp directory.
type testEnv struct {
	t      testing.TB
	cfg    config.Config
	dbPath string
	store  *db.Store
	server *impl.Server
	clock  *testClock
}

// testConfig is an open-registration config with a cheap password hash.
func testConfig() config.Config {
	cfg := config.Default()
	cfg.ServerName = "example.org"
	cfg.PublicBaseURL = "https://matrix.example.org/"
	cfg.EnableRegistration = true
	cfg.EnableRegistrationWithoutVerification = true
	cfg.AllowGuestAccess = true
	cfg.AccessLog = false
	cfg.MacaroonSecretKey = "test-secret-key-0123456789"
	cfg.PasswordConfig.Argon2 = passwords.Argon2Config{MemoryKiB: 64, Iterations: 1, Parallelism: 1}
	cfg.BcryptRounds = 4
	// Rate limits are off unless a test turns one on.
	cfg.RcRegistration = ratelimit.Rate{}
	cfg.RcLogin = config.LoginRateLimits{}
	cfg.Rc3PIDValidation = ratelimit.Rate{}
	cfg.RcRegistrationTokenValidity = ratelimit.Rate{}
	cfg.RcUsernameAvailability = ratelimit.Rate{}
	cfg.RcUIAStart = ratelimit.Rate{}
	return cfg
}

func newEnv(t testing.TB, mutate ...func(*config.Config)) *testEnv {
	t.Helper()
	cfg := testConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	env := &testEnv{t: t, cfg: cfg, dbPath: filepath.Join(t.TempDir(), "registrar.db"),
		clock: &testClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	env.open()
	return env
}

// open (re)opens the store and builds a server on it.
func (e *testEnv) open() {
	e.t.Helper()
	store, err := db.Open(context.Background(), e.dbPath, db.Options{Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { store.Close() })
	srv, err := impl.NewServer(e.cfg, store, impl.Options{Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store, e.server = store, srv
}

// restart closes the store and opens a new server on the same file.
func (e *testEnv) restart() {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// response is a decoded reply.
type response struct {
	notJSON bool
	Status  int
	Header  http.Header
	Body    map[string]any
	Raw     string
}

func (r response) str(key string) string {
	s, _ := r.Body[key].(string)
	return s
}

// requestOptions adjust a test request.
type requestOptions struct {
	remote string
	quiet  bool
}

// do sends a request through the full HTTP stack. body is sent as is;
// header pairs follow.
func (e *testEnv) do(method, path, body string, header ...string) response {
	e.t.Helper()
	return e.doWith(nil, method, path, body, header...)
}

func (e *testEnv) doWith(opt func(*requestOptions), method, path, body string, header ...string) response {
	var o requestOptions
	if opt != nil {
		opt(&o)
	}
	if !o.quiet {
		e.t.Helper()
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if o.remote != "" {
		req.RemoteAddr = o.remote
	}
	rec := httptest.NewRecorder()
	e.server.ServeHTTP(rec, req)
	res := response{Status: rec.Code, Header: rec.Header(), Raw: rec.Body.String()}
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &res.Body); err != nil {
			res.notJSON = true
			if !o.quiet {
				e.t.Fatalf("%s %s: response is not a JSON object: %q", method, path, rec.Body.String())
			}
		}
	}
	return res
}

// doQuiet is do that reports a non-JSON body in the response instead of
// failing (fuzzing runs outside the test that built the env).
func (e *testEnv) doQuiet(method, path, body string, header ...string) response {
	return e.doWith(func(o *requestOptions) { o.quiet = true }, method, path, body, header...)
}

// expect checks status and errcode ("" = no errcode expected).
func (r response) expect(t *testing.T, status int, errcode string) response {
	t.Helper()
	if r.Status != status || r.str("errcode") != errcode {
		t.Fatalf("got %d %s, want %d %s; body %s", r.Status, r.str("errcode"), status, errcode, r.Raw)
	}
	if errcode != "" {
		if _, ok := r.Body["error"].(string); !ok {
			t.Fatalf("error body without an error message: %s", r.Raw)
		}
	}
	return r
}

func jsonBody(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// register runs the dummy flow in one step and returns the response.
func (e *testEnv) register(username, password string, extra ...map[string]any) response {
	e.t.Helper()
	body := map[string]any{"username": username, "password": password, "auth": map[string]any{"type": "m.login.dummy"}}
	for _, x := range extra {
		for k, v := range x {
			body[k] = v
		}
	}
	return e.do("POST", "/_matrix/client/v3/register", jsonBody(body))
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

// concurrently runs f(0..n-1) at once, released together, and returns the
// responses in order.
func concurrently(n int, f func(i int) response) []response {
	results := make([]response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			results[i] = f(i)
		}(i)
	}
	close(start)
	wg.Wait()
	return results
}

// tableDump returns every row of table as text, one line per row, read
// straight from the database file.
func (e *testEnv) tableDump(table string) string {
	e.t.Helper()
	conn, err := sql.Open("sqlite3", "file:"+e.dbPath+"?mode=ro")
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query("SELECT * FROM " + table)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			e.t.Fatal(err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			fmt.Fprintf(&out, "%s=%v ", cols[i], v)
		}
		out.WriteString("\n")
	}
	return out.String()
}

func ptr[T any](v T) *T { return &v }
