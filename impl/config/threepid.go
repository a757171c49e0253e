package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// Captcha is Synapse's captcha options plus Dendrite's widget options, so
// that reCAPTCHA, hCaptcha and Cloudflare Turnstile all work: each has a
// siteverify endpoint taking secret, response and remoteip.
type Captcha struct {
	RecaptchaPublicKey      string `yaml:"recaptcha_public_key"`
	RecaptchaPrivateKey     string `yaml:"recaptcha_private_key"`
	RecaptchaPrivateKeyPath string `yaml:"recaptcha_private_key_path"`
	RecaptchaSiteverifyAPI  string `yaml:"recaptcha_siteverify_api"`
	// RecaptchaAPIJSURL is the widget script of the fallback page.
	RecaptchaAPIJSURL string `yaml:"recaptcha_api_js_url"`
	// RecaptchaSitekeyClass is the CSS class the widget script looks for.
	RecaptchaSitekeyClass string `yaml:"recaptcha_sitekey_class"`
}

// Email is Synapse's email section, plus smtp_url as a single alternative
// to the split SMTP fields, template_dir for operator templates and
// send_timeout.
type Email struct {
	SMTPURL                  string        `yaml:"smtp_url"`
	SMTPHost                 string        `yaml:"smtp_host"`
	SMTPPort                 int           `yaml:"smtp_port"`
	SMTPUser                 string        `yaml:"smtp_user"`
	SMTPPass                 string        `yaml:"smtp_pass"`
	ForceTLS                 bool          `yaml:"force_tls"`
	RequireTransportSecurity bool          `yaml:"require_transport_security"`
	EnableTLS                *bool         `yaml:"enable_tls"`
	NotifFrom                string        `yaml:"notif_from"`
	AppName                  string        `yaml:"app_name"`
	ValidationTokenLifetime  Duration      `yaml:"validation_token_lifetime"`
	Subjects                 EmailSubjects `yaml:"subjects"`
	// TemplateDir holds operator templates overriding the built-in ones:
	// <purpose>.txt and <purpose>.html for registration, password_reset,
	// add_threepid and already_in_use.
	TemplateDir string   `yaml:"template_dir"`
	SendTimeout Duration `yaml:"send_timeout"`
	// ValidateOnGet validates registration and add-3PID links when they
	// are opened, as Synapse does; by default the link opens a page whose
	// button validates, so that link scanners cannot validate for the user.
	ValidateOnGet bool `yaml:"validate_on_get"`
}

// EmailSubjects are the subject lines; %(server_name)s and %(app)s are
// replaced as in Synapse.
type EmailSubjects struct {
	EmailValidation   string `yaml:"email_validation"`
	PasswordReset     string `yaml:"password_reset"`
	AddThreepid       string `yaml:"email_add_threepid"`
	EmailAlreadyInUse string `yaml:"email_already_in_use"`
}

// complete sets the email section's defaults (Synapse's).
func (c *Email) complete() {
	if c.SMTPHost == "" {
		c.SMTPHost = "localhost"
	}
	if c.AppName == "" {
		c.AppName = "Matrix"
	}
	if c.ValidationTokenLifetime.Duration == 0 {
		c.ValidationTokenLifetime.Duration = time.Hour
	}
	if c.SendTimeout.Duration == 0 {
		c.SendTimeout.Duration = 10 * time.Second
	}
	s := &c.Subjects
	if s.EmailValidation == "" {
		s.EmailValidation = "[%(server_name)s] Validate your email"
	}
	if s.PasswordReset == "" {
		s.PasswordReset = "[%(server_name)s] Password reset"
	}
	if s.AddThreepid == "" {
		s.AddThreepid = "[%(server_name)s] Validate your email"
	}
	if s.EmailAlreadyInUse == "" {
		s.EmailAlreadyInUse = "[%(server_name)s] Email already in use"
	}
}

// SMTPTarget is where mail goes: smtp_url, or the split fields.
type SMTPTarget struct {
	Host        string
	Port        int
	User, Pass  string
	ImplicitTLS bool
}

// Target resolves smtp_url or the split fields.
func (c *Email) Target() (SMTPTarget, error) {
	t := SMTPTarget{Host: c.SMTPHost, Port: c.SMTPPort, User: c.SMTPUser, Pass: c.SMTPPass, ImplicitTLS: c.ForceTLS}
	if c.SMTPURL != "" {
		u, err := url.Parse(c.SMTPURL)
		if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
			return t, fmt.Errorf("email.smtp_url %q must be smtp://[user:pass@]host[:port] or smtps://...", redactURL(c.SMTPURL))
		}
		t.Host, t.ImplicitTLS, t.Port = u.Hostname(), u.Scheme == "smtps", 0
		if p := u.Port(); p != "" {
			t.Port, _ = strconv.Atoi(p)
		}
		if u.User != nil {
			t.User = u.User.Username()
			t.Pass, _ = u.User.Password()
		}
	}
	if t.Port == 0 {
		t.Port = 25
		if t.ImplicitTLS {
			t.Port = 465
		}
	}
	return t, nil
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

// SMSGateway sends SMS through an HTTP gateway: a JSON POST of
// {"to": "+<E.164>", "text": ...} to URL, with an optional bearer token.
type SMSGateway struct {
	URL         string   `yaml:"url"`
	BearerToken string   `yaml:"bearer_token"`
	Timeout     Duration `yaml:"timeout"`
}

// ThreepidDelegates is Synapse's account_threepid_delegates: phone numbers
// validated by an identity server instead of registrar's SMS gateway.
// (Synapse removed email delegation as an account-takeover risk; so does
// registrar.)
type ThreepidDelegates struct {
	Msisdn string `yaml:"msisdn"`
}

// AllowedThreepid is one allowed_local_3pids entry: addresses of medium
// must match pattern.
type AllowedThreepid struct {
	Medium  string `yaml:"medium"`
	Pattern string `yaml:"pattern"`
}

type compiledAllowed struct {
	medium string
	re     *regexp.Regexp
}

// ThreepidAllowed applies allowed_local_3pids: with none configured every
// address is allowed.
func (c *Config) ThreepidAllowed(medium, address string) bool {
	if len(c.built.allowed3PIDs) == 0 {
		return true
	}
	for _, a := range c.built.allowed3PIDs {
		if a.medium == medium && a.re.MatchString(address) {
			return true
		}
	}
	return false
}

// MsisdnEnabled reports whether phone numbers can be validated.
func (c *Config) MsisdnEnabled() bool {
	return c.SMSGateway != nil || c.AccountThreepidDelegates.Msisdn != ""
}
