package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"registrar/db/dbtest"
)

// need skips the test when a component is missing, except under CI=1
// (.ci/run installs every one), where it fails.
func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI: %v", what, err)
	}
	t.Skipf("%s is missing: %v", what, err)
}

// synapseTools is the folder with Synapse 1.94's wheels and install
// script: REGISTRAR_SYNAPSE_TOOLS, or ../shared/tools/synapse-1.94 beside
// the repository.
func synapseTools() (string, error) {
	candidates := []string{os.Getenv("REGISTRAR_SYNAPSE_TOOLS")}
	if wd, err := os.Getwd(); err == nil {
		root := filepath.Dir(filepath.Dir(wd)) // cmd/registrar -> the repository
		candidates = append(candidates, filepath.Join(filepath.Dir(root), "shared", "tools", "synapse-1.94"))
	}
	candidates = append(candidates, "/work/shared/tools/synapse-1.94")
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(c, "install.sh")); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("no synapse-1.94 folder with install.sh (set REGISTRAR_SYNAPSE_TOOLS); looked in %v", candidates[1:])
}

// synapsePython installs Synapse 1.94 into a virtualenv in the user's
// cache (once per machine, under a lock) and returns its python.
func synapsePython(t *testing.T) string {
	t.Helper()
	tools, err := synapseTools()
	need(t, "Synapse 1.94 (../shared/tools/synapse-1.94)", err)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	venv := filepath.Join(cache, "registrar", "synapse-1.94")
	python := filepath.Join(venv, "bin", "python")
	if err := os.MkdirAll(filepath.Dir(venv), 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(venv+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if exec.Command(python, "-c", "import synapse.app.homeserver").Run() == nil {
		return python
	}
	t.Logf("installing Synapse 1.94 into %s", venv)
	out, err := exec.Command(filepath.Join(tools, "install.sh"), venv).CombinedOutput()
	need(t, "Synapse 1.94's install ("+string(out)+")", err)
	return python
}

// synapse is a real Synapse 1.94 started for a test, delegating
// authentication (MSC3861) to registrar.
type synapse struct {
	t       *testing.T
	python  string
	dir     string
	port    int
	base    string
	cmd     *exec.Cmd
	logPath string
}

// synapseDelegation is what Synapse's msc3861 section says.
type synapseDelegation struct {
	Issuer, ClientID, ClientSecret, AdminToken, AccountURL string
}

// synapseConfig is what a test's Synapse is configured with: delegation
// to registrar, or on its own (registration open, with a shared secret
// and refreshable tokens); SQLite, or PostgreSQL with Postgres set.
type synapseConfig struct {
	Delegation *synapseDelegation
	Pepper     string
	// Postgres is the database name on 127.0.0.1:5432 (trust auth).
	Postgres string
}

// startSynapse writes a homeserver.yaml (server name localhost, one
// loopback listener) and starts Synapse on port.
func startSynapse(t *testing.T, port int, d synapseDelegation) *synapse {
	t.Helper()
	return startSynapseWith(t, port, synapseConfig{Delegation: &d})
}

func startSynapseWith(t *testing.T, port int, c synapseConfig) *synapse {
	t.Helper()
	s := &synapse{t: t, python: synapsePython(t), dir: t.TempDir(), port: port, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.logPath = filepath.Join(s.dir, "homeserver.log")
	s.configure(c)
	if out, err := exec.Command(s.python, "-m", "synapse.app.homeserver", "-c", filepath.Join(s.dir, "homeserver.yaml"),
		"--generate-keys").CombinedOutput(); err != nil {
		t.Fatalf("synapse --generate-keys: %v\n%s", err, out)
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// configure writes the configuration files of c.
func (s *synapse) configure(c synapseConfig) {
	s.t.Helper()
	database := fmt.Sprintf("{name: sqlite3, args: {database: %s/homeserver.db}}", s.dir)
	if c.Postgres != "" {
		database = fmt.Sprintf("{name: psycopg2, args: {user: postgres, database: %s, host: 127.0.0.1, port: 5432, cp_min: 1, cp_max: 5}}", c.Postgres)
	}
	cfg := fmt.Sprintf(`server_name: localhost
pid_file: %[1]s/homeserver.pid
public_baseurl: %[2]s/
listeners:
  - port: %[3]d
    bind_addresses: ['127.0.0.1']
    type: http
    x_forwarded: true
    resources: [{names: [client], compress: false}]
database: %[4]s
log_config: %[1]s/log.yaml
media_store_path: %[1]s/media
signing_key_path: %[1]s/signing.key
trusted_key_servers: []
suppress_key_server_warning: true
report_stats: false
macaroon_secret_key: test-macaroon-secret-key-0123456789
form_secret: test-form-secret-0123456789
rc_message: {per_second: 1000, burst_count: 1000}
rc_joins: {local: {per_second: 1000, burst_count: 1000}}
rc_login: {address: {per_second: 1000, burst_count: 1000}, account: {per_second: 1000, burst_count: 1000}}
rc_registration: {per_second: 1000, burst_count: 1000}
`, s.dir, s.base, s.port, database)
	if d := c.Delegation; d != nil {
		cfg += fmt.Sprintf(`enable_registration: false
password_config: {enabled: false, pepper: %[6]q}
experimental_features:
  msc3861:
    enabled: true
    issuer: %[1]q
    client_id: %[2]q
    client_auth_method: client_secret_basic
    client_secret: %[3]q
    admin_token: %[4]q
    account_management_url: %[5]q
`, d.Issuer, d.ClientID, d.ClientSecret, d.AdminToken, d.AccountURL, c.Pepper)
	} else {
		cfg += fmt.Sprintf(`enable_registration: true
enable_registration_without_verification: true
registration_shared_secret: %q
password_config: {enabled: true, pepper: %q}
refreshable_access_token_lifetime: 30m
bcrypt_rounds: 4
`, synapseSharedSecret, c.Pepper)
	}
	logCfg := fmt.Sprintf(`version: 1
formatters: {precise: {format: '%%(asctime)s %%(name)s %%(levelname)s %%(message)s'}}
handlers: {file: {class: logging.FileHandler, formatter: precise, filename: %s}}
root: {level: INFO, handlers: [file]}
disable_existing_loggers: false
`, s.logPath)
	for name, body := range map[string]string{"homeserver.yaml": cfg, "log.yaml": logCfg} {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o600); err != nil {
			s.t.Fatal(err)
		}
	}
}

// synapseSharedSecret is a standalone test Synapse's registration shared
// secret.
const synapseSharedSecret = "synapse-shared-secret-0123456789"

// start runs Synapse and waits until it serves /versions.
func (s *synapse) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.python, "-m", "synapse.app.homeserver", "-c", filepath.Join(s.dir, "homeserver.yaml"))
	var stderr bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, &stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			s.t.Fatalf("Synapse exited: %v\n%s\n%s", err, stderr.String(), s.logTail())
		default:
		}
		if resp, err := http.Get(s.base + "/_matrix/client/versions"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				go func() { <-exited }()
				return
			}
		}
		time.Sleep(100 * time.Millisecond) // polling for the process to come up
	}
	s.t.Fatalf("Synapse did not start in 90 s\n%s", s.logTail())
}

// stop stops Synapse (SIGTERM, then SIGKILL).
func (s *synapse) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = s.cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
	}
	s.cmd = nil
}

func (s *synapse) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// adminCall calls Synapse's admin API with the admin token.
func (s *synapse) adminCall(method, path, token string, body any) (int, map[string]any) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, r)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// eventually polls cond (the background delivery works on its own
// clock) until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s", what)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition, not waiting for one
	}
}

// nginxFront runs the real nginx with contrib/nginx/registrar.conf, its
// upstreams pointed at registrar and Synapse, on port.
func nginxFront(t *testing.T, port, registrarPort, synapsePort int) {
	t.Helper()
	path, err := exec.LookPath("nginx")
	if err != nil {
		if p := "/usr/sbin/nginx"; fileExists(p) {
			path, err = p, nil
		}
	}
	need(t, "nginx (Debian package nginx)", err)
	site, err := os.ReadFile("../../contrib/nginx/registrar.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("server 127.0.0.1:8008;", fmt.Sprintf("server 127.0.0.1:%d;", registrarPort),
		"server 127.0.0.1:8009;", fmt.Sprintf("server 127.0.0.1:%d;", synapsePort),
		"listen 8448;", fmt.Sprintf("listen 127.0.0.1:%d;", port)).Replace(string(site))
	dir := t.TempDir()
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/registrar.conf;
}
`, dir)
	for name, body := range map[string]string{"nginx.conf": main, "registrar.conf": conf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(path, "-t", "-c", filepath.Join(dir, "nginx.conf"), "-p", dir).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(path, "-c", filepath.Join(dir, "nginx.conf"), "-p", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	eventually(t, "nginx answers", func() bool {
		resp, err := http.Get(base + "/_registrar/oauth2/keys")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

var _ = dbtest.Postgres

// startServeConfig runs the real serve path with a configuration file on
// addr; it stops with the test.
func startServeConfig(t *testing.T, env map[string]string, configPath, addr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "-config", configPath, "-listen", addr}, envFrom(env), nil, io.Discard, &syncWriter{w: &logs}, ready)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("registrar's log (%s):\n%s", addr, tail(logs.String(), 8000))
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve exited early: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// syncWriter serialises writes to w (the server logs from many
// goroutines).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
