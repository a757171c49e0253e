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
	// PurposeSecurityNotice tells a person a sign-in method of their
	// account changed.
	PurposeSecurityNotice = "security_notice"
)

// mailer sends validation emails over SMTP.
type mailer struct {
	cfg       config.Email
	text      map[string]*texttemplate.Template
	html      map[string]*htmltemplate.Template
	serverNam string
	brand     mailBrand
}

// mailBrand is the operator's branding as emails show it (the pages'
// branding section).
type mailBrand struct {
	// ServiceName is branding.service_name, or the server name.
	ServiceName string
	// LogoURL is an absolute URL of the logo, "" for none.
	LogoURL string
	// Color is the buttons' colour; PolicyURI, TOSURI, Imprint the footer.
	Color, PolicyURI, TOSURI, Imprint string
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
	// Brand is the operator's branding.
	Brand mailBrand
	// Event is what changed (a security notice).
	Event string
}

// brandOf is the branding of cfg as emails show it: a logo that is a
// path of registrar's site becomes an absolute URL under public_baseurl.
func brandOf(cfg *config.Config) mailBrand {
	b := cfg.Branding
	out := mailBrand{ServiceName: b.ServiceName, Color: b.PrimaryColor, PolicyURI: b.PolicyURI, TOSURI: b.TOSURI, Imprint: b.Imprint}
	if out.ServiceName == "" {
		out.ServiceName = cfg.ServerName
	}
	if out.Color == "" {
		out.Color = "#0b6b50"
	}
	base := strings.TrimSuffix(cfg.PublicBaseURL, "/")
	switch {
	case strings.HasPrefix(b.LogoURI, "https://"):
		out.LogoURL = b.LogoURI
	case strings.HasPrefix(b.LogoURI, "/") && base != "":
		out.LogoURL = base + b.LogoURI
	}
	for _, u := range []*string{&out.PolicyURI, &out.TOSURI} {
		if strings.HasPrefix(*u, "/") && base != "" {
			*u = base + *u
		}
	}
	return out
}

// mailLayout frames the built-in HTML emails: the service's name and
// logo, the message, a footer with the operator's documents; styles
// inline, as mail clients want them.
const mailLayout = `{{define "button"}}<a href="{{.Link}}" style="display:inline-block;padding:12px 24px;border-radius:999px;background:{{.Brand.Color}};color:#ffffff;font-weight:600;text-decoration:none">{{end}}` +
	`{{define "top"}}<!DOCTYPE html><html><body style="margin:0;padding:0;background:#f4f5f7;font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;color:#1b1d22">` +
	`<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center" style="padding:24px 12px">` +
	`<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="max-width:520px;background:#ffffff;border:1px solid #c9ced6;border-radius:10px">` +
	`<tr><td style="padding:20px 24px;border-bottom:1px solid #c9ced6;font-weight:600;font-size:18px">` +
	`{{if .Brand.LogoURL}}<img src="{{.Brand.LogoURL}}" alt="" width="32" height="32" style="vertical-align:middle;margin-right:8px">{{end}}{{.Brand.ServiceName}}</td></tr>` +
	`<tr><td style="padding:24px;font-size:16px;line-height:1.5">{{end}}` +
	`{{define "bottom"}}</td></tr></table><p style="font-size:13px;color:#5b6270;max-width:520px">` +
	`{{if .Brand.PolicyURI}}<a href="{{.Brand.PolicyURI}}" style="color:#5b6270">Privacy policy</a> {{end}}` +
	`{{if .Brand.TOSURI}}<a href="{{.Brand.TOSURI}}" style="color:#5b6270">Terms of service</a> {{end}}` +
	`{{if .Brand.Imprint}}<br>{{.Brand.Imprint}}{{end}}</p></td></tr></table></body></html>{{end}}`

var defaultTextTemplates = map[string]string{
	PurposeRegistration:   "Hello,\n\nTo finish creating your {{.AppName}} account on {{.ServerName}}, confirm your email address by opening this link:\n\n{{.Link}}\n{{if .Code}}\nOr enter this code on the sign-up page: {{.Code}}\n{{end}}\nIf you did not ask for this, ignore this email.\n",
	PurposePasswordReset:  "Hello,\n\nA password reset was requested for your account on {{.ServerName}}. To continue, open this link:\n\n{{.Link}}\n\nIf you did not ask for this, ignore this email and your password stays as it is.\n",
	PurposeAddThreepid:    "Hello,\n\nTo add this email address to your account on {{.ServerName}}, open this link:\n\n{{.Link}}\n{{if .Code}}\nOr enter this code on your account page: {{.Code}}\n{{end}}\nIf you did not ask for this, ignore this email.\n",
	PurposeSecurityNotice: "Hello,\n\nA sign-in method of your account {{.Address}} on {{.ServerName}} changed: {{.Event}}.\n\nIf that was not you, sign in and check your account's security page, or ask the server's administrator for help.\n",
	purposeAlreadyInUse:   "Hello,\n\nSomeone tried to register an account on {{.ServerName}} with this email address, which already has an account. If that was you, you can reset your password instead.\n",
}

var defaultHTMLTemplates = map[string]string{
	PurposeRegistration:   `{{template "top" .}}<p>Hello,</p><p>To finish creating your {{.AppName}} account on {{.ServerName}}, confirm your email address:</p><p>{{template "button" .}}Confirm my email address</a></p>{{if .Code}}<p>Or enter this code on the sign-up page: <strong style="font-size:20px;letter-spacing:2px">{{.Code}}</strong></p>{{end}}<p>If you did not ask for this, ignore this email.</p>{{template "bottom" .}}`,
	PurposePasswordReset:  `{{template "top" .}}<p>Hello,</p><p>A password reset was requested for your account on {{.ServerName}}.</p><p>{{template "button" .}}Continue the password reset</a></p><p>If you did not ask for this, ignore this email.</p>{{template "bottom" .}}`,
	PurposeAddThreepid:    `{{template "top" .}}<p>Hello,</p><p>To add this email address to your account on {{.ServerName}}:</p><p>{{template "button" .}}Confirm my email address</a></p>{{if .Code}}<p>Or enter this code on your account page: <strong style="font-size:20px;letter-spacing:2px">{{.Code}}</strong></p>{{end}}<p>If you did not ask for this, ignore this email.</p>{{template "bottom" .}}`,
	PurposeSecurityNotice: `{{template "top" .}}<p>Hello,</p><p>A sign-in method of your account {{.Address}} on {{.ServerName}} changed: <strong>{{.Event}}</strong>.</p><p>If that was not you, sign in and check your account's security page, or ask the server's administrator for help.</p>{{template "bottom" .}}`,
	purposeAlreadyInUse:   `{{template "top" .}}<p>Hello,</p><p>Someone tried to register an account on {{.ServerName}} with this email address, which already has an account. If that was you, you can reset your password instead.</p>{{template "bottom" .}}`,
}

func newMailer(cfg config.Email, serverName string, brand mailBrand) (*mailer, error) {
	m := &mailer{cfg: cfg, serverNam: serverName, brand: brand, text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
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
		h, err := htmltemplate.New(purpose).Parse(mailLayout)
		if err == nil {
			h, err = h.Parse(html)
		}
		if err != nil {
			return nil, fmt.Errorf("email.template_dir: %s.html: %w", purpose, err)
		}
		m.text[purpose], m.html[purpose] = t, h
	}
	return m, nil
}

func (m *mailer) subject(purpose string) string {
	s := map[string]string{PurposeRegistration: m.cfg.Subjects.EmailValidation, PurposePasswordReset: m.cfg.Subjects.PasswordReset,
		PurposeAddThreepid: m.cfg.Subjects.AddThreepid, purposeAlreadyInUse: m.cfg.Subjects.EmailAlreadyInUse,
		PurposeSecurityNotice: "[%(server_name)s] A sign-in method of your account changed"}[purpose]
	return strings.NewReplacer("%(server_name)s", m.serverNam, "%(app)s", m.cfg.AppName).Replace(s)
}

// send delivers one message, giving up after send_timeout.
func (m *mailer) send(ctx context.Context, to, purpose string, data messageData) error {
	data.AppName, data.ServerName, data.Brand = m.cfg.AppName, m.serverNam, m.brand
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
