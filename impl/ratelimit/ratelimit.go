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
// after this many other keys were seen since its last request, and a
// bucket dropped before it refilled is remembered in a sketch, so that
// cycling through many keys never refills one's own.
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
	// drained remembers when buckets evicted before they refilled are
	// full again; nil until one is. evictAt is the time of the request
	// that makes room (both under mu).
	drained *drainedSketch
	evictAt time.Time
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
	l := &Limiter{rate: r, limit: rate.Limit(r.PerSecond), burst: r.BurstCount}
	lru, err := simplelru.NewLRU[string, *rate.Limiter](maxKeys, l.evicted)
	if err != nil {
		panic(err) // maxKeys <= 0: a programming error
	}
	l.buckets = lru
	return l
}

// bucket is key's bucket, made (as full as key may have it) when there is
// none.
func (l *Limiter) bucket(key string, now time.Time) *rate.Limiter {
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		if missing := l.missingTokens(key, now); missing > 0 {
			b.AllowN(now, missing)
		}
		l.evictAt = now
		l.buckets.Add(key, b)
	}
	return b
}

// evicted is the buckets' eviction callback: a bucket that has not
// refilled is remembered until it would have.
func (l *Limiter) evicted(key string, b *rate.Limiter) {
	missing := float64(l.burst) - b.TokensAt(l.evictAt)
	if missing <= 0 {
		return
	}
	if l.drained == nil {
		l.drained = newDrainedSketch(l.evictAt)
	}
	refill := time.Duration(math.MaxInt64)
	if l.limit > 0 {
		refill = time.Duration(min(missing/float64(l.limit)*float64(time.Second), float64(100*365*24*time.Hour)))
	}
	l.drained.record(key, l.evictAt.Add(refill))
}

// missingTokens is how many tokens short of full a key without a bucket
// is: 0, or what its evicted bucket still lacks.
func (l *Limiter) missingTokens(key string, now time.Time) int {
	if l.drained == nil {
		return 0
	}
	wait := l.drained.fullAt(key).Sub(now)
	if wait <= 0 {
		return 0
	}
	if l.limit <= 0 {
		return l.burst
	}
	return min(l.burst, int(math.Ceil(wait.Seconds()*float64(l.limit))))
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
		return l.exceeded(float64(l.burst - l.missingTokens(key, now)))
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
	b := l.bucket(key, now)
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
	l.evictAt = now
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
