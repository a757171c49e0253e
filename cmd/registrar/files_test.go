package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDataFilesArePrivate runs the server under umask 000: the database,
// its WAL and shared-memory files and the generated secret are 0600.
func TestDataFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	// SQLite's files, whatever the engine under test.
	addr := startServe(t, map[string]string{"REGISTRAR_DATA_DIRECTORY": dir, "REGISTRAR_DATABASE__NAME": "sqlite3",
		"REGISTRAR_DATABASE__ARGS__DSN": "", "REGISTRAR_ENABLE_REGISTRATION": "true",
		"REGISTRAR_ENABLE_REGISTRATION_WITHOUT_VERIFICATION": "true"})
	resp, err := http.Post("http://"+addr+"/_matrix/client/v3/register", "application/json",
		strings.NewReader(`{"username":"filer","password":"pw-filer-1","auth":{"type":"m.login.dummy"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("register: %d", resp.StatusCode)
	}
	for _, name := range []string{"registrar.db", "registrar.db-wal", "registrar.db-shm", "macaroon_secret_key"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s is %04o, want 0600", name, perm)
		}
	}
	if info, _ := os.Stat(dir); info.Mode().Perm() != 0o700 {
		t.Errorf("data directory is %04o", info.Mode().Perm())
	}
}

// TestWritableDataDirectoryIsRefused: a data directory others may write
// to stops the binary with one line naming the option.
func TestWritableDataDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := run(ctx, []string{"serve", "-listen", "127.0.0.1:0"},
		envFrom(map[string]string{"REGISTRAR_DATA_DIRECTORY": dir}), nil, io.Discard, &stderr, nil)
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "data_directory") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v", err)
	}
}
