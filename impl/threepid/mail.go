package threepid

import (
	"bytes"
	"context"
	"fmt"
	htmltemplate "html/template"
	"os"
	"path/filepath"
	"registrar/impl/config"
	"strings"
	texttemplate "text/template"

	"github.com/wneessen/go-mail"
)

// Purposes of a validation, each with its templates and subject.
const (
	PurposeRegistration  = "registration"
	PurposePasswordReset = "password_reset"
	PurposeAddThreepid   = "add_threepid"
	purposeAlreadyInUse  = "already_in_use"
)

// mailer sends validation emails over SMTP.
type mailer struct {
	cfg       config.Email
	text      map[string]*texttemplate.Template
	html      map[string]*htmltemplate.Template
	serverNam string
}

// messageData is what templates see.
type messageData struct {
	AppName    string
	ServerName string
	Address    string
	Link       string
	Token      string
	// Code is the token when it is short enough to type, else "".
	Code string
}

var defaultTextTemplates = map[string]string{
	PurposeRegistration:  "Hello,\n\nTo finish creating your {{.AppName}} account on {{.ServerName}}, confirm your email address by opening this link:\n\n{{.Link}}\n{{if .Code}}\nOr enter this code on the sign-up page: {{.Code}}\n{{end}}\nIf you did not ask for this, ignore this email.\n",
	PurposePasswordReset: "Hello,\n\nA password reset was requested for your account on {{.ServerName}}. To continue, open this link:\n\n{{.Link}}\n\nIf you did not ask for this, ignore this email and your password stays as it is.\n",
	PurposeAddThreepid:   "Hello,\n\nTo add this email address to your account on {{.ServerName}}, open this link:\n\n{{.Link}}\n{{if .Code}}\nOr enter this code on your account page: {{.Code}}\n{{end}}\nIf you did not ask for this, ignore this email.\n",
	purposeAlreadyInUse:  "Hello,\n\nSomeone tried to register an account on {{.ServerName}} with this email address, which already has an account. If that was you, you can reset your password instead.\n",
}

var defaultHTMLTemplates = map[string]string{
	PurposeRegistration:  `<!DOCTYPE html><html><body><p>Hello,</p><p>To finish creating your {{.AppName}} account on {{.ServerName}}, confirm your email address:</p><p><a href="{{.Link}}">Confirm my email address</a></p>{{if .Code}}<p>Or enter this code on the sign-up page: <strong>{{.Code}}</strong></p>{{end}}<p>If you did not ask for this, ignore this email.</p></body></html>`,
	PurposePasswordReset: `<!DOCTYPE html><html><body><p>Hello,</p><p>A password reset was requested for your account on {{.ServerName}}.</p><p><a href="{{.Link}}">Continue the password reset</a></p><p>If you did not ask for this, ignore this email.</p></body></html>`,
	PurposeAddThreepid:   `<!DOCTYPE html><html><body><p>Hello,</p><p>To add this email address to your account on {{.ServerName}}:</p><p><a href="{{.Link}}">Confirm my email address</a></p>{{if .Code}}<p>Or enter this code on your account page: <strong>{{.Code}}</strong></p>{{end}}<p>If you did not ask for this, ignore this email.</p></body></html>`,
	purposeAlreadyInUse:  `<!DOCTYPE html><html><body><p>Hello,</p><p>Someone tried to register an account on {{.ServerName}} with this email address, which already has an account. If that was you, you can reset your password instead.</p></body></html>`,
}

func newMailer(cfg config.Email, serverName string) (*mailer, error) {
	m := &mailer{cfg: cfg, serverNam: serverName, text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for purpose, def := range defaultTextTemplates {
		text, html := def, defaultHTMLTemplates[purpose]
		if cfg.TemplateDir != "" {
			if b, err := os.ReadFile(filepath.Join(cfg.TemplateDir, purpose+".txt")); err == nil {
				text = string(b)
			}
			if b, err := os.ReadFile(filepath.Join(cfg.TemplateDir, purpose+".html")); err == nil {
				html = string(b)
			}
		}
		t, err := texttemplate.New(purpose).Parse(text)
		if err != nil {
			return nil, fmt.Errorf("email.template_dir: %s.txt: %w", purpose, err)
		}
		h, err := htmltemplate.New(purpose).Parse(html)
		if err != nil {
			return nil, fmt.Errorf("email.template_dir: %s.html: %w", purpose, err)
		}
		m.text[purpose], m.html[purpose] = t, h
	}
	return m, nil
}

func (m *mailer) subject(purpose string) string {
	s := map[string]string{PurposeRegistration: m.cfg.Subjects.EmailValidation, PurposePasswordReset: m.cfg.Subjects.PasswordReset,
		PurposeAddThreepid: m.cfg.Subjects.AddThreepid, purposeAlreadyInUse: m.cfg.Subjects.EmailAlreadyInUse}[purpose]
	return strings.NewReplacer("%(server_name)s", m.serverNam, "%(app)s", m.cfg.AppName).Replace(s)
}

// send delivers one message, giving up after send_timeout.
func (m *mailer) send(ctx context.Context, to, purpose string, data messageData) error {
	data.AppName, data.ServerName = m.cfg.AppName, m.serverNam
	var text, html bytes.Buffer
	if err := m.text[purpose].Execute(&text, data); err != nil {
		return err
	}
	if err := m.html[purpose].Execute(&html, data); err != nil {
		return err
	}
	msg := mail.NewMsg()
	if err := msg.From(m.cfg.NotifFrom); err != nil {
		return fmt.Errorf("email.notif_from: %w", err)
	}
	if err := msg.To(to); err != nil {
		return err
	}
	msg.Subject(m.subject(purpose))
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(mail.TypeTextPlain, text.String())
	msg.AddAlternativeString(mail.TypeTextHTML, html.String())

	target, err := m.cfg.Target()
	if err != nil {
		return err
	}
	opts := []mail.Option{mail.WithPort(target.Port), mail.WithTimeout(m.cfg.SendTimeout.Duration)}
	switch {
	case target.ImplicitTLS:
		opts = append(opts, mail.WithSSL())
	case m.cfg.RequireTransportSecurity:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case m.cfg.EnableTLS != nil && !*m.cfg.EnableTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	}
	if target.User != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(target.User), mail.WithPassword(target.Pass))
	}
	client, err := mail.NewClient(target.Host, opts...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.SendTimeout.Duration)
	defer cancel()
	return client.DialAndSendWithContext(ctx, msg)
}
