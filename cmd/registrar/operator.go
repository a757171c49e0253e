package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

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
	store, err := db.Open(ctx, cfg.DatabasePath(), db.Options{})
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

// registerUser is `registrar register-user`: creates an account directly
// in the database, or with -url through the shared-secret API of a running
// server (as register_new_matrix_user does).
func registerUser(ctx context.Context, args []string, env operatorEnv) error {
	fs := flag.NewFlagSet("register-user", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	configPath := fs.String("config", env.getenv("REGISTRAR_CONFIG"), "YAML configuration file")
	username := fs.String("u", "", "username (localpart) of the new user")
	fs.StringVar(username, "user", "", "alias of -u")
	passwordFile := fs.String("password-file", "", "read the password from this file")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	admin := fs.Bool("admin", false, "make the user a server admin")
	fs.BoolVar(admin, "a", false, "alias of -admin")
	url := fs.String("url", "", "register through this running server's shared-secret API instead of the database")
	secretFile := fs.String("shared-secret-file", "", "with -url: file holding registration_shared_secret (else the config's)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *username == "" {
		return usageError{errors.New("register-user: -u USERNAME is required")}
	}
	password, err := readPassword(*passwordFile, *passwordStdin, env)
	if err != nil {
		return err
	}
	var userID string
	if *url != "" {
		userID, err = registerViaAPI(ctx, *url, *configPath, *secretFile, *username, password, *admin, env)
	} else {
		a, closeDB, err2 := openAdmin(ctx, *configPath, env)
		if err2 != nil {
			return err2
		}
		defer closeDB()
		userID, err = a.RegisterUser(ctx, *username, password, *admin)
	}
	if err != nil {
		return fmt.Errorf("register-user: %w", err)
	}
	fmt.Fprintf(env.stdout, "registered %s%s\n", userID, map[bool]string{true: " (admin)"}[*admin])
	return nil
}

// readPassword takes the password from a file, standard input, or a
// prompt on the terminal (asked twice).
func readPassword(file string, fromStdin bool, env operatorEnv) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageError{fmt.Errorf("register-user: %w", err)}
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case fromStdin:
		line, err := bufio.NewReader(env.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		if line = strings.TrimRight(line, "\r\n"); line == "" {
			return "", usageError{errors.New("register-user: empty password on standard input")}
		}
		return line, nil
	}
	f, ok := env.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usageError{errors.New("register-user: no password: use -password-file, -password-stdin or a terminal")}
	}
	fmt.Fprint(env.stderr, "Password: ")
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(env.stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(env.stderr, "Confirm password: ")
	p2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(env.stderr)
	if err != nil {
		return "", err
	}
	if string(p1) != string(p2) || len(p1) == 0 {
		return "", usageError{errors.New("register-user: passwords do not match or are empty")}
	}
	return string(p1), nil
}

// registerViaAPI speaks the shared-secret registration protocol.
func registerViaAPI(ctx context.Context, base, configPath, secretFile, username, password string, admin bool, env operatorEnv) (string, error) {
	var secret []byte
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return "", err
		}
		secret = bytes.TrimSpace(b)
	} else {
		cfg, err := config.Load(configPath, env.getenv)
		if err != nil {
			return "", usageError{err}
		}
		secret = cfg.SharedSecret()
	}
	if len(secret) == 0 {
		return "", usageError{errors.New("no registration shared secret: set registration_shared_secret or use -shared-secret-file")}
	}
	endpoint := strings.TrimSuffix(base, "/") + "/_synapse/admin/v1/register"
	client := &http.Client{Timeout: 30 * time.Second}
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	if err := call(ctx, client, "GET", endpoint, nil, &nonce); err != nil {
		return "", err
	}
	body := map[string]any{"nonce": nonce.Nonce, "username": username, "password": password, "admin": admin,
		"mac": impl.SharedSecretMAC(secret, nonce.Nonce, username, password, admin), "inhibit_login": true}
	var out struct {
		UserID string `json:"user_id"`
	}
	if err := call(ctx, client, "POST", endpoint, body, &out); err != nil {
		return "", err
	}
	return out.UserID, nil
}

func call(ctx context.Context, client *http.Client, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Errcode, Error string }
		_ = json.Unmarshal(data, &e)
		return fmt.Errorf("%s %s: %d %s: %s", method, url, resp.StatusCode, e.Errcode, e.Error)
	}
	return json.Unmarshal(data, out)
}

// tokens is `registrar tokens list|new|show|update|delete`, with the
// fields of Synapse's admin API.
func tokens(ctx context.Context, args []string, env operatorEnv) error {
	if len(args) == 0 {
		return usageError{errors.New("tokens: want list, new, show, update or delete")}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("tokens "+sub, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	configPath := fs.String("config", env.getenv("REGISTRAR_CONFIG"), "YAML configuration file")
	var valid, token, usesAllowed, expiry string
	var length int
	var expiresIn time.Duration
	switch sub {
	case "list":
		fs.StringVar(&valid, "valid", "", "true or false: only valid or only invalid tokens")
	case "new":
		fs.StringVar(&token, "token", "", "the token (random when empty)")
		fs.IntVar(&length, "length", 16, "length of a random token (1-64)")
		fs.StringVar(&usesAllowed, "uses-allowed", "", "registrations allowed (empty: unlimited)")
		fs.StringVar(&expiry, "expiry-time", "", "expiry in ms since the epoch (empty: never)")
		fs.DurationVar(&expiresIn, "expires-in", 0, "expiry as a duration from now, e.g. 168h")
	case "update":
		fs.StringVar(&usesAllowed, "uses-allowed", "", "new limit, or null for unlimited")
		fs.StringVar(&expiry, "expiry-time", "", "new expiry in ms since the epoch, or null for never")
		fs.DurationVar(&expiresIn, "expires-in", 0, "new expiry as a duration from now")
	case "show", "delete":
	default:
		return usageError{fmt.Errorf("tokens: unknown subcommand %q", sub)}
	}
	// TOKEN may come before or after the flags.
	var positional []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		positional, args = args[:1], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	positional = append(positional, fs.Args()...)
	if sub == "show" || sub == "update" || sub == "delete" {
		if len(positional) != 1 {
			return usageError{fmt.Errorf("tokens %s: give exactly one TOKEN", sub)}
		}
		token = positional[0]
	} else if len(positional) > 0 {
		return usageError{fmt.Errorf("tokens %s: unexpected argument %q", sub, positional[0])}
	}
	uses, usesSet, err := optionalInt(usesAllowed, "uses-allowed")
	if err != nil {
		return err
	}
	exp, expSet, err := optionalInt64(expiry, "expiry-time")
	if err != nil {
		return err
	}
	if expiresIn > 0 {
		t := time.Now().Add(expiresIn).UnixMilli()
		exp, expSet = &t, true
	}
	a, closeDB, err := openAdmin(ctx, *configPath, env)
	if err != nil {
		return err
	}
	defer closeDB()

	var result any
	switch sub {
	case "list":
		var filter *bool
		if valid != "" {
			v, err := strconv.ParseBool(valid)
			if err != nil {
				return usageError{errors.New("tokens list: -valid must be true or false")}
			}
			filter = &v
		}
		list, err := a.RegistrationTokens(ctx, filter)
		if err != nil {
			return err
		}
		out := make([]tokenOutput, 0, len(list))
		for _, t := range list {
			out = append(out, toOutput(t))
		}
		result = map[string]any{"registration_tokens": out}
	case "new":
		t, err := a.CreateRegistrationToken(ctx, impl.TokenSpec{Token: token, Length: length, UsesAllowed: uses, ExpiryTime: exp})
		if err != nil {
			return fmt.Errorf("tokens new: %w", err)
		}
		result = toOutput(t)
	case "show":
		t, err := a.RegistrationToken(ctx, token)
		if err != nil {
			return fmt.Errorf("tokens show: %w", err)
		}
		result = toOutput(t)
	case "update":
		var u db.TokenUpdate
		if usesSet {
			u.UsesAllowed = &uses
		}
		if expSet {
			u.ExpiryTime = &exp
		}
		t, err := a.UpdateRegistrationToken(ctx, token, u)
		if err != nil {
			return fmt.Errorf("tokens update: %w", err)
		}
		result = toOutput(t)
	case "delete":
		if err := a.DeleteRegistrationToken(ctx, token); err != nil {
			return fmt.Errorf("tokens delete: %w", err)
		}
		fmt.Fprintf(env.stdout, "deleted %s\n", token)
		return nil
	}
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(result)
}

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
	userID, err := a.ApproveUser(ctx, user)
	if err != nil {
		return fmt.Errorf("users approve: %w", err)
	}
	fmt.Fprintf(env.stdout, "approved %s\n", userID)
	return nil
}
