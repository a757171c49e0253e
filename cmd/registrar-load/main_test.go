package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
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
	if !strings.Contains(out.String(), "mode=versions c=2 targets=1 ok=") || !strings.Contains(out.String(), "failed=0") {
		t.Fatalf("report %q", out.String())
	}
	if !strings.Contains(progress.String(), "requests") {
		t.Fatalf("no progress line: %q", progress.String())
	}
}

// TestLoadSpreadsOverTargetsAndMeasuresServerCPU: workers alternate
// between the targets, and -pid reports CPU per request (here the test
// process serves, so it is the server).
func TestLoadSpreadsOverTargetsAndMeasuresServerCPU(t *testing.T) {
	var hits [2]atomic.Int64
	servers := make([]*httptest.Server, 2)
	for i := range servers {
		i := i
		servers[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			_, _ = w.Write([]byte(`{}`))
		}))
		defer servers[i].Close()
	}
	var out bytes.Buffer
	args := []string{"-target", servers[0].URL + "," + servers[1].URL, "-mode", "versions", "-c", "4", "-n", "20000", "-d", "5s",
		"-pid", strconv.Itoa(os.Getpid())}
	if err := runWithProgress(args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if hits[0].Load() < 5000 || hits[1].Load() < 5000 || !strings.Contains(out.String(), "targets=2") ||
		!strings.Contains(out.String(), "server_cpu=") {
		t.Fatalf("hits %d/%d, report %q", hits[0].Load(), hits[1].Load(), out.String())
	}
}

// TestNullServerAnswersEveryMode: the reference server answers the
// uia-start, register and whoami requests as registrar would, and a run
// with -pid reports the server's memory, settled too.
func TestNullServerAnswersEveryMode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(nullHandler))
	defer srv.Close()
	for _, mode := range []string{"versions", "available", "whoami", "introspect", "uia-start", "register", "rename"} {
		var out bytes.Buffer
		args := []string{"-target", srv.URL, "-mode", mode, "-c", "2", "-n", "200", "-d", "5s", "-pid", strconv.Itoa(os.Getpid()), "-settle", "10ms"}
		if err := runWithProgress(args, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "ok=200 failed=0") || !strings.Contains(out.String(), "server_rss=") ||
			!strings.Contains(out.String(), "server_rss_after_10ms=") {
			t.Errorf("%s: %q", mode, out.String())
		}
	}
}
