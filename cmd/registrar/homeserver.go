package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/schollz/progressbar/v3"
)

// homeserverCmd is `registrar homeserver sync`: every account's state and
// devices pushed to the configured homeserver, reporting what differed.
func homeserverCmd(ctx context.Context, args []string, env operatorEnv) error {
	if len(args) == 0 || args[0] != "sync" {
		return usageError{errors.New("homeserver: the subcommand is sync")}
	}
	fs := flag.NewFlagSet("homeserver sync", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	configPath := fs.String("config", env.getenv("REGISTRAR_CONFIG"), "YAML configuration file")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err}
	}
	admin, closeStore, err := openAdmin(ctx, *configPath, env)
	if err != nil {
		return err
	}
	defer closeStore()
	if admin.Homeserver == nil {
		return usageError{errors.New("homeserver sync: the configuration has no homeserver (matrix.endpoint)")}
	}
	var bar *progressbar.ProgressBar
	drift, err := admin.Homeserver.Sync(ctx, func(done, total int64) {
		if bar == nil {
			bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(env.stderr), progressbar.OptionSetDescription("accounts"),
				progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionOnCompletion(func() {
					fmt.Fprintln(env.stderr)
				}))
		}
		_ = bar.Set64(done)
	})
	if err != nil {
		return fmt.Errorf("homeserver sync: %w", err)
	}
	fmt.Fprintf(env.stdout, "pushed %d accounts; devices added on the homeserver: %d, removed: %d\n", drift.Users, drift.DevicesAdded,
		drift.DevicesRemoved)
	for _, f := range drift.Failed {
		fmt.Fprintf(env.stdout, "failed: %s\n", f)
	}
	if len(drift.Failed) > 0 {
		return fmt.Errorf("homeserver sync: %d accounts failed", len(drift.Failed))
	}
	return nil
}
