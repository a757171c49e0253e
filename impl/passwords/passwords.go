// Package passwords hashes and verifies passwords in a bounded pool and
// applies the password policy. It knows nothing of the server.
package passwords

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"
)

// MaxLength is Synapse's cap on passwords, in characters.
const MaxLength = 512

// Config is Synapse's password_config plus the choice of hash.
type Config struct {
	Enabled bool `yaml:"enabled"`
	// LocalDBEnabled checks passwords kept here (default true); false
	// leaves logins to the password providers (LDAP), as Synapse's option.
	LocalDBEnabled *bool  `yaml:"localdb_enabled"`
	Pepper         string `yaml:"pepper"`
	Policy         Policy `yaml:"policy"`
	// Algorithm is argon2id (default) or bcrypt (with bcrypt_rounds).
	Algorithm string       `yaml:"algorithm"`
	Argon2    Argon2Config `yaml:"argon2"`
}

// LocalDB reports whether passwords kept here are checked.
func (c Config) LocalDB() bool { return c.LocalDBEnabled == nil || *c.LocalDBEnabled }

// Argon2Config is the argon2id cost.
type Argon2Config struct {
	MemoryKiB   uint32 `yaml:"memory_kib"`
	Iterations  uint32 `yaml:"iterations"`
	Parallelism uint8  `yaml:"parallelism"`
}

// Hasher hashes and verifies passwords in a bounded pool: at most one
// hash per core runs at once, so a flood of registrations or logins cannot
// exhaust memory or starve other requests, and every core is used.
type Hasher struct {
	cfg   Config
	cost  int // bcrypt rounds
	slots chan struct{}
	// waiting counts the calls waiting for a slot.
	waiting atomic.Int64
	// observe, when set, receives each call's wait and work times;
	// onVerify the algorithm and cost of each hash a password is checked
	// against.
	observe  func(wait, took time.Duration)
	onVerify func(algorithm, cost string)

	dummyOnce sync.Once
	dummy     string

	// idle returns argon2id's memory to the system once the pool has
	// been idle for idleRelease (each hash's blocks are garbage the moment
	// it ends, but the runtime would keep the pages mapped).
	idleMu    sync.Mutex
	idle      *time.Timer
	idleAfter time.Duration
	free      func()
}

// idleRelease is how long the argon2id pool must be idle before its
// memory is given back to the operating system.
var idleRelease = time.Second

// freeOSMemory gives the freed memory back (a variable for the tests).
var freeOSMemory = debug.FreeOSMemory

// NewHasher returns a pool of one slot per core hashing with cfg (and
// bcryptRounds when the algorithm is bcrypt).
func NewHasher(cfg Config, bcryptRounds int) *Hasher {
	h := &Hasher{cfg: cfg, cost: bcryptRounds, slots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		idleAfter: idleRelease, free: freeOSMemory}
	if cfg.Algorithm != "bcrypt" {
		h.idle = time.AfterFunc(time.Hour, h.releaseIfIdle)
		h.idle.Stop()
	}
	return h
}

// Warm computes the hash unknown users are checked against now, in the
// background, so that it is ready before the first one asks (the server
// calls it once it has started, not to compete with starting).
func (h *Hasher) Warm() {
	go func() { h.dummyHash(); h.released() }()
}

// Slots is the pool's size.
func (h *Hasher) Slots() int { return cap(h.slots) }

// Waiting is how many hashes and verifications wait for a slot now.
func (h *Hasher) Waiting() int64 { return h.waiting.Load() }

// Observe makes every hash and verification report how long it waited
// for a slot and how long it took then. Call it before any use.
func (h *Hasher) Observe(f func(wait, took time.Duration)) { h.observe = f }

// OnVerify makes every verification (of a user's hash, or the dummy hash
// of an unknown user) report the algorithm and cost of the hash checked:
// both paths must report the same. Call it before any use.
func (h *Hasher) OnVerify(f func(algorithm, cost string)) { h.onVerify = f }

// acquire takes a slot; the returned function gives it back.
func (h *Hasher) acquire(ctx context.Context) (release func(), err error) {
	start := time.Now()
	h.waiting.Add(1)
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		h.waiting.Add(-1)
		return nil, ctx.Err()
	}
	h.waiting.Add(-1)
	if h.observe == nil {
		return func() { <-h.slots; h.released() }, nil
	}
	got := time.Now()
	return func() {
		<-h.slots
		h.released()
		h.observe(got.Sub(start), time.Since(got))
	}, nil
}

// released notes a slot given back: when none is busy and none waits,
// the memory is released after idleRelease (unless work comes first).
func (h *Hasher) released() {
	if h.idle == nil || len(h.slots) > 0 || h.waiting.Load() > 0 {
		return
	}
	h.idleMu.Lock()
	h.idle.Reset(h.idleAfter)
	h.idleMu.Unlock()
}

func (h *Hasher) releaseIfIdle() {
	if len(h.slots) == 0 && h.waiting.Load() == 0 {
		h.free()
	}
}

// prepare normalises the password as Synapse does (NFKC) and adds the pepper.
func (h *Hasher) prepare(password string) []byte {
	return []byte(norm.NFKC.String(password) + h.cfg.Pepper)
}

// Hash returns an encoded hash of password with the configured algorithm.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return h.hash(h.prepare(password))
}

func (h *Hasher) hash(pw []byte) (string, error) {
	if h.cfg.Algorithm == "bcrypt" {
		b, err := bcrypt.GenerateFromPassword(truncate72(pw), h.cost)
		return string(b), err
	}
	a := h.cfg.Argon2
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := argon2.IDKey(pw, salt, a.Iterations, a.MemoryKiB, a.Parallelism, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, a.MemoryKiB, a.Iterations, a.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// truncate72 is bcrypt's input limit, applied as Synapse does.
func truncate72(pw []byte) []byte {
	if len(pw) > 72 {
		return pw[:72]
	}
	return pw
}

// Verify reports whether password matches the stored hash (argon2id or
// bcrypt, whatever the configured algorithm is now).
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	if encoded == "" {
		return false, nil
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return h.verify(h.prepare(password), encoded)
}

// VerifyDummy spends what verifying password against a real hash of the
// configured algorithm and cost spends, and matches nothing: used for
// unknown users, so that timing does not tell which user IDs exist.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	dummy := h.dummyHash()
	release, err := h.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	_, err = h.verify(h.prepare(password), dummy)
	return err
}

// dummyHash is a hash, with the configured settings, of a random password
// nobody knows; made once.
func (h *Hasher) dummyHash() string {
	h.dummyOnce.Do(func() {
		pw := make([]byte, 32)
		_, _ = rand.Read(pw)
		h.dummy, _ = h.hash([]byte(base64.RawStdEncoding.EncodeToString(pw)))
	})
	return h.dummy
}

// verify checks pw against encoded, reporting what it checked against.
func (h *Hasher) verify(pw []byte, encoded string) (bool, error) {
	if h.onVerify != nil {
		h.onVerify(HashCost(encoded))
	}
	return verify(pw, encoded)
}

// NeedsRehash reports whether an encoded hash is not of the configured
// algorithm and cost (a hash imported from Synapse, or made before the
// configuration changed): the next successful login replaces it.
func (h *Hasher) NeedsRehash(encoded string) bool {
	if encoded == "" {
		return false
	}
	algorithm, cost := HashCost(encoded)
	if h.cfg.Algorithm == "bcrypt" {
		return algorithm != "bcrypt" || cost != strconv.Itoa(h.cost)
	}
	a := h.cfg.Argon2
	return algorithm != "argon2id" || cost != fmt.Sprintf("m=%d,t=%d,p=%d", a.MemoryKiB, a.Iterations, a.Parallelism)
}

// HashCost is an encoded hash's algorithm and cost parameters: bcrypt and
// its rounds, or argon2id and its m,t,p.
func HashCost(encoded string) (algorithm, cost string) {
	parts := strings.Split(encoded, "$")
	switch {
	case strings.HasPrefix(encoded, "$2") && len(parts) > 2:
		return "bcrypt", strings.TrimLeft(parts[2], "0")
	case len(parts) > 3 && parts[1] == "argon2id":
		return "argon2id", parts[3]
	}
	return "unknown", ""
}

func verify(pw []byte, encoded string) (bool, error) {
	if strings.HasPrefix(encoded, "$2") {
		err := bcrypt.CompareHashAndPassword([]byte(encoded), truncate72(pw))
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
