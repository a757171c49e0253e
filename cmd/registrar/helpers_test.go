package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"registrar/db/dbtest"
	"registrar/impl/config"
	"strings"
	"testing"
	"time"
)

// startServe runs the real serve path on a loopback port with the given
// environment and returns its address; it stops with the test.
func startServe(t *testing.T, env map[string]string) string {
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
		done <- run(ctx, []string{"serve", "-listen", "127.0.0.1:0"}, envFrom(env), nil, io.Discard, io.Discard, ready)
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
