package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"registrar/db"
	"registrar/impl"
	"registrar/impl/regtokens"
	"strconv"
	"strings"
	"time"
)

// tokens is `registrar tokens list|new|show|update|delete`, with the
// fields of Synapse's admin API.
func tokens(ctx context.Context, args []string, env operatorEnv) error {
	if len(args) == 0 {
		return usageError{errors.New("tokens: want list, new, show, update or delete")}
	}
	sub := args[0]
	run, ok := map[string]func(context.Context, *impl.Admin, tokenArgs, operatorEnv) error{
		"list": tokensList, "new": tokensNew, "show": tokensShow, "update": tokensUpdate, "delete": tokensDelete,
	}[sub]
	if !ok {
		return usageError{fmt.Errorf("tokens: unknown subcommand %q", sub)}
	}
	ta, err := parseTokenArgs(sub, args[1:], env)
	if err != nil {
		return err
	}
	a, closeDB, err := openAdmin(ctx, ta.configPath, env)
	if err != nil {
		return err
	}
	defer closeDB()
	return run(ctx, a, ta, env)
}

// tokenArgs are a tokens subcommand's arguments.
type tokenArgs struct {
	configPath string
	token      string
	valid      *bool
	length     int
	uses       *int
	usesSet    bool
	expiry     *int64
	expirySet  bool
}

// parseTokenArgs reads the flags of subcommand sub; TOKEN may come before
// or after them.
func parseTokenArgs(sub string, args []string, env operatorEnv) (tokenArgs, error) {
	fs := flag.NewFlagSet("tokens "+sub, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var ta tokenArgs
	fs.StringVar(&ta.configPath, "config", env.getenv("REGISTRAR_CONFIG"), "YAML configuration file")
	var valid, usesAllowed, expiry string
	var expiresIn time.Duration
	switch sub {
	case "list":
		fs.StringVar(&valid, "valid", "", "true or false: only valid or only invalid tokens")
	case "new":
		fs.StringVar(&ta.token, "token", "", "the token (random when empty)")
		fs.IntVar(&ta.length, "length", 16, "length of a random token (1-64)")
		fs.StringVar(&usesAllowed, "uses-allowed", "", "registrations allowed (empty: unlimited)")
		fs.StringVar(&expiry, "expiry-time", "", "expiry in ms since the epoch (empty: never)")
		fs.DurationVar(&expiresIn, "expires-in", 0, "expiry as a duration from now, e.g. 168h")
	case "update":
		fs.StringVar(&usesAllowed, "uses-allowed", "", "new limit, or null for unlimited")
		fs.StringVar(&expiry, "expiry-time", "", "new expiry in ms since the epoch, or null for never")
		fs.DurationVar(&expiresIn, "expires-in", 0, "new expiry as a duration from now")
	}
	var positional []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		positional, args = args[:1], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return ta, usageError{err}
	}
	positional = append(positional, fs.Args()...)
	switch {
	case (sub == "show" || sub == "update" || sub == "delete") && len(positional) != 1:
		return ta, usageError{fmt.Errorf("tokens %s: give exactly one TOKEN", sub)}
	case (sub == "show" || sub == "update" || sub == "delete"):
		ta.token = positional[0]
	case len(positional) > 0:
		return ta, usageError{fmt.Errorf("tokens %s: unexpected argument %q", sub, positional[0])}
	}
	if valid != "" {
		v, err := strconv.ParseBool(valid)
		if err != nil {
			return ta, usageError{errors.New("tokens list: -valid must be true or false")}
		}
		ta.valid = &v
	}
	var err error
	if ta.uses, ta.usesSet, err = optionalInt(usesAllowed, "uses-allowed"); err != nil {
		return ta, err
	}
	if ta.expiry, ta.expirySet, err = optionalInt64(expiry, "expiry-time"); err != nil {
		return ta, err
	}
	if expiresIn > 0 {
		t := time.Now().Add(expiresIn).UnixMilli()
		ta.expiry, ta.expirySet = &t, true
	}
	return ta, nil
}

func tokensList(ctx context.Context, a *impl.Admin, ta tokenArgs, env operatorEnv) error {
	list, err := a.Tokens.List(ctx, ta.valid)
	if err != nil {
		return err
	}
	out := make([]tokenOutput, 0, len(list))
	for _, t := range list {
		out = append(out, toOutput(t))
	}
	return printJSON(env.stdout, map[string]any{"registration_tokens": out})
}

func tokensNew(ctx context.Context, a *impl.Admin, ta tokenArgs, env operatorEnv) error {
	t, err := a.Tokens.Create(ctx, regtokens.Spec{Token: ta.token, Length: ta.length, UsesAllowed: ta.uses, ExpiryTime: ta.expiry})
	if err != nil {
		return fmt.Errorf("tokens new: %w", err)
	}
	return printJSON(env.stdout, toOutput(t))
}

func tokensShow(ctx context.Context, a *impl.Admin, ta tokenArgs, env operatorEnv) error {
	t, err := a.Tokens.Get(ctx, ta.token)
	if err != nil {
		return fmt.Errorf("tokens show: %w", err)
	}
	return printJSON(env.stdout, toOutput(t))
}

func tokensUpdate(ctx context.Context, a *impl.Admin, ta tokenArgs, env operatorEnv) error {
	var u db.TokenUpdate
	if ta.usesSet {
		u.UsesAllowed = &ta.uses
	}
	if ta.expirySet {
		u.ExpiryTime = &ta.expiry
	}
	t, err := a.Tokens.Update(ctx, ta.token, u)
	if err != nil {
		return fmt.Errorf("tokens update: %w", err)
	}
	return printJSON(env.stdout, toOutput(t))
}

func tokensDelete(ctx context.Context, a *impl.Admin, ta tokenArgs, env operatorEnv) error {
	if err := a.Tokens.Delete(ctx, ta.token); err != nil {
		return fmt.Errorf("tokens delete: %w", err)
	}
	fmt.Fprintf(env.stdout, "deleted %s\n", ta.token)
	return nil
}

// tokenOutput mirrors the admin API's token JSON, so that cmd need not
// import api.
type tokenOutput struct {
	Token       string `json:"token"`
	UsesAllowed *int   `json:"uses_allowed"`
	Pending     int    `json:"pending"`
	Completed   int    `json:"completed"`
	ExpiryTime  *int64 `json:"expiry_time"`
}

func toOutput(t db.RegistrationToken) tokenOutput {
	return tokenOutput{Token: t.Token, UsesAllowed: t.UsesAllowed, Pending: t.Pending, Completed: t.Completed, ExpiryTime: t.ExpiryTime}
}
