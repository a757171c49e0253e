package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestLoadAgainstLoopbackOnly(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-target", "http://192.0.2.1:8008", "-d", "1s"}, &out); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("non-loopback target: %v", err)
	}
	if err := run([]string{"-d", "10m"}, &out); err == nil {
		t.Fatal("unbounded duration accepted")
	}
}

func TestLoadReportsAndShowsProgress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"versions":["v1.7"]}`))
	}))
	defer srv.Close()
	var out, progress bytes.Buffer
	if err := runWithProgress([]string{"-target", srv.URL, "-mode", "versions", "-c", "2", "-n", "500000", "-d", "2500ms"}, &out, &progress); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "mode=versions c=2 ok=") || !strings.Contains(out.String(), "failed=0") {
		t.Fatalf("report %q", out.String())
	}
	if !strings.Contains(progress.String(), "requests") {
		t.Fatalf("no progress line: %q", progress.String())
	}
}
