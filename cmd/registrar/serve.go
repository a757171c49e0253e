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
	"time"

	"registrar/db"
	"registrar/impl"
	"registrar/impl/config"
)

// serve runs the HTTP server until ctx is done, then shuts down gracefully,
// letting in-flight requests finish.
func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	cfg, addr, err := serveConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
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
	err = listenAndServe(ctx, cfg, addr, srv, log, ready)
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

// listenAndServe serves handler on addr, with max_connections and
// timeouts, until ctx is done; then it stops accepting and waits (up to
// 20 s) for the requests in flight.
func listenAndServe(ctx context.Context, cfg config.Config, addr string, handler http.Handler, log *slog.Logger, ready chan<- string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	guard := newConnectionGuard(cfg.MaxConnections)
	ln = guard.listener(ln)
	httpServer := &http.Server{
		Handler:           handler,
		ConnState:         guard.track,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- httpServer.Serve(ln) }()
	log.Info("listening", "address", ln.Addr().String(), "server_name", cfg.ServerName,
		"registration_enabled", cfg.EnableRegistration, "max_connections", cfg.MaxConnections)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
