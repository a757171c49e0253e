package impl

import (
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is Synapse's rate-limit shape: a token bucket refilled at
// per_second holding at most burst_count. burst_count 0 disables it.
type RateLimit struct {
	PerSecond  float64 `yaml:"per_second"`
	BurstCount int     `yaml:"burst_count"`
}

// LoginRateLimits is Synapse's rc_login.
type LoginRateLimits struct {
	Address        RateLimit `yaml:"address"`
	Account        RateLimit `yaml:"account"`
	FailedAttempts RateLimit `yaml:"failed_attempts"`
}

// GlobalRegistrationLimit caps registrations across all addresses
// (rc_registration_global); 0 means no cap.
type GlobalRegistrationLimit struct {
	PerHour int `yaml:"per_hour"`
	PerDay  int `yaml:"per_day"`
}

// limiter is a set of token buckets, one per key (an address, a user).
// Buckets of idle keys are reclaimed once they are full again.
type limiter struct {
	limit   rate.Limit
	burst   int
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// maxLimiterKeys bounds the buckets kept between reclaims.
const maxLimiterKeys = 200_000

func newLimiter(rl RateLimit) *limiter {
	if rl.BurstCount <= 0 {
		return nil
	}
	return &limiter{limit: rate.Limit(rl.PerSecond), burst: rl.BurstCount, buckets: map[string]*rate.Limiter{}}
}

func (l *limiter) bucket(key string, now time.Time) *rate.Limiter {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxLimiterKeys {
			l.reclaimLocked(now)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	return b
}

// check answers 429 when key has no token left, without taking one.
func (l *limiter) check(key string, now time.Time) *Error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.exceeded(l.bucket(key, now).TokensAt(now))
}

// take consumes one token of key, or answers 429.
func (l *limiter) take(key string, now time.Time) *Error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	if b.AllowN(now, 1) {
		return nil
	}
	return l.exceeded(b.TokensAt(now))
}

// exceeded is the 429 for a bucket holding tokens, or nil if it has one.
func (l *limiter) exceeded(tokens float64) *Error {
	if tokens >= 1 {
		return nil
	}
	wait := time.Duration(math.MaxInt64)
	if l.limit > 0 {
		wait = time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second))
	}
	ms := max(wait.Milliseconds(), 1)
	return &Error{Status: http.StatusTooManyRequests, Code: CodeLimitExceeded, Message: "Too Many Requests", RetryAfterMS: ms}
}

// reclaim drops the buckets that have refilled completely: their keys
// have been idle long enough to be forgotten.
func (l *limiter) reclaim(now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reclaimLocked(now)
}

func (l *limiter) reclaimLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}

func (l *limiter) size() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// limiters are the server's rate limits, Synapse's rc_* settings plus
// registrar's own.
type limiters struct {
	registration         *limiter
	registrationHour     *limiter
	registrationDay      *limiter
	loginAddress         *limiter
	loginAccount         *limiter
	loginFailures        *limiter
	threepidValidation   *limiter
	tokenValidity        *limiter
	usernameAvailability *limiter
}

func newLimiters(c *Config) *limiters {
	l := &limiters{
		registration:         newLimiter(c.RcRegistration),
		loginAddress:         newLimiter(c.RcLogin.Address),
		loginAccount:         newLimiter(c.RcLogin.Account),
		loginFailures:        newLimiter(c.RcLogin.FailedAttempts),
		threepidValidation:   newLimiter(c.Rc3PIDValidation),
		tokenValidity:        newLimiter(c.RcRegistrationTokenValidity),
		usernameAvailability: newLimiter(c.RcUsernameAvailability),
	}
	if n := c.RcRegistrationGlobal.PerHour; n > 0 {
		l.registrationHour = newLimiter(RateLimit{PerSecond: float64(n) / 3600, BurstCount: n})
	}
	if n := c.RcRegistrationGlobal.PerDay; n > 0 {
		l.registrationDay = newLimiter(RateLimit{PerSecond: float64(n) / 86400, BurstCount: n})
	}
	return l
}

func (l *limiters) all() []*limiter {
	return []*limiter{l.registration, l.registrationHour, l.registrationDay, l.loginAddress, l.loginAccount,
		l.loginFailures, l.threepidValidation, l.tokenValidity, l.usernameAvailability}
}

// globalKey is the single key of server-wide limits.
const globalKey = "*"

// checkRegistration is the peek at the start of /register: the address's
// bucket and the global caps must hold a token.
func (l *limiters) checkRegistration(ip string, now time.Time) *Error {
	if err := l.registration.check(ip, now); err != nil {
		return err
	}
	if err := l.registrationHour.check(globalKey, now); err != nil {
		return err
	}
	return l.registrationDay.check(globalKey, now)
}

// takeRegistration consumes the registration limits when an account is
// about to be created.
func (l *limiters) takeRegistration(ip string, now time.Time) *Error {
	if err := l.checkRegistration(ip, now); err != nil {
		return err
	}
	_ = l.registration.take(ip, now)
	_ = l.registrationHour.take(globalKey, now)
	_ = l.registrationDay.take(globalKey, now)
	return nil
}
