package impl

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unicode"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"
)

// maxPasswordLength is Synapse's cap on passwords, in characters.
const maxPasswordLength = 512

// hasher hashes and verifies passwords in a bounded pool: at most one
// hash per core runs at once, so a flood of registrations or logins cannot
// exhaust memory or starve other requests, and every core is used.
type hasher struct {
	cfg   PasswordConfig
	cost  int // bcrypt rounds
	slots chan struct{}
}

func newHasher(cfg PasswordConfig, bcryptRounds int) *hasher {
	return &hasher{cfg: cfg, cost: bcryptRounds, slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *hasher) release() { <-h.slots }

// prepare normalises the password as Synapse does (NFKC) and adds the pepper.
func (h *hasher) prepare(password string) []byte {
	return []byte(norm.NFKC.String(password) + h.cfg.Pepper)
}

// Hash returns an encoded hash of password with the configured algorithm.
func (h *hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	pw := h.prepare(password)
	if h.cfg.Algorithm == "bcrypt" {
		if len(pw) > 72 {
			pw = pw[:72] // bcrypt's limit, as Synapse truncates
		}
		b, err := bcrypt.GenerateFromPassword(pw, h.cost)
		return string(b), err
	}
	a := h.cfg.Argon2
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey(pw, salt, a.Iterations, a.MemoryKiB, a.Parallelism, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, a.MemoryKiB, a.Iterations, a.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether password matches the stored hash (argon2id or
// bcrypt, whatever the configured algorithm is now).
func (h *hasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	if encoded == "" {
		return false, nil
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	pw := h.prepare(password)
	if strings.HasPrefix(encoded, "$2") {
		if len(pw) > 72 {
			pw = pw[:72]
		}
		err := bcrypt.CompareHashAndPassword([]byte(encoded), pw)
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, nil
		}
		return err == nil, err
	}
	var version int
	var m, t uint32
	var p uint8
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("unknown password hash format")
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil {
		return false, err
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, err
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, err
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return false, err
	}
	got := argon2.IDKey(pw, salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// checkPasswordPolicy applies password_config.policy; the message names
// the rule that failed.
func checkPasswordPolicy(p PasswordPolicy, password string) *Error {
	if len([]rune(password)) > maxPasswordLength {
		return badRequest(CodeInvalidParam, "Invalid password")
	}
	weak := func(msg string) *Error { return badRequest(CodeWeakPassword, msg) }
	if password == "" {
		return weak("Password must not be empty")
	}
	if !p.Enabled {
		return nil
	}
	if len([]rune(password)) < p.MinimumLength {
		return weak(fmt.Sprintf("Password too short (minimum %d characters)", p.MinimumLength))
	}
	var digit, symbol, lower, upper bool
	for _, r := range password {
		switch {
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		default:
			symbol = true
		}
	}
	switch {
	case p.RequireDigit && !digit:
		return weak("Password must contain at least one digit")
	case p.RequireSymbol && !symbol:
		return weak("Password must contain at least one symbol")
	case p.RequireLowercase && !lower:
		return weak("Password must contain at least one lowercase letter")
	case p.RequireUppercase && !upper:
		return weak("Password must contain at least one uppercase letter")
	}
	return nil
}
