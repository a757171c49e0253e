package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"registrar/db"
	"registrar/impl/config"
)

// portDB is `registrar port-db -sqlite FILE -config postgres.yaml`: copies
// an SQLite database into an empty PostgreSQL one (as Synapse's
// synapse_port_db), in batches with a progress line, verified by row
// counts.
func portDB(ctx context.Context, args []string, env operatorEnv) error {
	fs := flag.NewFlagSet("port-db", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	source := fs.String("sqlite", "", "the SQLite database file to copy")
	configPath := fs.String("config", env.getenv("REGISTRAR_CONFIG"), "YAML configuration naming the PostgreSQL database")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *source == "" {
		return usageError{errors.New("port-db: -sqlite FILE is required")}
	}
	cfg, err := config.Load(*configPath, env.getenv)
	if err != nil {
		return usageError{err}
	}
	if !cfg.UsesPostgres() {
		return usageError{errors.New("port-db: the configuration's database must be PostgreSQL (database.name: psycopg2)")}
	}
	from, err := db.Open(ctx, *source, db.Options{})
	if err != nil {
		return fmt.Errorf("port-db: %w", err)
	}
	defer from.Close()
	to, err := db.Open(ctx, cfg.DatabaseDSN(), cfg.StoreOptions())
	if err != nil {
		return fmt.Errorf("port-db: %w", err)
	}
	defer to.Close()
	var rows int64
	err = db.Port(ctx, from, to, func(table string, done, total int64) {
		if done == total {
			rows += total
		}
		fmt.Fprintf(env.stderr, "port-db: %-32s %d/%d\n", table, done, total)
	})
	if err != nil {
		return fmt.Errorf("port-db: %w", err)
	}
	fmt.Fprintf(env.stdout, "ported %d rows from %s into %s; row counts verified\n", rows, *source, cfg.DatabaseRedacted())
	return nil
}
