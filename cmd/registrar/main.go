// Command registrar runs the Matrix account registration and management
// server and its operator commands.
//
//	registrar [serve] [-config FILE] [-listen ADDR]
//	registrar generate-config
//	registrar register-user -u NAME [-admin] ...
//	registrar tokens list|new|show|update|delete ...
//	registrar users ...
//	registrar port-db -sqlite FILE -config FILE
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"registrar/impl/config"
	"syscall"
)

// exitUsage is the exit code of a bad command line or configuration.
const exitUsage = 2

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, nil)
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
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, ready chan<- string) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stderr, ready)
	case "register-user":
		return registerUser(ctx, args, operatorEnv{getenv, stdin, stdout, stderr})
	case "tokens":
		return tokens(ctx, args, operatorEnv{getenv, stdin, stdout, stderr})
	case "users":
		return users(ctx, args, operatorEnv{getenv, stdin, stdout, stderr})
	case "port-db":
		return portDB(ctx, args, operatorEnv{getenv, stdin, stdout, stderr})
	case "homeserver":
		return homeserverCmd(ctx, args, operatorEnv{getenv, stdin, stdout, stderr})
	case "import-synapse":
		return importSynapse(ctx, args, operatorEnv{getenv, stdin, stdout, stderr})
	case "generate-config":
		_, err := io.WriteString(stdout, config.Example)
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
  registrar register-user -u NAME [-admin] [-password-file F | -password-stdin] [-url URL]
                                                   create an account (in the database, or with
                                                   -url through a running server's shared secret)
  registrar tokens list [-valid true|false]        registration tokens, as Synapse's admin API
  registrar tokens new [-token T] [-length N] [-uses-allowed N] [-expiry-time MS | -expires-in DUR]
  registrar tokens show|delete TOKEN
  registrar tokens update TOKEN [-uses-allowed N|null] [-expiry-time MS|null | -expires-in DUR]
  registrar users list [-guests] [-deactivated] [-admins]
                                                   local accounts (active ones, without guests)
  registrar users show|devices USER                one account, or its devices
  registrar users create USER [-admin] [-password-file F | -password-stdin]
  registrar users set-password USER [-logout-devices] [-password-file F | -password-stdin]
  registrar users deactivate USER [-erase]
  registrar users lock|unlock|suspend|unsuspend|make-admin|revoke-admin|approve USER
  registrar users audit [USER] [-limit N]          admin changes, newest first
                                                   (users: -json for scripts; USER is a user ID
                                                   or a localpart; works with the server running)
  registrar port-db -sqlite FILE -config PG.yaml   copy an SQLite database into an empty PostgreSQL one
  registrar homeserver sync [-config FILE]         push every account and its devices to the homeserver
  registrar import-synapse -synapse-config homeserver.yaml | -synapse-db URL [-apply] [-merge]
                                                   move a Synapse's accounts, passwords and sessions
                                                   into registrar (a dry run without -apply)

Every command takes -config FILE (or REGISTRAR_CONFIG).

Environment variables REGISTRAR_<OPTION> override options of the config
file, e.g. REGISTRAR_SERVER_NAME=example.org, and
REGISTRAR_PASSWORD_CONFIG__ENABLED=false for nested options.
`
