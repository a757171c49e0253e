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
	"net/http"
	"os"
	"registrar/impl"
	"registrar/impl/accounts"
	"registrar/impl/config"
	"strings"
	"time"

	"golang.org/x/term"
)

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
	password, err := readPassword("register-user", *passwordFile, *passwordStdin, env)
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
		var created accounts.Created
		created, err = a.Accounts.Create(ctx, accounts.NewAccount{Source: accounts.SourceOperator,
			Localpart: strings.ToLower(*username), Password: &password, Admin: *admin})
		userID = created.UserID
	}
	if err != nil {
		return fmt.Errorf("register-user: %w", err)
	}
	fmt.Fprintf(env.stdout, "registered %s%s\n", userID, map[bool]string{true: " (admin)"}[*admin])
	return nil
}

// readPassword takes the password from a file, standard input, or a
// prompt on the terminal (asked twice).
func readPassword(cmd, file string, fromStdin bool, env operatorEnv) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageError{fmt.Errorf("%s: %w", cmd, err)}
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case fromStdin:
		line, err := bufio.NewReader(env.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		if line = strings.TrimRight(line, "\r\n"); line == "" {
			return "", usageError{fmt.Errorf("%s: empty password on standard input", cmd)}
		}
		return line, nil
	}
	f, ok := env.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usageError{fmt.Errorf("%s: no password: use -password-file, -password-stdin or a terminal", cmd)}
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
		return "", usageError{fmt.Errorf("%s: passwords do not match or are empty", cmd)}
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
