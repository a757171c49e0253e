package impl_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"registrar/api"
	"registrar/db"
	"registrar/db/dbtest"
	"registrar/impl"
	"registrar/impl/accounts"
	"registrar/impl/config"
	"registrar/impl/logging"
	"registrar/impl/matrix"
	"registrar/impl/passwords"
	"registrar/impl/ratelimit"

	"github.com/emersion/go-smtp"
	"github.com/getkin/kin-openapi/openapi3"
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

// testEnv is a server over a fresh database of the engine under test (a
// real SQLite file in a temp directory, or a PostgreSQL schema).
type testEnv struct {
	t      testing.TB
	cfg    config.Config
	db     dbtest.Database
	store  *db.Store
	server *impl.Server
	clock  *testClock
	// logs, when set before open, receives the server's logs as JSON
	// lines at debug level.
	logs io.Writer
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
	cfg.OAuth.RcClientRegistration = ratelimit.Rate{}
	cfg.OAuth.RcDeviceAuthorization = ratelimit.Rate{}
	cfg.OAuth.RcUserCode = ratelimit.Rate{}
	cfg.OAuth.RcAuthorization = ratelimit.Rate{}
	return cfg
}

func newEnv(t testing.TB, mutate ...func(*config.Config)) *testEnv {
	t.Helper()
	cfg := testConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	env := &testEnv{t: t, cfg: cfg, db: dbtest.New(t),
		clock: &testClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	env.open()
	return env
}

// open (re)opens the store and builds a server on it.
func (e *testEnv) open() {
	e.t.Helper()
	store := e.db.Open(e.t, e.clock.Now)
	var logs slog.Handler = slog.NewTextHandler(io.Discard, nil)
	if e.logs != nil {
		logs = logging.New("json", slog.LevelDebug, logging.NewOutput(e.logs, 0))
	}
	srv, err := impl.NewServer(e.cfg, store, impl.Options{Now: e.clock.Now, Logger: slog.New(logs)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store, e.server = store, srv
}

// twin is another server (instance) on the same database and config.
func (e *testEnv) twin() *testEnv {
	e.t.Helper()
	b := &testEnv{t: e.t, cfg: e.cfg, db: e.db, clock: e.clock}
	b.open()
	return b
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

// tableDump returns every row of table as text, one line per row.
func (e *testEnv) tableDump(table string) string {
	e.t.Helper()
	return e.db.Dump(e.t, table)
}

func ptr[T any](v T) *T { return &v }

const (
	passwordURL   = "/_matrix/client/v3/account/password"
	deactivateURL = "/_matrix/client/v3/account/deactivate"
)

func passwordAuth(user, password, session string) map[string]any {
	a := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": user}, "password": password}
	if session != "" {
		a["session"] = session
	}
	return a
}

// benchRequest drives one request through the handler as net/http would
// hand it over (body without GetBody, Content-Length set).
func benchRequest(b *testing.B, h http.Handler, method, target, body string, header ...string) {
	b.Helper()
	b.ReportAllocs()
	// A served request's context is cancelled when its connection goes:
	// what it costs to follow that is part of the request's cost.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for b.Loop() {
		var req *http.Request
		if body != "" {
			req = httptest.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		} else {
			req = httptest.NewRequestWithContext(ctx, method, target, nil)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			b.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
	}
}

func newBenchEnv(b *testing.B) *testEnv { return newEnv(b) }

// chromium returns Debian's Chromium, skipping the test where it is not
// installed (CI installs it, and there its absence is a failure).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run installs Debian's chromium package")
	}
	t.Skip("chromium is not installed")
	return ""
}

// siteverify is a loopback stand-in for reCAPTCHA/hCaptcha/Turnstile's
// siteverify API; "good" is the only accepted response.
type siteverify struct {
	mu       sync.Mutex
	remoteIP []string
	server   *httptest.Server
}

func newSiteverify(t *testing.T) *siteverify {
	sv := &siteverify{}
	sv.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		sv.mu.Lock()
		sv.remoteIP = append(sv.remoteIP, r.PostForm.Get("remoteip"))
		sv.mu.Unlock()
		ok := r.PostForm.Get("secret") == "captcha-secret" && r.PostForm.Get("response") == "good"
		_ = json.NewEncoder(w).Encode(map[string]any{"success": ok})
	}))
	t.Cleanup(sv.server.Close)
	return sv
}

func captchaConfig(sv *siteverify) func(*config.Config) {
	return func(c *config.Config) {
		c.EnableRegistrationCaptcha = true
		c.EnableRegistrationWithoutVerification = false
		c.Captcha.RecaptchaPublicKey = "captcha-public"
		c.Captcha.RecaptchaPrivateKey = "captcha-secret"
		c.Captcha.RecaptchaSiteverifyAPI = sv.server.URL
	}
}

func (e *testEnv) page(method, path, form string) (int, string) {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(form))
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	rec := httptest.NewRecorder()
	e.server.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// checkMatrixResponse fails on a 5xx or on an error that is not a Matrix
// error (a 401 of User-Interactive Authentication carries flows instead).
func checkMatrixResponse(t *testing.T, body string, r response) {
	t.Helper()
	if r.notJSON && r.Status < 400 && strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		return // a page
	}
	if r.notJSON {
		t.Fatalf("%q: response is not a JSON object: %d %q", body, r.Status, r.Raw)
	}
	if r.Status >= 500 {
		t.Fatalf("%q: %d %s", body, r.Status, r.Raw)
	}
	if r.Status < 400 {
		return
	}
	if r.Status == 401 {
		if _, ok := r.Body["flows"].([]any); ok {
			return
		}
	}
	code, _ := r.Body["errcode"].(string)
	if _, ok := r.Body["error"].(string); len(code) < 3 || !ok {
		t.Fatalf("%q: %d is not a Matrix error: %s", body, r.Status, r.Raw)
	}
}

var fuzzSeeds = []string{
	``, `{}`, `{not json`, `[]`, `null`, `"x"`, `{"username":5}`,
	`{"username":"alice","password":"pw","auth":{"type":"m.login.dummy"}}`,
	`{"username":"ALICE","password":"pw","auth":{"type":"m.login.dummy","session":"nope"}}`,
	`{"auth":{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"x"}}`,
	`{"username":"_x","password":"` + "\u0000" + `"}`,
	`{"type":"m.login.application_service","username":"bridge"}`,
	`{"guest_access_token":"abc","username":"1","password":"p"}`,
	`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"@alice:example.org"},"password":"pw"}`,
	`{"type":"m.login.password","user":"alice","password":"pw","device_id":"","refresh_token":true}`,
	`{"type":"m.login.token","token":"x"}`, `{"type":"m.login.password","identifier":{"type":"m.id.phone"}}`,
	`{"username":"a","password":"pw","device_id":"` + string(make([]byte, 300)) + `"}`,
}

// specOperation is one operation of the embedded spec, as a request line,
// with its declaration.
type specOperation struct {
	method, path string
	op           *openapi3.Operation
}

// specOperations lists every operation, path parameters filled in.
func specOperations(t testing.TB) []specOperation {
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	var ops []specOperation
	for path, item := range spec.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, specOperation{method, pathParamRE.ReplaceAllString(path, "x"), item.GetOperation(method)})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	return ops
}

var pathParamRE = regexp.MustCompile(`\{[^}]+\}`)

// checkDeclaredResponse fails on a 5xx, and on an answer that is not what
// the operation declares for its status: a declared content type, and an
// error in the operation's error format (a Matrix error or a UIA 401, an
// RFC 6749 error for the OAuth endpoints, an HTML page for the pages).
func checkDeclaredResponse(t *testing.T, o specOperation, request string, r response) {
	t.Helper()
	if r.Status >= 500 {
		t.Fatalf("%s: %d %s", request, r.Status, r.Raw)
	}
	format, _ := o.op.Extensions["x-registrar-errors"].(string)
	if o.op.Extensions["x-registrar-protocol"] != nil && format == "" {
		format = "oauth2"
	}
	got, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	declared := o.op.Responses.Status(r.Status)
	if declared == nil && r.Status >= 400 {
		declared = o.op.Responses.Default()
	}
	var types []string
	if declared != nil && declared.Value != nil {
		for ct := range declared.Value.Content {
			types = append(types, ct)
		}
	}
	switch {
	case len(types) > 0 && !slices.Contains(types, got):
		t.Fatalf("%s: %d answered %q, declared %v: %s", request, r.Status, got, types, r.Raw)
	case r.Status < 400:
		if declared == nil && r.Status != http.StatusNotModified {
			t.Fatalf("%s: undeclared %d: %s", request, r.Status, r.Raw)
		}
		return
	case format == "html" && got == "text/html":
		return
	case got != "application/json" || r.notJSON:
		t.Fatalf("%s: %d error is not JSON (%q): %s", request, r.Status, got, r.Raw)
	case format == "oauth2" && (r.str("error") != "" || r.str("errcode") == matrix.CodeUnrecognized):
		return // an RFC 6749 error, or the API is off
	case format == "oauth2":
		t.Fatalf("%s: %d is not an OAuth error: %s", request, r.Status, r.Raw)
	}
	if r.Status == 401 {
		if _, ok := r.Body["flows"].([]any); ok {
			return
		}
	}
	if code := r.str("errcode"); len(code) < 3 || r.Body["error"] == nil {
		t.Fatalf("%s: %d is not a Matrix error: %s", request, r.Status, r.Raw)
	}
}

var querySeeds = []string{"", "%zz", "a=%zz", "session=%zz", "a;b", "access_token=%", "username=%ff%fe", "kind=guest&kind=user",
	"access_token=x&access_token=y", "session=" + strings.Repeat("A", 3000), "sid=1&client_secret=%00&token=x"}

// doFrom sends a request from the given peer address.
func (e *testEnv) doFrom(ip, method, path, body string, header ...string) response {
	e.t.Helper()
	return e.doWith(func(r *requestOptions) { r.remote = ip + ":5555" }, method, path, body, header...)
}

const registerURL = "/_matrix/client/v3/register"

const tokensURL = "/_synapse/admin/v1/registration_tokens"

// adminToken creates a server admin with the operator API and logs it in.
func (e *testEnv) adminToken(name string) string {
	e.t.Helper()
	a, err := impl.NewAdmin(e.cfg, e.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := a.Accounts.Create(context.Background(), accounts.NewAccount{Source: accounts.SourceOperator, Localpart: name,
		Password: ptr("pw-" + name + "-admin"), Admin: true}); err != nil {
		e.t.Fatal(err)
	}
	r := e.do("POST", loginURL, loginBody(name, "pw-"+name+"-admin"))
	if r.Status != 200 {
		e.t.Fatalf("admin login: %s", r.Raw)
	}
	return r.str("access_token")
}

func tokenRequired(c *config.Config) {
	c.RegistrationRequiresToken = true
	c.EnableRegistrationWithoutVerification = false
}

func (e *testEnv) newToken(admin, body string) string {
	e.t.Helper()
	r := e.do("POST", tokensURL+"/new", body, bearer(admin)...)
	if r.Status != 200 {
		e.t.Fatalf("new token: %s", r.Raw)
	}
	return r.str("token")
}

func (e *testEnv) tokenState(admin, token string) response {
	e.t.Helper()
	return e.do("GET", tokensURL+"/"+token, "", bearer(admin)...)
}

func stage(authType, session string, extra ...map[string]any) string {
	a := map[string]any{"type": authType, "session": session}
	for _, x := range extra {
		for k, v := range x {
			a[k] = v
		}
	}
	return jsonBody(map[string]any{"auth": a})
}

func writeAppService(t *testing.T, dir, id, token, regex string) string {
	t.Helper()
	p := filepath.Join(dir, id+".yaml")
	text := "id: " + id + "\nurl: null\nas_token: " + token + "\nhs_token: hs-" + token + "\nsender_localpart: " + id + "bot\n" +
		"namespaces:\n  users:\n    - exclusive: true\n      regex: '" + regex + "'\n  rooms: []\n  aliases: []\nrate_limited: false\n"
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// raceTrials is how many times each race is run; every trial must hold.
const raceTrials = 50

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

const (
	loginURL   = "/_matrix/client/v3/login"
	whoamiURL  = "/_matrix/client/v3/account/whoami"
	refreshURL = "/_matrix/client/v3/refresh"
)

func loginBody(user, password string, extra ...map[string]any) string {
	b := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": user}, "password": password}
	for _, x := range extra {
		for k, v := range x {
			b[k] = v
		}
	}
	return jsonBody(b)
}

func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// smtpSink is a real SMTP server on loopback that keeps what it receives.
type smtpSink struct {
	mu    sync.Mutex
	mails []sentMail
	port  int
	// arrived is signalled on each mail (for mails sent in the
	// background).
	arrived chan struct{}
}

type sentMail struct {
	To      string
	Subject string
	Text    string
	HTML    string
}

type sinkSession struct {
	sink *smtpSink
	to   string
}

func (s *sinkSession) AuthPlain(string, string) error { return nil }

func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = to; return nil }

func (s *sinkSession) Reset() {}

func (s *sinkSession) Logout() error { return nil }

func (s *sinkSession) Data(r io.Reader) error {
	msg, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	m := sentMail{To: s.to}
	dec := new(mime.WordDecoder)
	m.Subject, _ = dec.DecodeHeader(msg.Header.Get("Subject"))
	mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(msg.Body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				break
			}
			body := decodePart(p.Header.Get("Content-Transfer-Encoding"), p)
			if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
				m.HTML = body
			} else {
				m.Text = body
			}
		}
	} else {
		m.Text = decodePart(msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	}
	s.sink.mu.Lock()
	s.sink.mails = append(s.sink.mails, m)
	s.sink.mu.Unlock()
	select {
	case s.sink.arrived <- struct{}{}:
	default:
	}
	return nil
}

// wait returns the first mail that match accepts, waiting for it to
// arrive (a mail sent in the background).
func (s *smtpSink) wait(t *testing.T, match func(sentMail) bool) sentMail {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		s.mu.Lock()
		for _, m := range s.mails {
			if match(m) {
				s.mu.Unlock()
				return m
			}
		}
		s.mu.Unlock()
		select {
		case <-s.arrived:
		case <-deadline:
			t.Fatal("the mail never arrived")
		}
	}
}

func decodePart(encoding string, r io.Reader) string {
	var b []byte
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		b, _ = io.ReadAll(quotedprintable.NewReader(r))
	case "base64":
		b, _ = io.ReadAll(base64.NewDecoder(base64.StdEncoding, r))
	default:
		b, _ = io.ReadAll(r)
	}
	return string(b)
}

func newSMTPSink(t *testing.T) *smtpSink {
	sink := &smtpSink{arrived: make(chan struct{}, 64)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: sink}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink.port = ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sink
}

func (s *smtpSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mails)
}

func (s *smtpSink) last(t *testing.T) sentMail {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mails) == 0 {
		t.Fatal("no mail was sent")
	}
	return s.mails[len(s.mails)-1]
}

var linkRE = regexp.MustCompile(`https://matrix\.example\.org/(\S+submit_token\?\S+)`)

// link is the validation link of the mail, as a path on the test server.
func (m sentMail) link(t *testing.T) string {
	t.Helper()
	found := linkRE.FindStringSubmatch(m.Text)
	if found == nil {
		t.Fatalf("no validation link in %q", m.Text)
	}
	return "/" + found[1]
}

func emailConfig(sink *smtpSink) func(*config.Config) {
	return func(c *config.Config) {
		off := false
		c.Email = &config.Email{SMTPHost: "127.0.0.1", SMTPPort: sink.port, EnableTLS: &off,
			NotifFrom: "Registrar <noreply@example.org>", AppName: "TestApp"}
	}
}

func requestEmailToken(env *testEnv, path, secret, email string, attempt int) response {
	env.t.Helper()
	return env.do("POST", path, jsonBody(map[string]any{"client_secret": secret, "email": email, "send_attempt": attempt}))
}

// validateLink opens the link (GET shows the button and validates
// nothing) and submits the page's form.
func validateLink(t *testing.T, env *testEnv, link string) string {
	t.Helper()
	u, _ := url.Parse(link)
	code, page := env.page("GET", link, "")
	if code != 200 || !strings.Contains(page, `id="confirm"`) {
		t.Fatalf("confirmation page %d %s", code, page)
	}
	code, result := env.page("POST", u.Path, u.Query().Encode())
	if code != 200 {
		t.Fatalf("submit %d %s", code, result)
	}
	return result
}

func threepidAuth(authType, sid, secret, session string) map[string]any {
	a := map[string]any{"type": authType, "threepid_creds": map[string]any{"sid": sid, "client_secret": secret}}
	if session != "" {
		a["session"] = session
	}
	return a
}

const registerEmailURL = "/_matrix/client/v3/register/email/requestToken"

// smsGateway is a loopback SMS gateway recording what it is asked to send.
type smsGateway struct {
	mu   sync.Mutex
	sent []map[string]string
	auth []string
	url  string
}

func newSMSGateway(t *testing.T) *smsGateway {
	g := &smsGateway{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]string
		_ = json.NewDecoder(r.Body).Decode(&m)
		g.mu.Lock()
		g.sent = append(g.sent, m)
		g.auth = append(g.auth, r.Header.Get("Authorization"))
		g.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

// fakeIdentityServer validates phone numbers as an identity server would;
// its SMS "says" 246810.
func fakeIdentityServer(t *testing.T) string {
	var mu sync.Mutex
	validated := map[string]bool{}
	numbers := map[string]string{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_matrix/identity/api/v1/validate/msisdn/requestToken", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		_ = json.NewDecoder(r.Body).Decode(&in)
		mu.Lock()
		numbers["is-sid-1"] = "44" + strings.TrimPrefix(in["phone_number"].(string), "0")
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]string{"sid": "is-sid-1"})
	})
	mux.HandleFunc("POST /_matrix/identity/api/v1/validate/msisdn/submitToken", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		_ = json.NewDecoder(r.Body).Decode(&in)
		ok := in["token"] == "246810" && in["client_secret"] == "is-secret"
		mu.Lock()
		validated[in["sid"]] = validated[in["sid"]] || ok
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]bool{"success": ok})
	})
	mux.HandleFunc("GET /_matrix/identity/api/v1/3pid/getValidated3pid", func(w http.ResponseWriter, r *http.Request) {
		sid := r.URL.Query().Get("sid")
		mu.Lock()
		defer mu.Unlock()
		if !validated[sid] || r.URL.Query().Get("client_secret") != "is-secret" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"errcode": "M_SESSION_NOT_VALIDATED", "error": "not validated"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"medium": "msisdn", "address": numbers[sid], "validated_at": 1})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// wrongTypedBody gives every property of the operation's body a value of
// the wrong type; "" when the schema has no properties.
func wrongTypedBody(op *openapi3.Operation) string {
	mt := op.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || len(mt.Schema.Value.Properties) == 0 {
		return ""
	}
	body := map[string]any{}
	for name, prop := range mt.Schema.Value.Properties {
		if prop.Value.Type.Is("string") {
			body[name] = 12345
		} else {
			body[name] = "wrong"
		}
	}
	return jsonBody(body)
}
