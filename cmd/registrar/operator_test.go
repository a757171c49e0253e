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

func TestUsersCommands(t *testing.T) {
	c := newCLI(t)
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, err := c.run(stdin, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out
	}
	if out := mustRun("pw-ann-1\n", "users", "create", "ann", "-admin", "-password-stdin"); strings.TrimSpace(out) != "created @ann:localhost" {
		t.Fatalf("create: %q", out)
	}
	mustRun("pw-bob-1\n", "users", "create", "@bob:localhost", "-password-stdin")
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"users", "lock", "bob"}, "locked @bob:localhost"},
		{[]string{"users", "suspend", "bob"}, "suspended @bob:localhost"},
		{[]string{"users", "make-admin", "bob"}, "made admin @bob:localhost"},
		{[]string{"users", "revoke-admin", "bob"}, "revoked admin of @bob:localhost"},
		{[]string{"users", "unsuspend", "bob"}, "unsuspended @bob:localhost"},
		{[]string{"users", "unlock", "bob"}, "unlocked @bob:localhost"},
	}
	for _, s := range steps {
		if out := mustRun("", s.args...); strings.TrimSpace(out) != s.want {
			t.Fatalf("%v: %q, want %q", s.args, out, s.want)
		}
	}
	var u userOutput
	if err := json.Unmarshal([]byte(mustRun("", "users", "lock", "bob", "-json")), &u); err != nil || !u.Locked || u.Name != "@bob:localhost" {
		t.Fatalf("lock -json: %+v %v", u, err)
	}
	mustRun("", "users", "unlock", "bob")
	mustRun("pw-bob-2\n", "users", "set-password", "bob", "-password-stdin", "-logout-devices")

	table := mustRun("", "users", "list")
	if !strings.Contains(table, "USER ID") || !strings.Contains(table, "@ann:localhost") || !strings.Contains(table, "@bob:localhost") {
		t.Fatalf("list:\n%s", table)
	}
	var list struct {
		Users []userOutput `json:"users"`
		Total int          `json:"total"`
	}
	if err := json.Unmarshal([]byte(mustRun("", "users", "list", "-admins", "-json")), &list); err != nil || list.Total != 1 || list.Users[0].Name != "@ann:localhost" {
		t.Fatalf("list -admins -json: %+v %v", list, err)
	}
	if show := mustRun("", "users", "show", "bob"); !strings.Contains(show, "locked:") || !strings.Contains(show, "@bob:localhost") {
		t.Fatalf("show:\n%s", show)
	}
	if factors := mustRun("", "users", "factors", "bob"); !strings.HasPrefix(factors, "ID") || !strings.Contains(factors, "recovery codes left: 0") {
		t.Fatalf("factors:\n%s", factors)
	}
	if out := mustRun("", "users", "reset-factors", "bob"); strings.TrimSpace(out) != "removed 0 second factors of @bob:localhost" {
		t.Fatalf("reset-factors: %q", out)
	}
	if devices := mustRun("", "users", "devices", "bob"); !strings.HasPrefix(devices, "DEVICE ID") {
		t.Fatalf("devices:\n%s", devices)
	}
	mustRun("", "users", "deactivate", "bob", "-erase")
	if out := mustRun("", "users", "list", "-json"); strings.Contains(out, "@bob:localhost") {
		t.Fatalf("a deactivated account listed without -deactivated: %s", out)
	}
	if out := mustRun("", "users", "list", "-deactivated"); !strings.Contains(out, "@bob:localhost") {
		t.Fatalf("-deactivated: %s", out)
	}
	audit := mustRun("", "users", "audit", "bob")
	for _, action := range []string{"create", "lock", "suspend", "make_admin", "reset_password", "deactivate", "cli:"} {
		if !strings.Contains(audit, action) {
			t.Fatalf("audit lacks %s:\n%s", action, audit)
		}
	}
	if strings.Contains(audit, "pw-bob") {
		t.Fatalf("a password in the audit:\n%s", audit)
	}

	// Errors: one line, non-zero, and the operator's mistakes are usage errors.
	for _, args := range [][]string{{"users", "lock", "nobody"}, {"users", "show", "@nobody:localhost"}, {"users", "devices", "ghost"}} {
		_, err := c.run("", args...)
		if err == nil || !strings.Contains(err.Error(), "User not found") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if _, err := c.run("pw\n", "users", "create", "ann", "-password-stdin"); err == nil || !strings.Contains(err.Error(), "M_USER_IN_USE") {
		t.Fatalf("create existing: %v", err)
	}
	var usage usageError
	for _, args := range [][]string{{"users", "lock"}, {"users", "list", "extra"}, {"users", "show", "a", "b"}, {"users", "lock", "bob", "-nope"}} {
		if _, err := c.run("", args...); !errors.As(err, &usage) {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if _, err := c.run("", "users", "lock", "@bob:elsewhere.example"); err == nil || !strings.Contains(err.Error(), "not a user of this server") {
		t.Fatalf("remote user: %v", err)
	}
}
