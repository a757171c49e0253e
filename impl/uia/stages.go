package uia

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"gopkg.in/yaml.v3"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
)

// Dummy is m.login.dummy: always succeeds.
type Dummy struct{}

// Type implements Stage.
func (Dummy) Type() string { return TypeDummy }

// Params implements Stage.
func (Dummy) Params() map[string]any { return nil }

// Check implements Stage.
func (Dummy) Check(context.Context, *Attempt) (string, error) { return "true", nil }

// SSO is the m.login.sso stage: the person signs in again with an
// identity provider on the stage's fallback page, which completes it in
// the session; a client cannot complete it with an auth dict.
type SSO struct{}

// Type implements Stage.
func (SSO) Type() string { return TypeSSO }

// Params implements Stage.
func (SSO) Params() map[string]any { return nil }

// Check implements Stage.
func (SSO) Check(context.Context, *Attempt) (string, error) {
	return "", Fail(matrix.CodeForbidden, "Complete m.login.sso on its fallback page")
}

// SecondFactor is registrar's second factor stage: its fallback page
// checks a code or a passkey and completes it in the session; a client
// cannot complete it with an auth dict.
type SecondFactor struct{}

// Type implements Stage.
func (SecondFactor) Type() string { return TypeSecondFactor }

// Params implements Stage.
func (SecondFactor) Params() map[string]any { return nil }

// Check implements Stage.
func (SecondFactor) Check(context.Context, *Attempt) (string, error) {
	return "", Fail(matrix.CodeForbidden, "Complete "+TypeSecondFactor+" on its fallback page")
}

// TermsPolicy is one policy of the m.login.terms stage: a version and, per
// language code, the document's name and URL.
type TermsPolicy struct {
	Version      string
	Translations map[string]TermsDocument
}

// UnmarshalYAML reads {version: ..., <lang>: {name, url}, ...}.
func (p *TermsPolicy) UnmarshalYAML(n *yaml.Node) error {
	var raw map[string]yaml.Node
	if err := n.Decode(&raw); err != nil {
		return err
	}
	p.Translations = map[string]TermsDocument{}
	for k, v := range raw {
		if k == "version" {
			if err := v.Decode(&p.Version); err != nil {
				return err
			}
			continue
		}
		var d TermsDocument
		if err := v.Decode(&d); err != nil {
			return fmt.Errorf("language %q: %w", k, err)
		}
		p.Translations[k] = d
	}
	return nil
}

// TermsDocument is one language's version of a policy.
type TermsDocument struct {
	Name string `yaml:"name" json:"name"`
	URL  string `yaml:"url" json:"url"`
}

// Terms is m.login.terms (spec v1.11): the client accepts every policy in
// params; the accepted versions are the stage's result.
type Terms struct {
	params   map[string]any
	accepted string
}

// NewTerms offers policies, keyed by policy ID.
func NewTerms(policies map[string]TermsPolicy) *Terms {
	out := map[string]any{}
	versions := map[string]string{}
	for id, p := range policies {
		entry := map[string]any{"version": p.Version}
		for lang, d := range p.Translations {
			entry[lang] = d
		}
		out[id] = entry
		versions[id] = p.Version
	}
	return &Terms{params: map[string]any{"policies": out}, accepted: string(mustJSON(versions))}
}

// Type implements Stage.
func (*Terms) Type() string { return TypeTerms }

// Params implements Stage.
func (t *Terms) Params() map[string]any { return t.params }

// Check implements Stage.
func (t *Terms) Check(context.Context, *Attempt) (string, error) { return t.accepted, nil }

// Accepted is the stage's result: the versions of the policies accepted.
func (t *Terms) Accepted() string { return t.accepted }

// PasswordVerifier checks the identifier and password of an auth dict; it
// returns the user ID proved, a *Failure for wrong credentials, or another
// error. requester, when set, is the only user that may be proved.
type PasswordVerifier interface {
	VerifyPassword(ctx context.Context, auth *AuthCredentials, requester string) (string, error)
}

// AuthCredentials are the identifying fields of an m.login.password auth
// dict (or a login request).
type AuthCredentials struct {
	Identifier *api.UserIdentifier
	User       *string
	Medium     *string
	Address    *string
	Password   *string
}

// Password is m.login.password: the identifier and the account's
// password. Its result is the user ID it proved.
type Password struct{ Verifier PasswordVerifier }

// Type implements Stage.
func (Password) Type() string { return TypePassword }

// Params implements Stage.
func (Password) Params() map[string]any { return nil }

// ProvesUser implements UserProver.
func (Password) ProvesUser() {}

// Check implements Stage.
func (p Password) Check(ctx context.Context, a *Attempt) (string, error) {
	creds := &AuthCredentials{Identifier: a.Auth.Identifier, User: a.Auth.User, Password: a.Auth.Password,
		Medium: a.Auth.Medium, Address: a.Auth.Address}
	return p.Verifier.VerifyPassword(ctx, creds, a.Requester)
}

// TokenReserver takes one use of a registration token for a session.
type TokenReserver interface {
	ReserveRegistrationToken(ctx context.Context, token, sessionID string) error
}

// registrationTokenRE is the token grammar (Matrix v1.2): 1-64 characters
// of [A-Za-z0-9._~-], the length checked apart.
var registrationTokenRE = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

// ValidRegistrationToken reports whether s has the registration token
// grammar.
func ValidRegistrationToken(s string) bool { return len(s) <= 64 && registrationTokenRE.MatchString(s) }

// DataRegistrationToken is the session data key of the token a session
// reserved a use of.
const DataRegistrationToken = "registration_token"

// RegistrationToken is m.login.registration_token: passing it reserves one
// use of the token for the session (pending+1); the registration turns it
// into a completed use, and an abandoned session gives it back.
type RegistrationToken struct{ Reserver TokenReserver }

// Type implements Stage.
func (RegistrationToken) Type() string { return TypeRegistrationToken }

// Params implements Stage.
func (RegistrationToken) Params() map[string]any { return nil }

// Check implements Stage.
func (st RegistrationToken) Check(ctx context.Context, a *Attempt) (string, error) {
	if a.Auth.Token == nil || *a.Auth.Token == "" {
		return "", Fail(matrix.CodeMissingParam, "Missing registration token")
	}
	token := *a.Auth.Token
	if prev := a.Session.Data[DataRegistrationToken]; prev != "" && prev != token {
		return "", matrix.BadRequest(matrix.CodeInvalidParam, "Registration token has changed")
	}
	if !ValidRegistrationToken(token) {
		return "", Fail(matrix.CodeUnauthorized, "Invalid registration token")
	}
	err := st.Reserver.ReserveRegistrationToken(ctx, token, a.Session.rowID)
	if errors.Is(err, db.ErrTokenInvalid) {
		return "", Fail(matrix.CodeUnauthorized, "Invalid registration token")
	}
	if errors.Is(err, db.ErrConflict) {
		return "", errConflict
	}
	if err != nil {
		return "", matrix.Internal(err)
	}
	a.Session.Data[DataRegistrationToken] = token
	return token, nil
}

// ReservationID is the ID a session's registration token use is reserved
// under.
func (s *Session) ReservationID() string { return s.rowID }

// CaptchaVerifier asks the captcha provider about a response; a refused
// response is a *Failure.
type CaptchaVerifier interface {
	VerifyCaptcha(ctx context.Context, response, clientIP string) error
}

// Recaptcha is m.login.recaptcha, verified server-side with the provider.
type Recaptcha struct {
	PublicKey string
	Verifier  CaptchaVerifier
}

// Type implements Stage.
func (Recaptcha) Type() string { return TypeRecaptcha }

// Params implements Stage.
func (r Recaptcha) Params() map[string]any { return map[string]any{"public_key": r.PublicKey} }

// Check implements Stage.
func (r Recaptcha) Check(ctx context.Context, a *Attempt) (string, error) {
	if a.Auth.Response == nil || *a.Auth.Response == "" {
		return "", Fail(matrix.CodeCaptchaNeeded, "Captcha response is required")
	}
	if err := r.Verifier.VerifyCaptcha(ctx, *a.Auth.Response, a.ClientIP); err != nil {
		return "", err
	}
	return "true", nil
}

// ThreepidValidator returns the result of a validated 3PID session (the
// address it validated, as JSON), or false.
type ThreepidValidator interface {
	ValidatedThreepid(ctx context.Context, medium, sid, clientSecret string) (string, bool, error)
}

// Threepid is m.login.email.identity or m.login.msisdn: the validation
// session named by threepid_creds must be validated. Its result is what
// the validator says the session validated.
type Threepid struct {
	AuthType, Medium string
	Validator        ThreepidValidator
}

// Type implements Stage.
func (t Threepid) Type() string { return t.AuthType }

// Params implements Stage.
func (Threepid) Params() map[string]any { return nil }

// Check implements Stage.
func (t Threepid) Check(ctx context.Context, a *Attempt) (string, error) {
	creds := a.Auth.ThreepidCreds
	if creds == nil || creds.Sid == nil || creds.ClientSecret == nil {
		return "", Fail(matrix.CodeMissingParam, "Missing threepid_creds")
	}
	result, ok, err := t.Validator.ValidatedThreepid(ctx, t.Medium, *creds.Sid, *creds.ClientSecret)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", Fail(matrix.CodeUnauthorized, "Unable to get validated threepid")
	}
	return result, nil
}
