package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
)

// users is `registrar users approve USER`.
func users(ctx context.Context, args []string, env operatorEnv) error {
	if len(args) < 2 || args[0] != "approve" {
		return usageError{errors.New("users: want 'approve USER'")}
	}
	user, rest := args[1], args[2:]
	fs := flag.NewFlagSet("users approve", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	configPath := fs.String("config", env.getenv("REGISTRAR_CONFIG"), "YAML configuration file")
	if err := fs.Parse(rest); err != nil {
		return usageError{err}
	}
	a, closeDB, err := openAdmin(ctx, *configPath, env)
	if err != nil {
		return err
	}
	defer closeDB()
	userID, _ := a.Accounts.CanonicalUserID(user)
	if err := a.Accounts.SetApproved(ctx, userID, true); err != nil {
		return fmt.Errorf("users approve: %w", err)
	}
	fmt.Fprintf(env.stdout, "approved %s\n", userID)
	return nil
}
