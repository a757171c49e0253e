package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"registrar/db"
	"registrar/impl"
	"registrar/impl/useradmin"
)

// userArgs are a users subcommand's arguments.
type userArgs struct {
	configPath   string
	json         bool
	user         string
	guests       bool
	deactivated  bool
	admins       bool
	admin        bool
	erase        bool
	logout       bool
	passwordFile string
	passwordIn   bool
	limit        int
}

// userCommand is one `registrar users` subcommand.
type userCommand struct {
	// needsUser: the subcommand takes a USER (optional for audit).
	needsUser bool
	flags     func(fs *flag.FlagSet, ua *userArgs)
	run       func(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv) error
}

// userCommands are the `registrar users` subcommands.
var userCommands = map[string]userCommand{
	"list": {flags: func(fs *flag.FlagSet, ua *userArgs) {
		fs.BoolVar(&ua.guests, "guests", false, "include guests")
		fs.BoolVar(&ua.deactivated, "deactivated", false, "include deactivated accounts")
		fs.BoolVar(&ua.admins, "admins", false, "only server admins")
	}, run: usersList},
	"show": {needsUser: true, run: usersShow},
	"create": {needsUser: true, flags: func(fs *flag.FlagSet, ua *userArgs) {
		fs.BoolVar(&ua.admin, "admin", false, "make the account a server admin")
		passwordFlags(fs, ua)
	}, run: usersCreate},
	"set-password": {needsUser: true, flags: func(fs *flag.FlagSet, ua *userArgs) {
		fs.BoolVar(&ua.logout, "logout-devices", false, "also log every device out")
		passwordFlags(fs, ua)
	}, run: usersSetPassword},
	"deactivate": {needsUser: true, flags: func(fs *flag.FlagSet, ua *userArgs) {
		fs.BoolVar(&ua.erase, "erase", false, "also wipe the profile and mark the user erased")
	}, run: usersDeactivate},
	"lock":          {needsUser: true, run: userFlag("locked", (*useradmin.Service).SetLocked, true)},
	"unlock":        {needsUser: true, run: userFlag("unlocked", (*useradmin.Service).SetLocked, false)},
	"suspend":       {needsUser: true, run: userFlag("suspended", (*useradmin.Service).SetSuspended, true)},
	"unsuspend":     {needsUser: true, run: userFlag("unsuspended", (*useradmin.Service).SetSuspended, false)},
	"make-admin":    {needsUser: true, run: userFlag("made admin", (*useradmin.Service).SetAdmin, true)},
	"revoke-admin":  {needsUser: true, run: userFlag("revoked admin of", (*useradmin.Service).SetAdmin, false)},
	"approve":       {needsUser: true, run: userFlag("approved", (*useradmin.Service).SetApproved, true)},
	"devices":       {needsUser: true, run: usersDevices},
	"factors":       {needsUser: true, run: usersFactors},
	"reset-factors": {needsUser: true, run: usersResetFactors},
	"audit": {flags: func(fs *flag.FlagSet, ua *userArgs) {
		fs.IntVar(&ua.limit, "limit", 50, "most records to show, newest first")
	}, run: usersAudit},
}

func passwordFlags(fs *flag.FlagSet, ua *userArgs) {
	fs.StringVar(&ua.passwordFile, "password-file", "", "read the password from this file")
	fs.BoolVar(&ua.passwordIn, "password-stdin", false, "read the password from standard input")
}

// users is `registrar users SUBCOMMAND [USER] [flags]`: account
// administration on the database directly (the server running or not),
// under the admin API's rules, each change audited as "cli:<os user>".
func users(ctx context.Context, args []string, env operatorEnv) error {
	if len(args) == 0 {
		return usageError{errors.New("users: want list, show, create, set-password, deactivate, lock, unlock, suspend, unsuspend, make-admin, revoke-admin, devices, factors, reset-factors, approve or audit")}
	}
	sub := args[0]
	cmd, ok := userCommands[sub]
	if !ok {
		return usageError{fmt.Errorf("users: unknown subcommand %q", sub)}
	}
	ua, err := parseUserArgs(sub, cmd, args[1:], env)
	if err != nil {
		return err
	}
	a, closeDB, err := openAdmin(ctx, ua.configPath, env)
	if err != nil {
		return err
	}
	defer closeDB()
	if ua.user != "" {
		id, ok := a.Accounts.CanonicalUserID(ua.user)
		if !ok {
			return fmt.Errorf("users %s: %s is not a user of this server", sub, ua.user)
		}
		ua.user = id
	}
	if err := cmd.run(ctx, a, ua, env); err != nil {
		if ua.user != "" {
			return fmt.Errorf("users %s %s: %w", sub, ua.user, err)
		}
		return fmt.Errorf("users %s: %w", sub, err)
	}
	return nil
}

// parseUserArgs reads a subcommand's flags; USER may come before or after
// them.
func parseUserArgs(sub string, cmd userCommand, args []string, env operatorEnv) (userArgs, error) {
	fs := flag.NewFlagSet("users "+sub, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var ua userArgs
	fs.StringVar(&ua.configPath, "config", env.getenv("REGISTRAR_CONFIG"), "YAML configuration file")
	fs.BoolVar(&ua.json, "json", false, "print JSON (for scripts) instead of a table")
	if cmd.flags != nil {
		cmd.flags(fs, &ua)
	}
	var positional []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		positional, args = args[:1], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return ua, usageError{err}
	}
	positional = append(positional, fs.Args()...)
	switch {
	case len(positional) > 1:
		return ua, usageError{fmt.Errorf("users %s: unexpected argument %q", sub, positional[1])}
	case cmd.needsUser && len(positional) == 0:
		return ua, usageError{fmt.Errorf("users %s: give a USER (user ID or localpart)", sub)}
	case len(positional) == 1 && !cmd.needsUser && sub != "audit":
		return ua, usageError{fmt.Errorf("users %s: unexpected argument %q", sub, positional[0])}
	case len(positional) == 1:
		ua.user = positional[0]
	}
	return ua, nil
}

// cliActor is who the audit records for an operator command.
func cliActor(env operatorEnv) string {
	name := env.getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}

// userFlag is a subcommand setting one flag of an account.
func userFlag(done string, set func(*useradmin.Service, context.Context, string, string, bool) error, value bool) func(context.Context, *impl.Admin, userArgs, operatorEnv) error {
	return func(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv) error {
		if err := set(a.Users, ctx, cliActor(env), ua.user, value); err != nil {
			return err
		}
		return printResult(ctx, a, ua, env, done)
	}
}

// printResult prints the account after a change: a line, or its JSON.
func printResult(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv, done string) error {
	if !ua.json {
		_, err := fmt.Fprintf(env.stdout, "%s %s\n", done, ua.user)
		return err
	}
	u, err := a.Users.Get(ctx, ua.user)
	if err != nil {
		return err
	}
	return printJSON(env.stdout, userJSON(u.Account, u.Threepids))
}

func usersList(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv) error {
	q := db.AccountQuery{Guests: ua.guests, Limit: 1000}
	if !ua.deactivated {
		q.Deactivated = new(bool)
	}
	if ua.admins {
		yes := true
		q.Admins = &yes
	}
	var all []db.Account
	for {
		page, total, err := a.Users.List(ctx, q)
		if err != nil {
			return err
		}
		all = append(all, page...)
		q.From += len(page)
		if len(page) == 0 || int64(q.From) >= total {
			break
		}
	}
	if ua.json {
		out := make([]userOutput, len(all))
		for i, acct := range all {
			out[i] = userJSON(acct, nil)
		}
		return printJSON(env.stdout, map[string]any{"users": out, "total": len(out)})
	}
	w := table(env.stdout, "USER ID", "ADMIN", "GUEST", "DEACTIVATED", "LOCKED", "SUSPENDED", "CREATED", "LAST SEEN")
	for _, acct := range all {
		row(w, acct.UserID, yesNo(acct.Admin), yesNo(acct.Kind == db.KindGuest), yesNo(acct.Deactivated()), yesNo(acct.Locked),
			yesNo(acct.Suspended), timestamp(&acct.CreatedAt), timestamp(acct.LastSeenAt))
	}
	return w.Flush()
}

func usersShow(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv) error {
	u, err := a.Users.Get(ctx, ua.user)
	if err != nil {
		return err
	}
	if ua.json {
		return printJSON(env.stdout, userJSON(u.Account, u.Threepids))
	}
	acct := u.Account
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"user ID", acct.UserID}, {"display name", acct.DisplayName}, {"admin", yesNo(acct.Admin)},
		{"guest", yesNo(acct.Kind == db.KindGuest)}, {"user type", derefOr(acct.UserType, "-")},
		{"deactivated", yesNo(acct.Deactivated())}, {"erased", yesNo(acct.Erased)}, {"locked", yesNo(acct.Locked)},
		{"suspended", yesNo(acct.Suspended)}, {"approved", yesNo(!acct.ApprovalPending)},
		{"application service", acct.AppserviceID}, {"created", timestamp(&acct.CreatedAt)}, {"last seen", timestamp(acct.LastSeenAt)},
	} {
		if kv[1] == "" {
			kv[1] = "-"
		}
		fmt.Fprintf(w, "%s:\t%s\n", kv[0], kv[1])
	}
	for _, t := range u.Threepids {
		fmt.Fprintf(w, "%s:\t%s\n", t.Medium, t.Address)
	}
	return w.Flush()
}

func usersCreate(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv) error {
	password, err := readPassword("users create", ua.passwordFile, ua.passwordIn, env)
	if err != nil {
		return err
	}
	admin := ua.admin
	if _, err := a.Users.Create(ctx, cliActor(env), ua.user, useradmin.Changes{Password: &password, Admin: &admin}); err != nil {
		return err
	}
	return printResult(ctx, a, ua, env, "created")
}

func usersSetPassword(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv) error {
	password, err := readPassword("users set-password", ua.passwordFile, ua.passwordIn, env)
	if err != nil {
		return err
	}
	if err := a.Users.ResetPassword(ctx, cliActor(env), ua.user, password, ua.logout); err != nil {
		return err
	}
	return printResult(ctx, a, ua, env, "set the password of")
}

func usersDeactivate(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv) error {
	if err := a.Users.Deactivate(ctx, cliActor(env), ua.user, ua.erase); err != nil {
		return err
	}
	return printResult(ctx, a, ua, env, "deactivated")
}

func usersDevices(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv) error {
	list, err := a.Users.Devices(ctx, ua.user)
	if err != nil {
		return err
	}
	if ua.json {
		out := make([]deviceOutput, len(list))
		for i, d := range list {
			out[i] = deviceOutput{DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenIP: d.LastSeenIP,
				LastSeenUserAgent: d.LastSeenUserAgent, LastSeenTS: d.LastSeenAt}
		}
		return printJSON(env.stdout, map[string]any{"devices": out, "total": len(out)})
	}
	w := table(env.stdout, "DEVICE ID", "NAME", "LAST SEEN", "LAST IP", "USER AGENT")
	for _, d := range list {
		row(w, d.DeviceID, d.DisplayName, timestamp(d.LastSeenAt), d.LastSeenIP, d.LastSeenUserAgent)
	}
	return w.Flush()
}

// usersFactors lists a user's second factors (never their secrets).
func usersFactors(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv) error {
	list, err := a.Users.SecondFactors(ctx, ua.user)
	if err != nil {
		return err
	}
	type factor struct {
		ID, Kind, Name string
		Created        int64  `json:"created_ts"`
		LastUsed       *int64 `json:"last_used_ts,omitempty"`
	}
	var out []factor
	recovery := 0
	for _, f := range list {
		switch {
		case f.Kind == db.FactorRecovery:
			recovery++
		case f.Confirmed:
			out = append(out, factor{ID: f.ID, Kind: f.Kind, Name: f.Name, Created: f.CreatedAt, LastUsed: f.LastUsedAt})
		}
	}
	if ua.json {
		return printJSON(env.stdout, map[string]any{"factors": out, "recovery_codes_left": recovery})
	}
	w := table(env.stdout, "ID", "KIND", "NAME", "ADDED", "LAST USED")
	for _, f := range out {
		row(w, f.ID, f.Kind, f.Name, timestamp(&f.Created), timestamp(f.LastUsed))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.stdout, "recovery codes left: %d\n", recovery)
	return err
}

// usersResetFactors removes every second factor of a user (audited).
func usersResetFactors(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv) error {
	n, err := a.Users.ResetSecondFactors(ctx, cliActor(env), ua.user)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.stdout, "removed %d second factors of %s\n", n, ua.user)
	return err
}

func usersAudit(ctx context.Context, a *impl.Admin, ua userArgs, env operatorEnv) error {
	list, err := a.Users.Audit(ctx, ua.user, ua.limit)
	if err != nil {
		return err
	}
	if ua.json {
		return printJSON(env.stdout, map[string]any{"records": list})
	}
	w := table(env.stdout, "WHEN", "ACTOR", "ACTION", "TARGET", "DETAIL")
	for _, r := range list {
		row(w, timestamp(&r.CreatedAt), r.Actor, r.Action, r.Target, r.Detail)
	}
	return w.Flush()
}

// userOutput is an account as `-json` prints it: the admin API's fields.
type userOutput struct {
	Name        string           `json:"name"`
	DisplayName string           `json:"displayname,omitempty"`
	Admin       bool             `json:"admin"`
	IsGuest     bool             `json:"is_guest"`
	UserType    *string          `json:"user_type"`
	Deactivated bool             `json:"deactivated"`
	Erased      bool             `json:"erased"`
	Locked      bool             `json:"locked"`
	Suspended   bool             `json:"suspended"`
	Approved    bool             `json:"approved"`
	CreationTS  int64            `json:"creation_ts"`
	LastSeenTS  *int64           `json:"last_seen_ts"`
	Threepids   []threepidOutput `json:"threepids,omitempty"`
}

type threepidOutput struct {
	Medium  string `json:"medium"`
	Address string `json:"address"`
	AddedAt int64  `json:"added_at"`
}

type deviceOutput struct {
	DeviceID          string `json:"device_id"`
	DisplayName       string `json:"display_name,omitempty"`
	LastSeenIP        string `json:"last_seen_ip,omitempty"`
	LastSeenUserAgent string `json:"last_seen_user_agent,omitempty"`
	LastSeenTS        *int64 `json:"last_seen_ts,omitempty"`
}

func userJSON(a db.Account, threepids []db.Threepid) userOutput {
	u := userOutput{Name: a.UserID, DisplayName: a.DisplayName, Admin: a.Admin, IsGuest: a.Kind == db.KindGuest,
		UserType: a.UserType, Deactivated: a.Deactivated(), Erased: a.Erased, Locked: a.Locked, Suspended: a.Suspended,
		Approved: !a.ApprovalPending, CreationTS: a.CreatedAt, LastSeenTS: a.LastSeenAt}
	for _, t := range threepids {
		u.Threepids = append(u.Threepids, threepidOutput{Medium: t.Medium, Address: t.Address, AddedAt: t.AddedAt})
	}
	return u
}

func table(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row(tw, header...)
	return tw
}

func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		sep := "\t"
		if i == len(cells)-1 {
			sep = "\n"
		}
		fmt.Fprint(w, strings.NewReplacer("\t", " ", "\n", " ").Replace(c)+sep)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func derefOr(s *string, none string) string {
	if s == nil {
		return none
	}
	return *s
}

// timestamp shows ms since the epoch as UTC time, or "-".
func timestamp(ms *int64) string {
	if ms == nil {
		return "-"
	}
	return time.UnixMilli(*ms).UTC().Format("2006-01-02 15:04:05Z")
}
