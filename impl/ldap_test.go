package impl_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-ldap/ldap/v3"

	"registrar/impl/config"
)

// slapdConfig is a directory of its own: dc=example,dc=org, people under
// ou=people, readable by anyone but passwords, which only bind.
const slapdConfig = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %[1]s/slapd.pid
database mdb
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw admin-secret
directory %[1]s/data
access to attrs=userPassword by self read by anonymous auth by * none
access to * by * read
`

const slapdData = `dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: uid=carol,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: carol
cn: Carol Directory
sn: Directory
mail: carol@dir.example
userPassword: ldap-carol-pw

dn: uid=dave,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dave
cn: Dave Directory
sn: Directory
mail: dave@dir.example
userPassword: ldap-dave-pw

dn: uid=administrator,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: administrator
cn: Admin Istrator
sn: Istrator
userPassword: ldap-admin-pw

dn: cn=reader,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: reader-secret
`

// startSlapd runs OpenLDAP's slapd with that directory on a free port and
// returns its URI; it skips without slapd (fails under CI=1).
func startSlapd(t *testing.T) string {
	t.Helper()
	exe, err := exec.LookPath("slapd")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/slapd"); statErr == nil {
			exe, err = "/usr/sbin/slapd", nil
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("slapd is not installed; .ci/run installs Debian's slapd")
		}
		t.Skip("slapd is not installed")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(slapdConfig, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	ldif := filepath.Join(dir, "data.ldif")
	if err := os.WriteFile(ldif, []byte(slapdData), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(filepath.Dir(exe), "slapadd"), "-f", conf, "-l", ldif).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	uri := "ldap://" + addr
	// With stats logging slapd says "slapd starting" once its listeners
	// are open: the test reads that rather than polling the port.
	cmd := exec.Command(exe, "-f", conf, "-h", uri+"/", "-d", "256")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	started := make(chan struct{})
	var logs strings.Builder
	var logsMu sync.Mutex
	go func() {
		scanner := bufio.NewScanner(stderr)
		once := sync.Once{}
		for scanner.Scan() {
			line := scanner.Text()
			logsMu.Lock()
			if logs.Len() < 1<<16 {
				logs.WriteString(line + "\n")
			}
			logsMu.Unlock()
			if strings.HasSuffix(line, "slapd starting") {
				once.Do(func() { close(started) })
			}
		}
	}()
	select {
	case <-started:
		return uri
	case <-time.After(time.Minute):
		logsMu.Lock()
		defer logsMu.Unlock()
		t.Fatalf("slapd did not start:\n%s", logs.String())
	}
	return ""
}

// ldapConfig checks passwords against uri: searching with a bind DN, or
// binding as uid=<name> directly.
func ldapConfig(uri string, search, localDB bool) func(*config.Config) {
	return func(c *config.Config) {
		l := config.LDAPConfig{Enabled: true, URI: uri, Base: "ou=people,dc=example,dc=org"}
		l.Attributes.UID, l.Attributes.Mail, l.Attributes.Name = "uid", "mail", "cn"
		if search {
			l.BindDN, l.BindPassword, l.Filter = "cn=reader,dc=example,dc=org", "reader-secret", "(objectClass=inetOrgPerson)"
		}
		c.Modules = []config.Module{{Module: config.LDAPModule, Config: l}}
		c.PasswordConfig.LocalDBEnabled = &localDB
	}
}

// TestLDAPLogins logs in against a real OpenLDAP, searching with a bind
// DN and binding directly: by uid and by mail (the account made on the
// first login, through the registration policy, with the entry's name and
// address), a wrong password, a person removed from the directory, and
// an unreachable directory (503 without local passwords; with them, they
// still work).
func TestLDAPLogins(t *testing.T) {
	uri := startSlapd(t)
	for _, mode := range []struct {
		name   string
		search bool
	}{{"search", true}, {"bind", false}} {
		t.Run(mode.name, func(t *testing.T) {
			env := newEnv(t, ldapConfig(uri, mode.search, false))
			ctx := context.Background()
			r := env.do("POST", loginURL, loginBody("carol", "ldap-carol-pw")).expect(t, 200, "")
			if r.str("user_id") != "@carol:example.org" {
				t.Fatalf("logged in as %s", r.Raw)
			}
			acct, err := env.store.AccountByUserID(ctx, "@carol:example.org")
			if err != nil || acct.DisplayName != "Carol Directory" || acct.PasswordHash != "" {
				t.Fatalf("the account %+v %v", acct, err)
			}
			if ids, _ := env.store.ExternalIDs(ctx, acct.UserID); len(ids) != 1 || ids[0].AuthProvider != "ldap" {
				t.Fatalf("external IDs %+v", ids)
			}
			env.do("POST", loginURL, jsonBody(map[string]any{"type": "m.login.password", "password": "ldap-carol-pw",
				"identifier": map[string]any{"type": "m.id.thirdparty", "medium": "email", "address": "carol@dir.example"}})).expect(t, 200, "")
			env.do("POST", loginURL, loginBody("carol", "not-carols-pw")).expect(t, 403, "M_FORBIDDEN")
			env.do("POST", loginURL, loginBody("nobody", "ldap-carol-pw")).expect(t, 403, "M_FORBIDDEN")
			if n, _ := env.store.CountAccounts(ctx); n != 1 {
				t.Fatalf("%d accounts", n)
			}
		})
	}

	// A person removed from the directory cannot log in any more.
	env := newEnv(t, ldapConfig(uri, true, false))
	env.do("POST", loginURL, loginBody("dave", "ldap-dave-pw")).expect(t, 200, "")
	admin, err := ldap.DialURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Bind("cn=admin,dc=example,dc=org", "admin-secret"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Del(ldap.NewDelRequest("uid=dave,ou=people,dc=example,dc=org", nil)); err != nil {
		t.Fatal(err)
	}
	env.do("POST", loginURL, loginBody("dave", "ldap-dave-pw")).expect(t, 403, "M_FORBIDDEN")

	// The sign-in page checks the directory too.
	oenv := newOAuthEnv(t, ldapConfig(uri, true, false))
	b := oenv.browser(t)
	if p := b.signIn(b.get(oenv.base+"/_registrar/login"), "carol", "ldap-carol-pw"); !strings.Contains(p.body, `id="user">@carol:example.org`) {
		t.Fatalf("the sign-in page: %d %s", p.status, p.body)
	}

	// An unreachable directory: 503 without local passwords; with them, a
	// local account still logs in.
	down := "ldap://127.0.0.1:1"
	off := newEnv(t, ldapConfig(down, true, false))
	off.do("POST", loginURL, loginBody("carol", "ldap-carol-pw")).expect(t, 503, "M_UNKNOWN")
	if code, body := off.page("GET", "/readyz", ""); code != 200 || !strings.Contains(body, "LDAP") {
		t.Fatalf("readyz %d %s", code, body)
	}
	withLocal := newEnv(t, ldapConfig(down, true, true))
	withLocal.register("local", "pw-local-1").expect(t, 200, "")
	withLocal.do("POST", loginURL, loginBody("local", "pw-local-1")).expect(t, 200, "")
}

// TestEveryWayInAppliesTheRegistrationPolicy: /register, a first login
// through LDAP and a first sign-in with an identity provider refuse the
// same forbidden name with the same errcode, and all three put new
// accounts in the approval queue.
func TestEveryWayInAppliesTheRegistrationPolicy(t *testing.T) {
	uri := startSlapd(t)
	op := newTestOP(t)
	env := newOAuthEnv(t, upstreamConfig(op), ldapConfig(uri, true, true), func(c *config.Config) {
		c.ForbiddenUsernames = []config.ForbiddenUsername{{Pattern: "^admin"}}
		c.RequireApprovalForNewAccounts = true
	})
	op.client("registrar", env.base+"/_registrar/upstream/callback")
	ctx := context.Background()

	// The forbidden name.
	want := env.register("administrator", "pw-administrator-1").Body["errcode"]
	if want == nil {
		t.Fatal("/register accepted a forbidden name")
	}
	ldapGot := env.do("POST", loginURL, loginBody("administrator", "ldap-admin-pw")).Body["errcode"]
	browserCtx := browserCtx(t)
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatal(err)
	}
	step, cancel := context.WithTimeout(browserCtx, time.Minute)
	defer cancel()
	if err := chromedp.Do(step, chromedp.Navigate(env.base+"/_registrar/upstream/oidc-test/authorize"), opSignIn("administrator", "op-admin-pw"),
		chromedp.WaitVisible(chromedp.ID("username-error"))); err != nil {
		t.Fatal(err)
	}
	ssoGot, err := chromedp.Run(step, chromedp.Evaluate[string](`document.querySelector("[data-errcode]").dataset.errcode`))
	if err != nil || ldapGot != want || ssoGot != want {
		t.Fatalf("/register %v, LDAP %v, SSO %q (%v)", want, ldapGot, ssoGot, err)
	}

	// The approval queue.
	env.register("queued", "pw-queued-1").expect(t, 403, "M_USER_AWAITING_APPROVAL")
	env.do("POST", loginURL, loginBody("carol", "ldap-carol-pw")).expect(t, 403, "M_USER_AWAITING_APPROVAL")
	if err := chromedp.Do(step, chromedp.Navigate(env.base+"/_registrar/upstream/oidc-test/authorize"), opSignIn("alice", "op-alice-pw"),
		chromedp.WaitVisible(chromedp.ID("message"))); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"@queued:example.org", "@carol:example.org", "@alice:example.org"} {
		if acct, err := env.store.AccountByUserID(ctx, user); err != nil || !acct.ApprovalPending {
			t.Errorf("%s: %+v %v", user, acct, err)
		}
	}
}
