// Command registrar runs the Matrix account registration and management
// server and its operator commands.
//
//	registrar [serve] [-config FILE] [-listen ADDR]
//	registrar generate-config
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exitUsage is the exit code of a bad command line or configuration.
const exitUsage = 2

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "registrar:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(exitUsage)
		}
		os.Exit(1)
	}
}

// usageError marks errors that are the operator's to fix (bad flags or
// configuration): exit code 2.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// run dispatches the subcommand. ready, when not nil, receives the bound
// address once the server listens (tests).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready chan<- string) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stderr, ready)
	case "generate-config":
		_, err := io.WriteString(stdout, exampleConfig)
		return err
	case "help", "-h", "--help":
		_, err := io.WriteString(stdout, usage)
		return err
	}
	return usageError{fmt.Errorf("unknown command %q; run 'registrar help'", cmd)}
}

const usage = `registrar: Matrix account registration and management server

  registrar [serve] [-config FILE] [-listen ADDR]   run the server (the default)
  registrar generate-config                        print a commented example config

Environment variables REGISTRAR_<OPTION> override options of the config
file, e.g. REGISTRAR_SERVER_NAME=example.org, and
REGISTRAR_PASSWORD_CONFIG__ENABLED=false for nested options.
`
