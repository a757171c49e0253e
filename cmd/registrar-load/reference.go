package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"time"
)

// serveNull runs the null reference server: what a Go HTTP server costs
// with no work behind it, answering each mode's requests as registrar
// would (200, or 401 to a POST /register without auth) with a small
// fixed JSON body, until interrupted.
func serveNull(addr string, progress io.Writer) error {
	if host, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("-serve-null %s: give a loopback host:port", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(nullHandler), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(progress, "null server on %s (pid %d)\n", ln.Addr(), os.Getpid())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func nullHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/register") && !strings.Contains(string(body), `"auth"`) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"flows":[{"stages":["m.login.dummy"]}],"params":{},"session":"nullsession"}`)
		return
	}
	_, _ = io.WriteString(w, `{"access_token":"null","user_id":"@null:localhost"}`)
}

// startTime runs the binary -n times (at most 50) and reports the time
// from exec to its first 200 answer to GET /_matrix/client/versions.
func startTime(o options, out io.Writer) error {
	runs := int(min(o.requests, 50))
	if o.requests == 1_000_000 { // the default -n
		runs = 10
	}
	var times []time.Duration
	for i := 0; i < runs; i++ {
		d, err := startOnce(o)
		if err != nil {
			return err
		}
		times = append(times, d)
		fmt.Fprintf(o.progress, "... start %d: %s\n", i+1, d.Round(100*time.Microsecond))
	}
	slices.Sort(times)
	fmt.Fprintf(out, "mode=start runs=%d min=%s median=%s max=%s\n", runs, times[0].Round(100*time.Microsecond),
		times[len(times)/2].Round(100*time.Microsecond), times[len(times)-1].Round(100*time.Microsecond))
	return nil
}

func startOnce(o options) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"-listen", addr}
	if o.config != "" {
		args = append([]string{"-config", o.config}, args...)
	}
	cmd := exec.Command(o.binary, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	for time.Since(start) < 10*time.Second {
		resp, err := client.Get("http://" + addr + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	return 0, fmt.Errorf("%s did not answer /versions within 10 s", o.binary)
}
