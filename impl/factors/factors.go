// Package factors keeps people's second factors: TOTP authenticator apps
// (RFC 6238, pquerna/otp; the secret sealed with the server's key, each
// time step's code good once), WebAuthn passkeys and security keys
// (go-webauthn/webauthn: no hand-written CBOR or COSE), and single-use
// recovery codes (kept hashed). It enrols, verifies and removes them; who
// must have one, and when a sign-in asks, is the caller's.
package factors

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/secrets"
)

// Errors of a check.
var (
	// ErrWrongCode is a code that is no current TOTP code nor an unspent
	// recovery code, or a WebAuthn answer that does not verify.
	ErrWrongCode = &matrix.Error{Status: http.StatusForbidden, Code: matrix.CodeForbidden, Message: "That code is not right"}
	// ErrCodeUsed is a TOTP code already used in its time step.
	ErrCodeUsed = &matrix.Error{Status: http.StatusForbidden, Code: matrix.CodeForbidden, Message: "That code was used already; wait for the next one"}
)

// Store is what the service keeps.
type Store interface {
	SecondFactors(ctx context.Context, userID string) ([]db.SecondFactor, error)
	AddSecondFactors(ctx context.Context, factors []db.SecondFactor, replacing bool) error
	ConfirmSecondFactor(ctx context.Context, userID, id, name string, step int64) error
	UseTOTPStep(ctx context.Context, userID, id string, step int64) error
	UseRecoveryCode(ctx context.Context, userID, codeHash string) error
	UseWebAuthnCredential(ctx context.Context, userID, id, credential string, counter int64) error
	SecondFactorByCredential(ctx context.Context, credentialID string) (db.SecondFactor, error)
	RemoveSecondFactor(ctx context.Context, userID, id string) error
	WebAuthnHandle(ctx context.Context, userID, candidate string) (string, error)
	UserByWebAuthnHandle(ctx context.Context, handle string) (string, error)
}

// Options configure the service.
type Options struct {
	// Secret seals the TOTP secrets (the server's secret key).
	Secret []byte
	// PublicBaseURL is the pages' address: WebAuthn's relying party is
	// its host, its origin the only one accepted.
	PublicBaseURL string
	// ServiceName names the service in authenticator apps and passkey
	// prompts.
	ServiceName string
	// WebAuthn offers passkeys and security keys (possible only where the
	// pages' host is a domain name, not an IP address).
	WebAuthn bool
	Now      func() time.Time
}

// Service enrols and checks second factors.
type Service struct {
	store    Store
	sealer   *secrets.Sealer
	webauthn *webauthn.WebAuthn
	issuer   string
	now      func() time.Time
}

// TOTP parameters: the authenticator apps' defaults (RFC 6238).
var totpOpts = totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// RecoveryCodes is how many recovery codes a set has.
const RecoveryCodes = 10

// New builds the service.
func New(store Store, o Options) (*Service, error) {
	sealer, err := secrets.NewSealer(o.Secret, "second factors v1")
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(o.PublicBaseURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("second factors: public_baseurl %q has no host", o.PublicBaseURL)
	}
	var wa *webauthn.WebAuthn
	if o.WebAuthn && net.ParseIP(u.Hostname()) == nil {
		wa, err = webauthn.New(&webauthn.Config{RPID: u.Hostname(), RPDisplayName: o.ServiceName, RPOrigins: []string{u.Scheme + "://" + u.Host},
			AttestationPreference: protocol.PreferNoAttestation,
			AuthenticatorSelection: protocol.AuthenticatorSelection{ResidentKey: protocol.ResidentKeyRequirementPreferred,
				UserVerification: protocol.VerificationPreferred}})
		if err != nil {
			return nil, fmt.Errorf("second factors: webauthn: %w", err)
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{store: store, sealer: sealer, webauthn: wa, issuer: o.ServiceName, now: o.Now}, nil
}

// WebAuthnAvailable reports whether passkeys and security keys are
// offered.
func (s *Service) WebAuthnAvailable() bool { return s != nil && s.webauthn != nil }

// Summary is what an account has enrolled.
type Summary struct {
	// Factors are the confirmed TOTP and WebAuthn factors.
	Factors []db.SecondFactor
	// RecoveryLeft is how many recovery codes are unspent.
	RecoveryLeft int
}

// Enrolled reports whether the account has a factor that signs in.
func (s Summary) Enrolled() bool { return len(s.Factors) > 0 }

// WebAuthn reports whether one of the factors is a WebAuthn credential.
func (s Summary) WebAuthn() bool {
	for _, f := range s.Factors {
		if f.Kind == db.FactorWebAuthn {
			return true
		}
	}
	return false
}

// Of summarises the account's factors.
func (s *Service) Of(ctx context.Context, userID string) (Summary, error) {
	all, err := s.store.SecondFactors(ctx, userID)
	if err != nil {
		return Summary{}, matrix.Internal(err)
	}
	var out Summary
	for _, f := range all {
		switch {
		case f.Kind == db.FactorRecovery:
			out.RecoveryLeft++
		case f.Confirmed:
			out.Factors = append(out.Factors, f)
		}
	}
	return out, nil
}

// NewID is a factor's ID.
func newID() string { return secrets.RandomString(16) }

// TOTPEnrolment is a TOTP secret waiting for its first code.
type TOTPEnrolment struct {
	ID string
	// Secret is the base32 secret to type; QR a PNG of its otpauth:// URI
	// as a data: URI.
	Secret, QR string
}

// StartTOTP makes a TOTP secret for the account, kept (sealed, not yet
// confirmed) until ConfirmTOTP.
func (s *Service) StartTOTP(ctx context.Context, userID string) (TOTPEnrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.issuer, AccountName: userID, Period: 30, SecretSize: 20,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return TOTPEnrolment{}, matrix.Internal(err)
	}
	qr, err := qrDataURI(key)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	id := newID()
	sealed, _ := s.sealer.Seal([]byte(key.Secret()), "totp "+userID+" "+id)
	if err := s.store.AddSecondFactors(ctx, []db.SecondFactor{{ID: id, UserID: userID, Kind: db.FactorTOTP, Secret: sealed}}, false); err != nil {
		return TOTPEnrolment{}, matrix.Internal(err)
	}
	return TOTPEnrolment{ID: id, Secret: key.Secret(), QR: qr}, nil
}

// qrDataURI is a PNG of the key's otpauth:// URI as a data: URI.
func qrDataURI(key *otp.Key) (string, error) {
	img, err := key.Image(240, 240)
	if err != nil {
		return "", matrix.Internal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", matrix.Internal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// totpSecret opens a factor's sealed secret.
func (s *Service) totpSecret(f db.SecondFactor) (string, error) {
	plain, _, err := s.sealer.Open(f.Secret, "totp "+f.UserID+" "+f.ID)
	return string(plain), err
}

// matchStep is the time step (now, or one before or after for clock
// drift) whose code code is, or -1.
func (s *Service) matchStep(secret, code string) int64 {
	now := s.now()
	for _, offset := range []int64{0, -1, 1} {
		t := now.Add(time.Duration(offset) * 30 * time.Second)
		want, err := totp.GenerateCodeCustom(secret, t, totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return t.Unix() / 30
		}
	}
	return -1
}

// normalise strips what people type around a code.
func normalise(code string) string {
	return strings.ToLower(strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(strings.TrimSpace(code)))
}

// ConfirmTOTP proves an enrolment with its first code and names it.
func (s *Service) ConfirmTOTP(ctx context.Context, userID, id, code, name string) error {
	all, err := s.store.SecondFactors(ctx, userID)
	if err != nil {
		return matrix.Internal(err)
	}
	for _, f := range all {
		if f.ID != id || f.Kind != db.FactorTOTP || f.Confirmed {
			continue
		}
		secret, err := s.totpSecret(f)
		if err != nil {
			return matrix.Internal(err)
		}
		step := s.matchStep(secret, normalise(code))
		if step < 0 {
			return ErrWrongCode
		}
		if name == "" {
			name = "Authenticator app"
		}
		if err := s.store.ConfirmSecondFactor(ctx, userID, id, name, step); err != nil {
			return ErrWrongCode
		}
		return nil
	}
	return ErrWrongCode
}

// VerifyCode checks a typed code: a current TOTP code of a confirmed
// factor (its step spent), or an unspent recovery code (spent). It
// returns the kind of factor that matched.
func (s *Service) VerifyCode(ctx context.Context, userID, code string) (string, error) {
	code = normalise(code)
	if code == "" {
		return "", ErrWrongCode
	}
	all, err := s.store.SecondFactors(ctx, userID)
	if err != nil {
		return "", matrix.Internal(err)
	}
	if len(code) == int(totpOpts.Digits) {
		if _, err := strconv.Atoi(code); err == nil {
			for _, f := range all {
				if f.Kind != db.FactorTOTP || !f.Confirmed {
					continue
				}
				secret, err := s.totpSecret(f)
				if err != nil {
					return "", matrix.Internal(err)
				}
				step := s.matchStep(secret, code)
				if step < 0 {
					continue
				}
				if err := s.store.UseTOTPStep(ctx, userID, f.ID, step); errors.Is(err, db.ErrFactorUsed) {
					return "", ErrCodeUsed
				} else if err != nil {
					return "", matrix.Internal(err)
				}
				return db.FactorTOTP, nil
			}
			return "", ErrWrongCode
		}
	}
	if err := s.store.UseRecoveryCode(ctx, userID, secrets.HashToken("recovery "+code)); err != nil {
		if errors.Is(err, db.ErrFactorUsed) {
			return "", ErrWrongCode
		}
		return "", matrix.Internal(err)
	}
	return db.FactorRecovery, nil
}

// NewRecoveryCodes replaces the account's recovery codes with a new set,
// shown this once ("xxxxx-xxxxx", lower-case letters and digits).
func (s *Service) NewRecoveryCodes(ctx context.Context, userID string) ([]string, error) {
	const alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
	var codes []string
	var rows []db.SecondFactor
	for range RecoveryCodes {
		raw := secrets.RandomBytes(10)
		var b strings.Builder
		for i, c := range raw {
			if i == 5 {
				b.WriteByte('-')
			}
			b.WriteByte(alphabet[int(c)%len(alphabet)])
		}
		code := b.String()
		codes = append(codes, code)
		rows = append(rows, db.SecondFactor{ID: newID(), UserID: userID, Kind: db.FactorRecovery, Confirmed: true,
			Secret: secrets.HashToken("recovery " + normalise(code))})
	}
	if err := s.store.AddSecondFactors(ctx, rows, true); err != nil {
		return nil, matrix.Internal(err)
	}
	return codes, nil
}

// Remove deletes one of the account's factors.
func (s *Service) Remove(ctx context.Context, userID, id string) error {
	err := s.store.RemoveSecondFactor(ctx, userID, id)
	if errors.Is(err, db.ErrNotFound) {
		return matrix.NotFound("No such second factor")
	}
	if err != nil {
		return matrix.Internal(err)
	}
	return nil
}

// waUser is an account as WebAuthn sees it.
type waUser struct {
	handle      []byte
	name, shown string
	creds       []webauthn.Credential
	ids         map[string]string // credential ID (base64url) -> factor ID
}

func (u *waUser) WebAuthnID() []byte                         { return u.handle }
func (u *waUser) WebAuthnName() string                       { return u.name }
func (u *waUser) WebAuthnDisplayName() string                { return u.shown }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// user loads the account's WebAuthn handle and credentials.
func (s *Service) user(ctx context.Context, userID, displayName string) (*waUser, error) {
	handle, err := s.store.WebAuthnHandle(ctx, userID, base64.RawURLEncoding.EncodeToString(secrets.RandomBytes(32)))
	if err != nil {
		return nil, matrix.Internal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(handle)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	if displayName == "" {
		displayName = userID
	}
	u := &waUser{handle: raw, name: userID, shown: displayName, ids: map[string]string{}}
	all, err := s.store.SecondFactors(ctx, userID)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	for _, f := range all {
		if f.Kind != db.FactorWebAuthn {
			continue
		}
		var c webauthn.Credential
		if err := json.Unmarshal([]byte(f.Secret), &c); err != nil {
			return nil, matrix.Internal(err)
		}
		u.creds = append(u.creds, c)
		u.ids[f.CredentialID] = f.ID
	}
	return u, nil
}

// BeginRegistration starts enrolling a passkey or security key: the
// options for navigator.credentials.create, and the ceremony to keep
// until FinishRegistration.
func (s *Service) BeginRegistration(ctx context.Context, userID, displayName string) (options []byte, ceremony string, err error) {
	if s.webauthn == nil {
		return nil, "", matrix.NotFound("Passkeys are not enabled on this server")
	}
	u, err := s.user(ctx, userID, displayName)
	if err != nil {
		return nil, "", err
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range u.creds {
		exclude = append(exclude, c.Descriptor())
	}
	creation, session, err := s.webauthn.BeginRegistration(u, webauthn.WithExclusions(exclude),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementPreferred))
	if err != nil {
		return nil, "", matrix.Internal(err)
	}
	return marshalPair(creation, session)
}

func marshalPair(options any, session *webauthn.SessionData) ([]byte, string, error) {
	opts, err := json.Marshal(options)
	if err != nil {
		return nil, "", matrix.Internal(err)
	}
	sess, err := json.Marshal(session)
	if err != nil {
		return nil, "", matrix.Internal(err)
	}
	return opts, string(sess), nil
}

// FinishRegistration verifies the authenticator's answer and keeps the
// credential under name.
func (s *Service) FinishRegistration(ctx context.Context, userID, ceremony string, response []byte, name string) error {
	u, err := s.user(ctx, userID, "")
	if err != nil {
		return err
	}
	var session webauthn.SessionData
	if err := json.Unmarshal([]byte(ceremony), &session); err != nil {
		return ErrWrongCode
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return ErrWrongCode
	}
	cred, err := s.webauthn.CreateCredential(u, session, parsed)
	if err != nil {
		return ErrWrongCode
	}
	raw, err := json.Marshal(cred)
	if err != nil {
		return matrix.Internal(err)
	}
	if name == "" {
		name = "Passkey"
	}
	f := db.SecondFactor{ID: newID(), UserID: userID, Kind: db.FactorWebAuthn, Name: name, Secret: string(raw),
		CredentialID: base64.RawURLEncoding.EncodeToString(cred.ID), Confirmed: true, LastStep: int64(cred.Authenticator.SignCount)}
	if err := s.store.AddSecondFactors(ctx, []db.SecondFactor{f}, false); err != nil {
		return matrix.Internal(err)
	}
	return nil
}

// BeginLogin starts a WebAuthn sign-in: of userID's credentials (a second
// factor), or, userID "", of any passkey (no username).
func (s *Service) BeginLogin(ctx context.Context, userID string) (options []byte, ceremony string, err error) {
	if s.webauthn == nil {
		return nil, "", matrix.NotFound("Passkeys are not enabled on this server")
	}
	if userID == "" {
		assertion, session, err := s.webauthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
		if err != nil {
			return nil, "", matrix.Internal(err)
		}
		return marshalPair(assertion, session)
	}
	u, err := s.user(ctx, userID, "")
	if err != nil {
		return nil, "", err
	}
	if len(u.creds) == 0 {
		return nil, "", ErrWrongCode
	}
	assertion, session, err := s.webauthn.BeginLogin(u)
	if err != nil {
		return nil, "", matrix.Internal(err)
	}
	return marshalPair(assertion, session)
}

// FinishLogin verifies a WebAuthn sign-in begun by BeginLogin for userID
// (or for anyone, userID "") and returns whose credential it was.
func (s *Service) FinishLogin(ctx context.Context, userID, ceremony string, response []byte) (string, error) {
	var session webauthn.SessionData
	if err := json.Unmarshal([]byte(ceremony), &session); err != nil {
		return "", ErrWrongCode
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return "", ErrWrongCode
	}
	var u *waUser
	var cred *webauthn.Credential
	if userID == "" {
		var found webauthn.User
		found, cred, err = s.webauthn.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			owner, err := s.store.UserByWebAuthnHandle(ctx, base64.RawURLEncoding.EncodeToString(userHandle))
			if err != nil {
				return nil, err
			}
			return s.user(ctx, owner, "")
		}, session, parsed)
		if err == nil {
			u = found.(*waUser)
		}
	} else {
		if u, err = s.user(ctx, userID, ""); err != nil {
			return "", err
		}
		cred, err = s.webauthn.ValidateLogin(u, session, parsed)
	}
	if err != nil || cred == nil {
		return "", ErrWrongCode
	}
	id := base64.RawURLEncoding.EncodeToString(cred.ID)
	raw, _ := json.Marshal(cred)
	if err := s.store.UseWebAuthnCredential(ctx, u.name, u.ids[id], string(raw), int64(cred.Authenticator.SignCount)); err != nil {
		return "", matrix.Internal(err)
	}
	return u.name, nil
}

// PendingTOTP shows again a TOTP enrolment still waiting for its first
// code (after a wrong one).
func (s *Service) PendingTOTP(ctx context.Context, userID, id string) (TOTPEnrolment, error) {
	all, err := s.store.SecondFactors(ctx, userID)
	if err != nil {
		return TOTPEnrolment{}, matrix.Internal(err)
	}
	for _, f := range all {
		if f.ID != id || f.Kind != db.FactorTOTP || f.Confirmed {
			continue
		}
		secret, err := s.totpSecret(f)
		if err != nil {
			return TOTPEnrolment{}, matrix.Internal(err)
		}
		key, err := otp.NewKeyFromURL((&url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + s.issuer + ":" + userID,
			RawQuery: url.Values{"secret": {secret}, "issuer": {s.issuer}, "period": {"30"}, "digits": {"6"}, "algorithm": {"SHA1"}}.Encode()}).String())
		if err != nil {
			return TOTPEnrolment{}, matrix.Internal(err)
		}
		qr, err := qrDataURI(key)
		if err != nil {
			return TOTPEnrolment{}, err
		}
		return TOTPEnrolment{ID: id, Secret: secret, QR: qr}, nil
	}
	return TOTPEnrolment{}, matrix.NotFound("No such enrolment")
}
