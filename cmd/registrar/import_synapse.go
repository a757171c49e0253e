package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"

	"registrar/db"
	"registrar/impl/config"
	"registrar/impl/synapseimport"
)

// importSynapse is `registrar import-synapse`: a Synapse's accounts,
// credentials and sessions into registrar's database (a dry run unless
// -apply).
func importSynapse(ctx context.Context, args []string, env operatorEnv) error {
	fs := flag.NewFlagSet("import-synapse", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	configPath := fs.String("config", env.getenv("REGISTRAR_CONFIG"), "registrar's YAML configuration file")
	synapseConfig := fs.String("synapse-config", "", "Synapse's homeserver.yaml (its database, server_name and password pepper)")
	synapseDB := fs.String("synapse-db", "", "Synapse's database instead: a postgres:// URL or the SQLite file")
	apply := fs.Bool("apply", false, "move the data (without it: a dry run that counts and lists)")
	dryRun := fs.Bool("dry-run", false, "count and list what would move and what cannot, writing nothing (the default)")
	merge := fs.Bool("merge", false, "import into a registrar database that has accounts of its own")
	batch := fs.Int("batch", 5000, "rows read and written at a time")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	switch {
	case (*synapseConfig == "") == (*synapseDB == ""):
		return usageError{errors.New("import-synapse: give -synapse-config FILE or -synapse-db URL")}
	case *apply && *dryRun:
		return usageError{errors.New("import-synapse: -apply and -dry-run exclude each other")}
	case *batch < 1 || *batch > 100_000:
		return usageError{errors.New("import-synapse: -batch must be between 1 and 100000")}
	}
	cfg, err := config.Load(*configPath, env.getenv)
	if err != nil {
		return usageError{err}
	}
	dbURL := *synapseDB
	if *synapseConfig != "" {
		sc, err := synapseimport.ReadConfig(*synapseConfig)
		if err != nil {
			return usageError{fmt.Errorf("import-synapse: %w", err)}
		}
		if sc.ServerName != cfg.ServerName {
			return usageError{fmt.Errorf("import-synapse: Synapse's server_name is %q, registrar's %q: they must be the same", sc.ServerName, cfg.ServerName)}
		}
		if sc.PasswordConfig.Pepper != cfg.PasswordConfig.Pepper {
			return usageError{errors.New("import-synapse: password_config.pepper differs between Synapse and registrar: set registrar's to Synapse's " +
				"(imported passwords are checked with it)")}
		}
		if dbURL, err = sc.DatabaseURL(filepath.Dir(*synapseConfig)); err != nil {
			return usageError{fmt.Errorf("import-synapse: %s: %w", *synapseConfig, err)}
		}
	}
	store, err := db.Open(ctx, cfg.DatabaseDSN(), cfg.StoreOptions())
	if err != nil {
		return fmt.Errorf("import-synapse: %w", err)
	}
	defer store.Close()
	tmp, err := os.MkdirTemp("", "registrar-import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src, err := synapseimport.Open(ctx, dbURL, tmp)
	if err != nil {
		return fmt.Errorf("import-synapse: %w", err)
	}
	defer src.Close()

	bars := map[string]*progressbar.ProgressBar{}
	progress := func(table string, done, total int64) {
		bar := bars[table]
		if bar == nil {
			bar = progressbar.NewOptions64(max(total, 1), progressbar.OptionSetWriter(env.stderr), progressbar.OptionSetDescription(fmt.Sprintf("%-20s", table)),
				progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(env.stderr) }))
			bars[table] = bar
		}
		if done == total && total == 0 {
			_ = bar.Finish()
			return
		}
		_ = bar.Set64(done)
	}
	start := time.Now()
	rep, err := synapseimport.Run(ctx, src, store, synapseimport.Options{ServerName: cfg.ServerName, Apply: *apply, Merge: *merge,
		BatchSize: *batch, Progress: progress})
	if err != nil {
		return fmt.Errorf("import-synapse: %w", err)
	}
	verb := "would move"
	if *apply {
		verb = "moved"
	}
	fmt.Fprintf(env.stdout, "Synapse schema version %d; %s in %s:\n", rep.SchemaVersion, map[bool]string{true: "imported", false: "dry run"}[*apply],
		time.Since(start).Round(time.Millisecond))
	for _, table := range synapseimport.Tables {
		if *apply {
			fmt.Fprintf(env.stdout, "  %-20s read %d, %s %d (the rest were there already or cannot move)\n", table, rep.Read[table], verb, rep.Moved[table])
		} else {
			fmt.Fprintf(env.stdout, "  %-20s read %d\n", table, rep.Read[table])
		}
	}
	if len(rep.Cannot) > 0 {
		fmt.Fprintf(env.stdout, "cannot move (%d):\n", len(rep.Cannot))
		for _, c := range rep.Cannot {
			fmt.Fprintf(env.stdout, "  %s\n", c)
		}
		return fmt.Errorf("import-synapse: %d things cannot move (listed above)", len(rep.Cannot))
	}
	if !*apply {
		fmt.Fprintln(env.stdout, "everything can move: run again with -apply")
	}
	return nil
}
