package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"registrar/db"
	"registrar/impl"
	"registrar/impl/config"
	"registrar/impl/logging"
)

// serve runs the HTTP server until ctx is done, then shuts down gracefully,
// letting in-flight requests finish.
func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	impl.PreloadSpec()
	cfg, addr, err := serveConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, logOutput := newLogger(cfg, stderr)
	defer func() { _ = logOutput.Flush() }()
	slog.SetDefault(log) // libraries' logs (the OAuth library's) go the same way
	store, err := db.Open(ctx, cfg.DatabaseDSN(), cfg.StoreOptions())
	if err != nil {
		return err
	}
	defer store.Close()
	version, _ := store.SchemaVersion(ctx)
	log.Info("database ready", "database", cfg.DatabaseRedacted(), "schema_version", version)

	srv, err := impl.NewServer(cfg, store, impl.Options{Logger: log})
	if err != nil {
		return err
	}
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	background := make(chan struct{})
	go func() { defer close(background); srv.Run(bgCtx) }()
	err = listenAndServe(ctx, cfg, endpoints(cfg, addr, srv), log, ready)
	stopBackground()
	<-background // the last device uses are written before the store closes
	return err
}

// serveConfig reads serve's flags and the configuration; addr is the
// address to listen on.
func serveConfig(args []string, getenv func(string) string, stderr io.Writer) (cfg config.Config, addr string, err error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("REGISTRAR_CONFIG"), "YAML configuration file")
	listen := fs.String("listen", "", "listen address host:port, overriding the config's first listener")
	if err := fs.Parse(args); err != nil {
		return cfg, "", usageError{err}
	}
	if cfg, err = config.Load(*configPath, getenv); err != nil {
		return cfg, "", usageError{err}
	}
	addr = cfg.ListenAddress()
	if *listen != "" {
		addr = *listen
	}
	return cfg, addr, nil
}

// endpoint is one address served: a client listener's (the API) or a
// metrics listener's.
type endpoint struct {
	addr    string
	handler http.Handler
	metrics bool
}

// endpoints are the addresses of every listener with their handlers;
// addr replaces the first client listener's first address.
func endpoints(cfg config.Config, addr string, srv *impl.Server) []endpoint {
	var out []endpoint
	first := true
	for _, l := range cfg.Listeners {
		if l.IsMetrics() {
			for _, a := range l.Addresses() {
				out = append(out, endpoint{addr: a, handler: metricsHandler(srv.Metrics(), cfg.EnablePprof), metrics: true})
			}
			continue
		}
		var h http.Handler = srv
		if l.ServesMetrics() {
			mux := http.NewServeMux()
			mux.Handle("/", srv)
			mux.Handle("GET "+synapseMetricsPath, srv.Metrics())
			h = mux
		}
		for _, a := range l.Addresses() {
			if first {
				a, first = addr, false
			}
			out = append(out, endpoint{addr: a, handler: h})
		}
	}
	// The client listener the ready channel reports comes first.
	sort.SliceStable(out, func(i, j int) bool { return !out[i].metrics && out[j].metrics })
	return out
}

// synapseMetricsPath is where Synapse serves metrics; Prometheus jobs
// written for Synapse scrape it.
const synapseMetricsPath = "/_synapse/metrics"

// metricsHandler serves a metrics listener: the metrics under /metrics
// and Synapse's path, Go's profiler when enabled, nothing else.
func metricsHandler(metrics http.Handler, pprofOn bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET "+synapseMetricsPath, metrics)
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// listenAndServe serves every endpoint, client listeners with
// max_connections and timeouts, until ctx is done; then it stops
// accepting and waits (up to 20 s) for the requests in flight. ready
// receives the first client address once all listen.
func listenAndServe(ctx context.Context, cfg config.Config, eps []endpoint, log *slog.Logger, ready chan<- string) error {
	listeners := make([]net.Listener, 0, len(eps))
	for _, ep := range eps {
		ln, err := net.Listen("tcp", ep.addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return err
		}
		listeners = append(listeners, ln)
	}
	guard := newConnectionGuard(cfg.MaxConnections)
	servers := make([]*http.Server, len(eps))
	errc := make(chan error, len(eps))
	for i, ep := range eps {
		ln := listeners[i]
		srv := &http.Server{
			Handler:           ep.handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		if ep.metrics {
			// A CPU profile or trace takes as long as it is asked to.
			srv.WriteTimeout = 0
			log.Info("serving metrics", "address", ln.Addr().String(), "pprof", cfg.EnablePprof)
		} else {
			ln = guard.listener(ln)
			srv.ConnState = guard.track
			log.Info("listening", "address", ln.Addr().String(), "server_name", cfg.ServerName,
				"registration_enabled", cfg.EnableRegistration, "max_connections", cfg.MaxConnections)
		}
		servers[i] = srv
		go func() { errc <- srv.Serve(ln) }()
	}
	if ready != nil {
		ready <- listeners[0].Addr().String()
	}
	var err error
	pending := len(servers)
	select {
	case err = <-errc:
		pending--
	case <-ctx.Done():
		log.Info("shutting down")
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, srv := range servers {
		if shutdownErr := srv.Shutdown(shutdownCtx); shutdownErr != nil && err == nil {
			err = fmt.Errorf("shutdown: %w", shutdownErr)
		}
	}
	for ; pending > 0; pending-- {
		if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
			err = serveErr
		}
	}
	return err
}

// accessLogDelay is how long access log lines wait at most to be
// written together (other lines are written at once).
const accessLogDelay = 100 * time.Millisecond

// newLogger returns the server's logger and its output, to be flushed
// when the server stops.
func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, *logging.Output) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	out := logging.NewOutput(w, accessLogDelay)
	return slog.New(logging.New(cfg.LogFormat, level, out)), out
}
