// Command registrar-load is registrar's load tool. It sends a bounded
// number of requests, for a bounded time, to a registrar on a loopback
// address and reports throughput and latency.
//
//	registrar-load -mode register -c 8 -d 10s
//	registrar-load -mode whoami -c 64 -n 100000
//	registrar-load -mode hash        # the machine's password-hash limit
//	registrar-load -serve-null 127.0.0.1:8090   # the reference server
//	registrar-load -mode start -binary bin/registrar -config cmd/registrar/dev.yaml -n 20
//
// Modes: versions, available, whoami, introspect (POST /oauth2/introspect as
// the development config's client), uia-start (the first POST /register,
// answered 401), register (complete one-step registrations), login,
// rename (PUT /devices/{deviceId}: a write without a password hash), hash
// (no server: hashes/s at the default cost), start (the binary's time from
// exec to its first /versions 200). With -pid the server's CPU time per
// request and its memory (RSS now and at peak) are reported. -serve-null
// runs a null Go HTTP server that answers each mode's requests with a
// fixed body, to measure the same load against.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"registrar/impl/config"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "registrar-load:", err)
		os.Exit(1)
	}
}

type options struct {
	targets     []string
	mode        string
	concurrency int
	requests    int64
	duration    time.Duration
	// pids are the server processes whose CPU time is measured.
	pids []int
	// progress receives a line every two seconds while the load runs.
	progress io.Writer
	// binary and config are the server start mode's command.
	binary, config string
	// serveNull is the address of a null server to run instead.
	serveNull string
	// settle is how long after the load the server's memory is read again.
	settle time.Duration
}

func run(args []string, out io.Writer) error {
	return runWithProgress(args, out, os.Stderr)
}

func runWithProgress(args []string, out, progress io.Writer) error {
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	o.progress = progress
	switch {
	case o.serveNull != "":
		return serveNull(o.serveNull, progress)
	case o.mode == "hash":
		return hashLimit(o, out)
	case o.mode == "start":
		return startTime(o, out)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency, MaxConnsPerHost: o.concurrency}}
	r := &requester{targets: o.targets, client: client, runID: randomHex(4)}
	send, err := r.forMode(o.mode)
	if err != nil {
		return err
	}
	return load(o, send, out)
}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("registrar-load", flag.ContinueOnError)
	var o options
	target := fs.String("target", "http://127.0.0.1:8008", "registrar base URL, or several (instances) separated by commas; loopback only")
	pids := fs.String("pid", "", "server process IDs (comma-separated) whose CPU time per request is reported")
	fs.StringVar(&o.mode, "mode", "whoami", "versions, available, whoami, introspect, uia-start, register, login, rename, hash or start")
	fs.StringVar(&o.binary, "binary", "bin/registrar", "start mode: the registrar binary")
	fs.StringVar(&o.config, "config", "", "start mode: its configuration file")
	fs.StringVar(&o.serveNull, "serve-null", "", "run the null reference server on this loopback address")
	fs.DurationVar(&o.settle, "settle", 0, "with -pid: read the server's memory again this long after the load (at most 1m)")
	fs.IntVar(&o.concurrency, "c", 8, "concurrent clients")
	fs.Int64Var(&o.requests, "n", 1_000_000, "stop after this many requests")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "stop after this long (at most 5m)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.duration > 5*time.Minute || o.duration <= 0 || o.requests <= 0 || o.concurrency < 1 || o.concurrency > 1024 ||
		o.settle < 0 || o.settle > time.Minute {
		return o, errors.New("bounds: 0 < -d <= 5m, -n > 0, 1 <= -c <= 1024, 0 <= -settle <= 1m")
	}
	for _, t := range strings.Split(*target, ",") {
		u, err := url.Parse(t)
		if err != nil {
			return o, err
		}
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return o, fmt.Errorf("target %s is not a loopback address", t)
		}
		o.targets = append(o.targets, strings.TrimSuffix(t, "/"))
	}
	for _, p := range strings.Split(*pids, ",") {
		if p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return o, fmt.Errorf("-pid: %q is not a process ID", p)
		}
		o.pids = append(o.pids, n)
	}
	return o, nil
}

// requestFunc sends one request and reports whether it succeeded.
type requestFunc func(ctx context.Context, worker int, seq int64) error

// requester sends the requests of a mode; worker w talks to target
// w mod len(targets).
type requester struct {
	targets []string
	client  *http.Client
	runID   string
}

func (r *requester) base(worker int) string { return r.targets[worker%len(r.targets)] }

// send makes one request and checks its status.
func (r *requester) send(ctx context.Context, worker int, method, path string, body any, token string, want int) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base(worker)+path, rd)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return r.do(req, want)
}

// do sends req and wants the status want.
func (r *requester) do(req *http.Request, want int) error {
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(data))
	}
	return nil
}

// introspectionClient is the development config's client for the
// introspect mode (client_id:client_secret).
const introspectionClient = "load:load-test-client-secret-0123456789"

// register completes a one-step registration and returns its token.
func (r *requester) register(ctx context.Context, worker int, name string) (string, error) {
	b, _ := json.Marshal(map[string]any{"username": name, "password": "load-test-password-" + name,
		"auth": map[string]any{"type": "m.login.dummy"}})
	req, _ := http.NewRequestWithContext(ctx, "POST", r.base(worker)+"/_matrix/client/v3/register", bytes.NewReader(b))
	resp, err := r.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("register: %d %s", resp.StatusCode, out.Error)
	}
	return out.AccessToken, nil
}

// deviceID is the device of an access token (from whoami; "" from the
// null server).
func (r *requester) deviceID(ctx context.Context, token string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", r.base(0)+"/_matrix/client/v3/account/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := r.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		DeviceID string `json:"device_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		return "", fmt.Errorf("whoami: %d %v", resp.StatusCode, err)
	}
	if out.DeviceID == "" {
		out.DeviceID = "NULLDEVICE"
	}
	return out.DeviceID, nil
}

func (r *requester) forMode(mode string) (requestFunc, error) {
	switch mode {
	case "versions":
		return func(ctx context.Context, w int, _ int64) error {
			return r.send(ctx, w, "GET", "/_matrix/client/versions", nil, "", 200)
		}, nil
	case "available":
		return func(ctx context.Context, w int, seq int64) error {
			return r.send(ctx, w, "GET", "/_matrix/client/v3/register/available?username=free-"+r.runID+fmt.Sprint(seq), nil, "", 200)
		}, nil
	case "uia-start":
		return func(ctx context.Context, w int, seq int64) error {
			// No password: a start that keeps one stores its session.
			body := map[string]any{"username": fmt.Sprintf("start-%s-%d", r.runID, seq)}
			return r.send(ctx, w, "POST", "/_matrix/client/v3/register", body, "", 401)
		}, nil
	case "register":
		return func(ctx context.Context, w int, seq int64) error {
			_, err := r.register(ctx, w, fmt.Sprintf("load-%s-%d-%d", r.runID, w, seq))
			return err
		}, nil
	case "whoami":
		token, err := r.register(context.Background(), 0, "load-"+r.runID)
		if err != nil {
			return nil, fmt.Errorf("setting up a user (is registration open?): %w", err)
		}
		return func(ctx context.Context, w int, _ int64) error {
			return r.send(ctx, w, "GET", "/_matrix/client/v3/account/whoami", nil, token, 200)
		}, nil
	case "introspect":
		// What a homeserver asks on every request it serves, as the
		// development config's client "load".
		token, err := r.register(context.Background(), 0, "load-"+r.runID)
		if err != nil {
			return nil, fmt.Errorf("setting up a user (is registration open?): %w", err)
		}
		form := "token=" + url.QueryEscape(token) + "&token_type_hint=access_token"
		auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(introspectionClient))
		return func(ctx context.Context, w int, _ int64) error {
			req, err := http.NewRequestWithContext(ctx, "POST", r.base(w)+"/oauth2/introspect", strings.NewReader(form))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", auth)
			return r.do(req, 200)
		}, nil
	case "rename":
		token, err := r.register(context.Background(), 0, "load-"+r.runID)
		if err != nil {
			return nil, fmt.Errorf("setting up a user (is registration open?): %w", err)
		}
		device, err := r.deviceID(context.Background(), token)
		if err != nil {
			return nil, err
		}
		path := "/_matrix/client/v3/devices/" + url.PathEscape(device)
		return func(ctx context.Context, w int, seq int64) error {
			body := map[string]any{"display_name": fmt.Sprintf("load %d-%d", w, seq)}
			return r.send(ctx, w, "PUT", path, body, token, 200)
		}, nil
	case "login":
		if _, err := r.register(context.Background(), 0, "load-"+r.runID); err != nil {
			return nil, fmt.Errorf("setting up a user (is registration open?): %w", err)
		}
		return func(ctx context.Context, w int, _ int64) error {
			body := map[string]any{"type": "m.login.password", "user": "load-" + r.runID,
				"password": "load-test-password-load-" + r.runID, "device_id": fmt.Sprintf("LOAD%d", w)}
			return r.send(ctx, w, "POST", "/_matrix/client/v3/login", body, "", 200)
		}, nil
	}
	return nil, fmt.Errorf("unknown mode %q", mode)
}

// load runs the workers until the count or the time is used up.
func load(o options, send requestFunc, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	var issued, failed atomic.Int64
	var firstErr atomic.Value
	latencies := make([][]time.Duration, o.concurrency)
	var wg sync.WaitGroup
	cpuBefore := cpuTime(o.pids)
	start := time.Now()
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil {
				seq := issued.Add(1)
				if seq > o.requests {
					return
				}
				t := time.Now()
				if err := send(ctx, w, seq); err != nil {
					if ctx.Err() != nil {
						return
					}
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				latencies[w] = append(latencies[w], time.Since(t))
			}
		}(w)
	}
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				n := min(issued.Load(), o.requests)
				fmt.Fprintf(o.progress, "... %s: %d requests, %d failed\n", time.Since(start).Round(time.Second), n, failed.Load())
			}
		}
	}()
	wg.Wait()
	close(stopProgress)
	elapsed := time.Since(start)
	cpu := cpuTime(o.pids) - cpuBefore
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(float64(len(all)-1)*p)]
	}
	fmt.Fprintf(out, "mode=%s c=%d targets=%d ok=%d failed=%d elapsed=%s rate=%.1f/s p50=%s p99=%s",
		o.mode, o.concurrency, len(o.targets), len(all), failed.Load(), elapsed.Round(time.Millisecond),
		float64(len(all))/elapsed.Seconds(), pct(0.5), pct(0.99))
	if len(o.pids) > 0 && len(all) > 0 {
		fmt.Fprintf(out, " server_cpu=%.1fµs/op", float64(cpu.Microseconds())/float64(len(all)))
		if rss, peak := memory(o.pids); rss > 0 {
			fmt.Fprintf(out, " server_rss=%.1fMiB server_rss_peak=%.1fMiB", float64(rss)/(1<<20), float64(peak)/(1<<20))
		}
		if o.settle > 0 {
			time.Sleep(o.settle)
			rss, _ := memory(o.pids)
			fmt.Fprintf(out, " server_rss_after_%s=%.1fMiB", o.settle, float64(rss)/(1<<20))
		}
	}
	fmt.Fprintln(out)
	if err, ok := firstErr.Load().(error); ok {
		fmt.Fprintf(out, "first error: %v\n", err)
	}
	return nil
}

// hashLimit measures the default argon2id cost: one hash's time and the
// machine's limit, cores / time per hash.
func hashLimit(o options, out io.Writer) error {
	a := config.Default().PasswordConfig.Argon2
	salt := make([]byte, 16)
	deadline := time.Now().Add(min(o.duration, 5*time.Second))
	var n int
	start := time.Now()
	for time.Now().Before(deadline) && int64(n) < o.requests {
		argon2.IDKey([]byte("load-test-password"), salt, a.Iterations, a.MemoryKiB, a.Parallelism, 32)
		n++
	}
	per := time.Since(start) / time.Duration(n)
	cores := runtime.GOMAXPROCS(0)
	fmt.Fprintf(out, "argon2id m=%dKiB t=%d p=%d: %s per hash on one core; limit with %d cores = %.1f hashes/s\n",
		a.MemoryKiB, a.Iterations, a.Parallelism, per, cores, float64(cores)/per.Seconds())
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cpuTime is the CPU time (user and system) the processes have used,
// from /proc/<pid>/stat (in clock ticks of 10 ms, Linux's USER_HZ).
func cpuTime(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces).
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 12 {
			u, _ := strconv.ParseInt(fields[11], 10, 64)
			s, _ := strconv.ParseInt(fields[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// memory is the processes' resident memory now and at its peak, from
// /proc/<pid>/status (VmRSS, VmHWM).
func memory(pids []int) (rss, peak int64) {
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			name, value, ok := strings.Cut(line, ":")
			if !ok || (name != "VmRSS" && name != "VmHWM") {
				continue
			}
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
			if name == "VmRSS" {
				rss += kb << 10
			} else {
				peak += kb << 10
			}
		}
	}
	return rss, peak
}
