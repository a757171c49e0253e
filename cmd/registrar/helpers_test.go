package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"registrar/db"
	"registrar/db/dbtest"
	"registrar/impl/config"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
)

// startServe runs the real serve path on a loopback port with the given
// environment and returns its address; it stops with the test.
func startServe(t *testing.T, env map[string]string) string {
	t.Helper()
	return startServeAt(t, env, "127.0.0.1:0")
}

// startServeAt is startServe on a given address.
func startServeAt(t *testing.T, env map[string]string, addr string) string {
	t.Helper()
	for k, v := range serverEnv(t) {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-listen", addr}, envFrom(env), nil, io.Discard, io.Discard, ready)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case addr := <-ready:
		return addr
	case err := <-done:
		t.Fatalf("serve exited early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	return ""
}

const versionsRequest = "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n"

// answered reports whether conn gets a response within d.
func answered(t *testing.T, conn net.Conn, d time.Duration) bool {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// cli runs the binary's run function with a temp data directory.
type cli struct {
	t   *testing.T
	env map[string]string
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, env: serverEnv(t)}
}

func (c *cli) run(stdin string, args ...string) (string, error) {
	c.t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, envFrom(c.env), strings.NewReader(stdin), &out, io.Discard, nil)
	return out.String(), err
}

// serverEnv is the environment of a server run by a test: a fresh data
// directory and a fresh database of the engine under test.
func serverEnv(t *testing.T) map[string]string {
	env := dbtest.New(t).ConfigEnv()
	env["REGISTRAR_DATA_DIRECTORY"] = t.TempDir()
	return env
}

func withDataDir(env map[string]string, dir string) map[string]string {
	env["REGISTRAR_DATA_DIRECTORY"] = dir
	return env
}

// portConfig is an open-registration server config with a fixed key.
func portConfig(dir string) config.Config {
	cfg := config.Default()
	cfg.ServerName = "example.org"
	cfg.DataDirectory = dir
	cfg.EnableRegistration, cfg.EnableRegistrationWithoutVerification, cfg.RegistrationRequiresToken = true, true, true
	cfg.MacaroonSecretKey = "a key both databases are served with"
	cfg.PasswordConfig.Argon2.MemoryKiB, cfg.PasswordConfig.Argon2.Iterations = 64, 1
	cfg.AccessLog = false
	return cfg
}

type client struct {
	t *testing.T
	h http.Handler
}

func (c client) do(method, path, body, token string) map[string]any {
	c.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	out := map[string]any{"status": float64(rec.Code)}
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	out["status"] = float64(rec.Code)
	return out
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

// jsClientDir is where the matrix-js-sdk flows and their pinned
// node_modules (make test installs them with npm ci) live.
const jsClientDir = "testdata/jsclient"

// node skips the test where node or the installed SDK is missing, except
// in CI (.ci/run sets CI), where that is a failure.
func node(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("node")
	if err == nil {
		if _, err = os.Stat(filepath.Join(jsClientDir, "node_modules", "matrix-js-sdk")); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("node or matrix-js-sdk missing (make test runs npm ci in %s): %v", jsClientDir, err)
	}
	t.Skipf("node or matrix-js-sdk missing (make test runs npm ci in %s)", jsClientDir)
	return ""
}

// runJS runs a scenario of flows.mjs against base and returns what it
// printed.
func runJS(t *testing.T, scenario, base, arg string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node(t), "flows.mjs", scenario, base, arg)
	cmd.Dir = jsClientDir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("matrix-js-sdk %s: %v\n%s", scenario, err, stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(stdout.String()), &out); err != nil {
		t.Fatalf("matrix-js-sdk %s printed %q", scenario, stdout.String())
	}
	return out
}

// mautrixServer starts the real server with the environment extra and
// returns a mautrix client of it and the server's database.
func mautrixServer(t *testing.T, extra map[string]string) (*mautrix.Client, *db.Store, map[string]string) {
	t.Helper()
	env := serverEnv(t)
	env["REGISTRAR_ENABLE_REGISTRATION"] = "true"
	env["REGISTRAR_ENABLE_REGISTRATION_WITHOUT_VERIFICATION"] = "true"
	env["REGISTRAR_ALLOW_GUEST_ACCESS"] = "true"
	env["REGISTRAR_PASSWORD_CONFIG__ARGON2__MEMORY_KIB"] = "64"
	env["REGISTRAR_PASSWORD_CONFIG__ARGON2__ITERATIONS"] = "1"
	// One client logs in more often than Synapse's rc_login allows.
	env["REGISTRAR_RC_LOGIN__ADDRESS__BURST_COUNT"] = "100"
	env["REGISTRAR_RC_LOGIN__ACCOUNT__BURST_COUNT"] = "100"
	for k, v := range extra {
		env[k] = v
	}
	addr := startServe(t, env)
	cli, err := mautrix.NewClient("http://"+addr, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return cli, openStore(t, env), env
}

// openStore opens the database of a server's environment.
func openStore(t *testing.T, env map[string]string) *db.Store {
	t.Helper()
	cfg, err := config.Load("", envFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	store, err := db.Open(context.Background(), cfg.DatabaseDSN(), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// uia makes a request of a User-Interactive Authentication endpoint
// through mautrix: the first request gets the session, the second sends
// auth with it.
func uia(t *testing.T, cli *mautrix.Client, url string, body map[string]any, auth map[string]any) error {
	t.Helper()
	ctx := context.Background()
	contents, err := cli.MakeRequest(ctx, http.MethodPost, url, body, nil)
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response.StatusCode != 401 {
		t.Fatalf("first request: want a 401 challenge, got %v", err)
	}
	var challenge mautrix.RespUserInteractive
	if err := json.Unmarshal(contents, &challenge); err != nil || challenge.Session == "" {
		t.Fatalf("challenge %q: %v", contents, err)
	}
	auth["session"] = challenge.Session
	body["auth"] = auth
	_, err = cli.MakeRequest(ctx, http.MethodPost, url, body, nil)
	return err
}

func errcode(err error) string {
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.RespError != nil {
		return httpErr.RespError.ErrCode
	}
	return ""
}

func stages(c *mautrix.RespUserInteractive) []string {
	var out []string
	for _, s := range c.Flows[0].Stages {
		out = append(out, string(s))
	}
	return out
}

func mautrixRegistration(user, password string) *mautrix.ReqRegister[any] {
	return &mautrix.ReqRegister[any]{Username: user, Password: password}
}
