package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"registrar/db/dbtest"
	"strings"
	"testing"
	"time"
)

// TestServeStartsAndStopsCleanly runs the real serve path on a loopback
// port, makes a request, and shuts down with a request in flight allowed
// to finish.
func TestServeStartsAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "-listen", "127.0.0.1:0"},
			envFrom(withDataDir(serverEnv(t), dir)), nil, io.Discard, &logs, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve exited early: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	resp, err := http.Get("http://" + addr + "/_matrix/client/versions")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"versions"`) {
		t.Fatalf("versions: %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "registrar.db")); err != nil && !dbtest.Postgres() {
		t.Errorf("no SQLite database in the data directory: %v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"request"`) {
		t.Errorf("no access log line: %s", logs.String())
	}
}

func TestBadConfigIsOneLineAndUsageError(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown option", []string{"-config", write("a.yaml", "server_nam: x\n")}, nil, "server_nam"},
		{"open registration", nil, map[string]string{"REGISTRAR_ENABLE_REGISTRATION": "true"}, "enable_registration_without_verification"},
		{"bad server name", nil, map[string]string{"REGISTRAR_SERVER_NAME": "bad name!"}, "server_name"},
		{"bad bool env", nil, map[string]string{"REGISTRAR_ALLOW_GUEST_ACCESS": "maybe"}, "REGISTRAR_ALLOW_GUEST_ACCESS"},
		{"bad regex", []string{"-config", write("b.yaml", "forbidden_usernames: ['(']\n")}, nil, "forbidden_usernames"},
		{"bad duration", nil, map[string]string{"REGISTRAR_UI_AUTH__SESSION_LIFETIME": "soon"}, "REGISTRAR_UI_AUTH__SESSION_LIFETIME"},
		{"unknown command", []string{"frobnicate"}, nil, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"REGISTRAR_DATA_DIRECTORY": dir}
			for k, v := range tc.env {
				env[k] = v
			}
			err := run(context.Background(), tc.args, envFrom(env), nil, io.Discard, io.Discard, nil)
			var u usageError
			if !errors.As(err, &u) {
				t.Fatalf("got %v, want a usage error", err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
				t.Fatalf("message %q should be one line naming %q", msg, tc.want)
			}
		})
	}
}

func TestGenerateConfigIsLoadable(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"generate-config"}, envFrom(nil), nil, &out, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-config", p, "-listen", "127.0.0.1:0"},
			envFrom(withDataDir(serverEnv(t), dir)), nil, io.Discard, io.Discard, ready)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("example config does not start: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestShutdownFinishesInFlightRequests stops the server while a
// registration is hashing its password (a deliberately slow hash): the
// client still gets its 200.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	env := serverEnv(t)
	env["REGISTRAR_ENABLE_REGISTRATION"] = "true"
	env["REGISTRAR_ENABLE_REGISTRATION_WITHOUT_VERIFICATION"] = "true"
	env["REGISTRAR_PASSWORD_CONFIG__ARGON2__ITERATIONS"] = "100"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0"}, envFrom(env), nil, io.Discard, io.Discard, ready)
	}()
	addr := <-ready
	type result struct {
		status int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		body := strings.NewReader(`{"username":"inflight","password":"pw-inflight-1","auth":{"type":"m.login.dummy"}}`)
		resp, err := http.Post("http://"+addr+"/_matrix/client/v3/register", "application/json", body)
		if err != nil {
			res <- result{err: err}
			return
		}
		resp.Body.Close()
		res <- result{status: resp.StatusCode}
	}()
	time.Sleep(300 * time.Millisecond) // the request is in, its hash takes seconds
	cancel()
	r := <-res
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("in-flight request: %d %v", r.status, r.err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestAccessLogCanBeTurnedOff(t *testing.T) {
	for _, on := range []string{"true", "false"} {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan string, 1)
		done := make(chan error, 1)
		var logs bytes.Buffer
		env := serverEnv(t)
		env["REGISTRAR_ACCESS_LOG"] = on
		go func() {
			done <- run(ctx, []string{"-listen", "127.0.0.1:0"}, envFrom(env), nil, io.Discard, &logs, ready)
		}()
		addr := <-ready
		resp, err := http.Get("http://" + addr + "/_matrix/client/versions")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), `"msg":"request"`); got != (on == "true") {
			t.Fatalf("access_log %s: request lines logged = %v", on, got)
		}
	}
}
