// Package ldapauth checks passwords against an LDAP directory, as
// matrix-synapse-ldap3 does (its configuration names): with a bind DN, it
// searches the person (by uid, or by mail for an email login, within the
// filter) and binds as the entry found; without one, it binds as
// uid=<name>,<base> and reads the entry as the person. Active Directory
// binds as user@domain. go-ldap/ldap does the protocol.
package ldapauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"registrar/impl/config"
)

// Errors of a check.
var (
	// ErrRefused: no such person, or the wrong password.
	ErrRefused = errors.New("ldapauth: invalid credentials")
	// ErrUnavailable: the directory could not be reached or answered
	// nonsense.
	ErrUnavailable = errors.New("ldapauth: the directory is unavailable")
)

// Person is a directory entry that proved its password.
type Person struct {
	// UID is the entry's uid attribute: the account's localpart.
	UID, Mail, Name string
}

// Directory is the configured directory.
type Directory struct {
	cfg          config.LDAPConfig
	bindPassword string
	tls          *tls.Config
	timeout      time.Duration
}

// New prepares the directory of cfg (nothing is dialled yet).
func New(cfg config.LDAPConfig) (*Directory, error) {
	d := &Directory{cfg: cfg, bindPassword: cfg.BindPassword, timeout: 5 * time.Second}
	if cfg.BindPasswordFile != "" {
		b, err := os.ReadFile(cfg.BindPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("ldap bind_password_file: %w", err)
		}
		d.bindPassword = strings.TrimSpace(string(b))
	}
	d.tls = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.TLSOptions.Validate != nil && !*cfg.TLSOptions.Validate}
	if f := cfg.TLSOptions.CACertsFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("ldap tls_options.ca_certs_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap tls_options.ca_certs_file %s holds no certificate", f)
		}
		d.tls.RootCAs = pool
	}
	return d, nil
}

// dial connects (and starts TLS when asked).
func (d *Directory) dial(ctx context.Context) (*ldap.Conn, error) {
	dialer := &net.Dialer{Timeout: d.timeout}
	conn, err := ldap.DialURL(d.cfg.URI, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(d.tls))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	conn.SetTimeout(d.timeout)
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d.timeout {
		conn.SetTimeout(time.Until(deadline))
	}
	if d.cfg.StartTLS {
		if err := conn.StartTLS(d.tls); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: start_tls: %v", ErrUnavailable, err)
		}
	}
	return conn, nil
}

// Authenticate checks login (a username, or an email address when byMail)
// and password against the directory.
func (d *Directory) Authenticate(ctx context.Context, login string, byMail bool, password string) (Person, error) {
	if login == "" || password == "" {
		// An empty password is an anonymous bind, which "succeeds".
		return Person{}, ErrRefused
	}
	conn, err := d.dial(ctx)
	if err != nil {
		return Person{}, err
	}
	defer conn.Close()
	if d.cfg.BindDN != "" || byMail {
		return d.searchThenBind(conn, login, byMail, password)
	}
	userDN := d.cfg.Attributes.UID + "=" + ldap.EscapeDN(login) + "," + d.cfg.Base
	bindAs := userDN
	if d.cfg.ActiveDirectory {
		bindAs = login
		if !strings.Contains(login, "@") && d.cfg.DefaultDomain != "" {
			bindAs = login + "@" + d.cfg.DefaultDomain
		}
	}
	if err := conn.Bind(bindAs, password); err != nil {
		return Person{}, bindError(err)
	}
	filter := "(" + d.cfg.Attributes.UID + "=" + ldap.EscapeFilter(login) + ")"
	if d.cfg.ActiveDirectory {
		local, _, _ := strings.Cut(login, "@")
		filter = "(sAMAccountName=" + ldap.EscapeFilter(local) + ")"
	}
	p, _, err := d.findOne(conn, filter)
	return p, err
}

// searchThenBind finds the person's entry (as the bind DN, or
// anonymously) and binds as it.
func (d *Directory) searchThenBind(conn *ldap.Conn, login string, byMail bool, password string) (Person, error) {
	if d.cfg.BindDN != "" {
		if err := conn.Bind(d.cfg.BindDN, d.bindPassword); err != nil {
			// The service account itself is refused: the directory is
			// misconfigured, not the person wrong.
			return Person{}, fmt.Errorf("%w: bind_dn: %v", ErrUnavailable, err)
		}
	}
	attr := d.cfg.Attributes.UID
	if byMail {
		attr = d.cfg.Attributes.Mail
		if attr == "" {
			return Person{}, ErrRefused
		}
	}
	p, dn, err := d.findOne(conn, "("+attr+"="+ldap.EscapeFilter(login)+")")
	if err != nil {
		return Person{}, err
	}
	if err := conn.Bind(dn, password); err != nil {
		return Person{}, bindError(err)
	}
	return p, nil
}

// findOne searches the base for exactly one entry of filter (within the
// configured filter).
func (d *Directory) findOne(conn *ldap.Conn, filter string) (Person, string, error) {
	if f := strings.TrimSpace(d.cfg.Filter); f != "" {
		if !strings.HasPrefix(f, "(") {
			f = "(" + f + ")"
		}
		filter = "(&" + filter + f + ")"
	}
	attrs := []string{d.cfg.Attributes.UID}
	for _, a := range []string{d.cfg.Attributes.Mail, d.cfg.Attributes.Name} {
		if a != "" {
			attrs = append(attrs, a)
		}
	}
	res, err := conn.Search(ldap.NewSearchRequest(d.cfg.Base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, int(d.timeout.Seconds()),
		false, filter, attrs, nil))
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return Person{}, "", ErrRefused
		}
		return Person{}, "", fmt.Errorf("%w: search: %v", ErrUnavailable, err)
	}
	if len(res.Entries) != 1 {
		// Nobody, or an ambiguous name: nobody to sign in.
		return Person{}, "", ErrRefused
	}
	e := res.Entries[0]
	p := Person{UID: e.GetAttributeValue(d.cfg.Attributes.UID)}
	if d.cfg.Attributes.Mail != "" {
		p.Mail = e.GetAttributeValue(d.cfg.Attributes.Mail)
	}
	if d.cfg.Attributes.Name != "" {
		p.Name = e.GetAttributeValue(d.cfg.Attributes.Name)
	}
	if p.UID == "" {
		return Person{}, "", ErrRefused
	}
	return p, e.DN, nil
}

// bindError sorts a failed bind: wrong credentials, or the directory.
func bindError(err error) error {
	if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) || ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidDNSyntax) ||
		ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) || ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		return ErrRefused
	}
	return fmt.Errorf("%w: bind: %v", ErrUnavailable, err)
}

// Ping binds (as the bind DN, or anonymously) to tell whether the
// directory answers.
func (d *Directory) Ping(ctx context.Context) error {
	conn, err := d.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if d.cfg.BindDN != "" {
		if err := conn.Bind(d.cfg.BindDN, d.bindPassword); err != nil {
			return fmt.Errorf("%w: bind_dn: %v", ErrUnavailable, err)
		}
	}
	return nil
}
