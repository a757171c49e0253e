package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"registrar/impl/matrix"
)

// Remote keeps buckets in Redis (a GCRA limiter), so that every instance
// sharing it limits together. When Redis does not answer, limiters fall
// back to their local buckets: requests are not refused for that reason.
type Remote struct {
	limiter   *redis_rate.Limiter
	client    *redis.Client
	prefix    string
	timeout   time.Duration
	log       *slog.Logger
	fallbacks atomic.Int64
	lastWarn  atomic.Int64
	// downUntil (unix ms): after a failure Redis is left alone for a
	// second, so that a dead Redis costs requests no waiting.
	downUntil atomic.Int64
}

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

func init() {
	// Failures are logged by Remote itself, at most every ten seconds.
	redis.SetLogger(discardLogger{})
}

// NewRemote limits in the Redis at addr (host:port), database db; keys
// get prefix, so that several deployments can share one Redis.
func NewRemote(addr, password string, db int, prefix string, log *slog.Logger) *Remote {
	client := redis.NewClient(&redis.Options{Addr: addr, Password: password, DB: db,
		DialTimeout: time.Second, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
		MaxRetries: -1})
	return &Remote{limiter: redis_rate.NewLimiter(client), client: client, prefix: prefix, timeout: 250 * time.Millisecond, log: log}
}

// Close closes the connection.
func (r *Remote) Close() error { return r.client.Close() }

// Ping checks Redis answers.
func (r *Remote) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

// Fallbacks counts the decisions taken locally because Redis failed.
func (r *Remote) Fallbacks() int64 { return r.fallbacks.Load() }

// limit is a Rate in redis_rate's terms: one token every 1/per_second.
func limit(rate Rate) redis_rate.Limit {
	if rate.PerSecond <= 0 {
		return redis_rate.Limit{Rate: 1, Burst: rate.BurstCount, Period: time.Duration(math.MaxInt64 / 2)}
	}
	if rate.PerSecond >= 1 {
		return redis_rate.Limit{Rate: int(rate.PerSecond), Burst: rate.BurstCount, Period: time.Second}
	}
	return redis_rate.Limit{Rate: 1, Burst: rate.BurstCount, Period: time.Duration(float64(time.Second) / rate.PerSecond)}
}

// allow asks Redis for cost tokens of key; ok false means Redis failed.
func (r *Remote) allow(name, key string, rate Rate, cost int) (*redis_rate.Result, bool) {
	if time.Now().UnixMilli() < r.downUntil.Load() {
		r.fallbacks.Add(1)
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	res, err := r.limiter.AllowN(ctx, r.prefix+name+":"+key, limit(rate), cost)
	if err != nil {
		r.fallbacks.Add(1)
		r.downUntil.Store(time.Now().Add(time.Second).UnixMilli())
		now := time.Now().Unix()
		if last := r.lastWarn.Load(); now-last >= 10 && r.lastWarn.CompareAndSwap(last, now) {
			r.log.Warn("Redis does not answer; rate limiting locally", "error", err)
		}
		return nil, false
	}
	return res, true
}

// decide turns a Redis answer into nil or a 429.
func decide(res *redis_rate.Result, rate Rate, peek bool) *matrix.Error {
	if (peek && res.Remaining >= 1) || (!peek && res.Allowed > 0) {
		return nil
	}
	wait := res.RetryAfter
	if wait <= 0 {
		wait = limit(rate).Period / time.Duration(max(limit(rate).Rate, 1))
	}
	ms := max(wait.Milliseconds(), 1)
	return &matrix.Error{Status: http.StatusTooManyRequests, Code: matrix.CodeLimitExceeded, Message: "Too Many Requests", RetryAfterMS: ms}
}
