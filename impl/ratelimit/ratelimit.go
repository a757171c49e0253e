// Package ratelimit is registrar's rate limiting: token buckets keyed by
// client address or account, bounded in memory, in Synapse's rc_* shape.
// It knows nothing of the server.
package ratelimit

import (
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"

	"registrar/impl/matrix"
)

// Rate is Synapse's rate-limit shape: a token bucket refilled at
// per_second holding at most burst_count. burst_count 0 disables it.
type Rate struct {
	PerSecond  float64 `yaml:"per_second"`
	BurstCount int     `yaml:"burst_count"`
}

// DefaultMaxKeys bounds the buckets one limiter keeps. Past it the least
// recently used bucket is dropped in O(1): a key only loses its bucket
// after this many other keys were seen since its last request.
const DefaultMaxKeys = 100_000

// Limiter is a set of token buckets, one per key, holding at most a fixed
// number of buckets; with a Remote, the buckets are in Redis and the local
// ones serve only while Redis fails. A nil *Limiter allows everything.
type Limiter struct {
	rate    Rate
	limit   rate.Limit
	burst   int
	mu      sync.Mutex
	buckets *simplelru.LRU[string, *rate.Limiter]
	// name keys the limiter's buckets in Redis.
	name   string
	remote *Remote
	// refusals counts the 429s answered.
	refusals atomic.Uint64
}

// Shared returns the limiter of r called name in remote's Redis (local
// buckets when remote is nil), or nil when r is disabled.
func Shared(name string, r Rate, remote *Remote) *Limiter {
	l := New(r, DefaultMaxKeys)
	if l != nil {
		l.name, l.remote = name, remote
	}
	return l
}

// New returns a limiter of r keeping at most maxKeys buckets, or nil when
// r is disabled.
func New(r Rate, maxKeys int) *Limiter {
	if r.BurstCount <= 0 {
		return nil
	}
	lru, err := simplelru.NewLRU[string, *rate.Limiter](maxKeys, nil)
	if err != nil {
		panic(err) // maxKeys <= 0: a programming error
	}
	return &Limiter{rate: r, limit: rate.Limit(r.PerSecond), burst: r.BurstCount, buckets: lru}
}

func (l *Limiter) bucket(key string) *rate.Limiter {
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets.Add(key, b)
	}
	return b
}

// Check answers 429 when key has no token left, without taking one.
func (l *Limiter) Check(key string, now time.Time) *matrix.Error {
	if l == nil {
		return nil
	}
	return l.counted(l.check(key, now))
}

func (l *Limiter) check(key string, now time.Time) *matrix.Error {
	if l.remote != nil {
		if res, ok := l.remote.allow(l.name, key, l.rate, 0); ok {
			return decide(res, l.rate, true)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets.Peek(key)
	if !ok {
		return nil // a new bucket is full
	}
	return l.exceeded(b.TokensAt(now))
}

// Take consumes one token of key, or answers 429.
func (l *Limiter) Take(key string, now time.Time) *matrix.Error {
	if l == nil {
		return nil
	}
	return l.counted(l.take(key, now))
}

// counted counts a refusal.
func (l *Limiter) counted(err *matrix.Error) *matrix.Error {
	if err != nil {
		l.refusals.Add(1)
	}
	return err
}

// Name is the limiter's option name (rc_login.address), "" for none.
func (l *Limiter) Name() string { return l.name }

// Refusals is how many requests the limiter refused.
func (l *Limiter) Refusals() uint64 { return l.refusals.Load() }

func (l *Limiter) take(key string, now time.Time) *matrix.Error {
	if l.remote != nil {
		if res, ok := l.remote.allow(l.name, key, l.rate, 1); ok {
			return decide(res, l.rate, false)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key)
	if b.AllowN(now, 1) {
		return nil
	}
	return l.exceeded(b.TokensAt(now))
}

// exceeded is the 429 for a bucket holding tokens, or nil if it has one.
func (l *Limiter) exceeded(tokens float64) *matrix.Error {
	if tokens >= 1 {
		return nil
	}
	wait := time.Duration(math.MaxInt64)
	if l.limit > 0 {
		wait = time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second))
	}
	ms := max(wait.Milliseconds(), 1)
	return &matrix.Error{Status: http.StatusTooManyRequests, Code: matrix.CodeLimitExceeded, Message: "Too Many Requests", RetryAfterMS: ms}
}

// Reclaim drops the least recently used buckets that have refilled
// completely: their keys have been idle long enough to be forgotten.
func (l *Limiter) Reclaim(now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		key, b, ok := l.buckets.GetOldest()
		if !ok || b.TokensAt(now) < float64(l.burst) {
			return
		}
		l.buckets.Remove(key)
	}
}

// Len is the number of buckets held.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buckets.Len()
}

// AddressKey is the key of a client address: an IPv4 address as is, an
// IPv6 address by its /64, which one client typically holds whole.
func AddressKey(ip string) string {
	parsed := net.ParseIP(ip)
	if parsed == nil || parsed.To4() != nil {
		return ip
	}
	return parsed.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
