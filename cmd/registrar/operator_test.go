package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRegisterUserCommand(t *testing.T) {
	c := newCLI(t)
	out, err := c.run("pw-cli-1\n", "register-user", "-u", "Carl", "-admin", "-password-stdin")
	if err != nil || strings.TrimSpace(out) != "registered @carl:localhost (admin)" {
		t.Fatalf("%q %v", out, err)
	}
	if _, err := c.run("pw-cli-1\n", "register-user", "-u", "carl", "-password-stdin"); err == nil || !strings.Contains(err.Error(), "M_USER_IN_USE") {
		t.Fatalf("duplicate: %v", err)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("pw-file-1\n"), 0o600)
	if out, err := c.run("", "register-user", "-u", "dana", "-password-file", pwFile); err != nil || !strings.Contains(out, "@dana:localhost") {
		t.Fatalf("%q %v", out, err)
	}
	var u usageError
	if _, err := c.run("", "register-user", "-u", "eve"); !errors.As(err, &u) {
		t.Fatalf("no password source: %v", err)
	}
	if _, err := c.run("", "register-user"); !errors.As(err, &u) {
		t.Fatalf("no username: %v", err)
	}
	if _, err := c.run("pw\n", "register-user", "-u", "_bad", "-password-stdin"); err == nil || !strings.Contains(err.Error(), "M_INVALID_USERNAME") {
		t.Fatalf("bad name: %v", err)
	}
}

func TestTokensCommand(t *testing.T) {
	c := newCLI(t)
	out, err := c.run("", "tokens", "new", "-token", "welcome", "-uses-allowed", "2")
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok["token"] != "welcome" || tok["uses_allowed"] != float64(2) || tok["expiry_time"] != nil {
		t.Fatalf("new: %s %v", out, err)
	}
	if out, err = c.run("", "tokens", "new", "-length", "8", "-expires-in", "24h"); err != nil || !strings.Contains(out, `"expiry_time": 1`) {
		t.Fatalf("new random: %s %v", out, err)
	}
	if out, err = c.run("", "tokens", "update", "welcome", "-uses-allowed", "null"); err != nil || !strings.Contains(out, `"uses_allowed": null`) {
		t.Fatalf("update: %s %v", out, err)
	}
	if out, err = c.run("", "tokens", "show", "welcome"); err != nil || !strings.Contains(out, `"token": "welcome"`) {
		t.Fatalf("show: %s %v", out, err)
	}
	if out, err = c.run("", "tokens", "list", "-valid", "true"); err != nil || strings.Count(out, `"token"`) != 2 {
		t.Fatalf("list: %s %v", out, err)
	}
	if out, err = c.run("", "tokens", "delete", "welcome"); err != nil || !strings.Contains(out, "deleted welcome") {
		t.Fatalf("delete: %s %v", out, err)
	}
	if _, err = c.run("", "tokens", "show", "welcome"); err == nil || !strings.Contains(err.Error(), "M_NOT_FOUND") {
		t.Fatalf("show deleted: %v", err)
	}
	var u usageError
	for _, args := range [][]string{{"tokens"}, {"tokens", "frob"}, {"tokens", "show"}, {"tokens", "new", "-uses-allowed", "many"}} {
		if _, err := c.run("", args...); !errors.As(err, &u) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if _, err := c.run("", "tokens", "new", "-token", "bad token"); err == nil || !strings.Contains(err.Error(), "M_INVALID_PARAM") {
		t.Fatalf("bad token: %v", err)
	}
}

// TestRegisterUserThroughSharedSecret registers through a running server.
func TestRegisterUserThroughSharedSecret(t *testing.T) {
	c := newCLI(t)
	c.env["REGISTRAR_REGISTRATION_SHARED_SECRET"] = "cli-shared-secret"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0"}, envFrom(c.env), nil, io.Discard, io.Discard, ready)
	}()
	addr := <-ready
	out, err := c.run("pw-remote-1\n", "register-user", "-u", "remote", "-password-stdin", "-url", "http://"+addr)
	if err != nil || !strings.Contains(out, "@remote:localhost") {
		t.Fatalf("%q %v", out, err)
	}
	c.env["REGISTRAR_REGISTRATION_SHARED_SECRET"] = "wrong-secret"
	if _, err := c.run("pw\n", "register-user", "-u", "remote2", "-password-stdin", "-url", "http://"+addr); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("wrong secret: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestUsersApproveCommand(t *testing.T) {
	c := newCLI(t)
	c.env["REGISTRAR_REQUIRE_APPROVAL_FOR_NEW_ACCOUNTS"] = "true"
	if _, err := c.run("pw-1\n", "register-user", "-u", "ann", "-password-stdin"); err != nil {
		t.Fatal(err)
	}
	if out, err := c.run("", "users", "approve", "ann"); err != nil || strings.TrimSpace(out) != "approved @ann:localhost" {
		t.Fatalf("%q %v", out, err)
	}
	if _, err := c.run("", "users", "approve", "@nobody:localhost"); err == nil || !strings.Contains(err.Error(), "M_NOT_FOUND") {
		t.Fatalf("missing user: %v", err)
	}
	var u usageError
	if _, err := c.run("", "users", "frob"); !errors.As(err, &u) {
		t.Fatalf("bad subcommand: %v", err)
	}
}
