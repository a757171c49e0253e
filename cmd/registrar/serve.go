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
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("REGISTRAR_CONFIG"), "YAML configuration file")
	listen := fs.String("listen", "", "listen address host:port, overriding the config's first listener")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	cfg, err := config.Load(*configPath, getenv)
	if err != nil {
		return usageError{err}
	}
	log := newLogger(cfg, stderr)
	addr := cfg.ListenAddress()
	if *listen != "" {
		addr = *listen
	}

	store, err := db.Open(ctx, cfg.DatabasePath(), db.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	version, _ := store.SchemaVersion(ctx)
	log.Info("database ready", "path", cfg.DatabasePath(), "schema_version", version)

	srv, err := impl.NewServer(cfg, store, impl.Options{Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	guard := newConnectionGuard(cfg.MaxConnections)
	ln = guard.listener(ln)
	httpServer := &http.Server{
		Handler:           srv,
		ConnState:         guard.track,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	go srv.Run(bgCtx)

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
