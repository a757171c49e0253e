package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"registrar/db"
	"registrar/impl"
	"registrar/impl/config"
)

// operatorEnv is what operator commands need from the process.
type operatorEnv struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// openAdmin loads the config and opens the database for direct operations.
func openAdmin(ctx context.Context, configPath string, env operatorEnv) (*impl.Admin, func(), error) {
	cfg, err := config.Load(configPath, env.getenv)
	if err != nil {
		return nil, nil, usageError{err}
	}
	store, err := db.Open(ctx, cfg.DatabaseDSN(), cfg.StoreOptions())
	if err != nil {
		return nil, nil, err
	}
	admin, err := impl.NewAdmin(cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return admin, func() { store.Close() }, nil
}

// printJSON writes v as indented JSON, for scripts.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// optionalInt parses a flag that may be empty (not given), "null" (set to
// nothing) or an integer.
func optionalInt(s, name string) (*int, bool, error) {
	v, set, err := optionalInt64(s, name)
	if v == nil {
		return nil, set, err
	}
	n := int(*v)
	return &n, set, err
}

func optionalInt64(s, name string) (*int64, bool, error) {
	switch s {
	case "":
		return nil, false, nil
	case "null":
		return nil, true, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, false, usageError{fmt.Errorf("-%s: %q is not an integer or null", name, s)}
	}
	return &n, true, nil
}
