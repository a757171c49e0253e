package ratelimit

import (
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"
)

// redisAddr is the Redis the shared limits are tested on
// (REGISTRAR_TEST_REDIS, which make test sets when one answers).
func redisAddr(t *testing.T) string {
	addr := os.Getenv("REGISTRAR_TEST_REDIS")
	if addr == "" {
		t.Skip("REGISTRAR_TEST_REDIS is not set (make test sets it when Redis answers on 127.0.0.1:6379)")
	}
	return addr
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestInstancesShareRemoteBuckets: two instances' limiters of one name
// count together in Redis.
func TestInstancesShareRemoteBuckets(t *testing.T) {
	addr := redisAddr(t)
	prefix := "test" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	a := NewRemote(addr, "", 0, prefix, quiet)
	b := NewRemote(addr, "", 0, prefix, quiet)
	defer a.Close()
	defer b.Close()
	rate := Rate{PerSecond: 0.01, BurstCount: 4}
	la, lb := Shared("rc_login.address", rate, a), Shared("rc_login.address", rate, b)
	now := time.Now()
	allowed := 0
	for i := 0; i < 10; i++ {
		l := []*Limiter{la, lb}[i%2]
		if l.Take("192.0.2.1", now) == nil {
			allowed++
		}
	}
	if allowed != 4 {
		t.Fatalf("%d of 10 allowed across two instances, want the burst of 4", allowed)
	}
	err := lb.Check("192.0.2.1", now)
	if err == nil || err.RetryAfterMS < 1 || err.RetryAfterMS > 100_000 {
		t.Fatalf("check after the burst: %+v", err)
	}
	if la.Check("192.0.2.2", now) != nil || la.Take("192.0.2.2", now) != nil {
		t.Fatal("another key is limited")
	}
	if a.Fallbacks() != 0 {
		t.Fatalf("%d fallbacks with Redis up", a.Fallbacks())
	}
}

// TestRedisDownFallsBackToLocalBuckets: with Redis unreachable, requests
// are limited locally, not refused, and the fallbacks are counted.
func TestRedisDownFallsBackToLocalBuckets(t *testing.T) {
	down := NewRemote("127.0.0.1:1", "", 0, "x:", quiet)
	defer down.Close()
	l := Shared("rc_registration", Rate{PerSecond: 0.01, BurstCount: 2}, down)
	now := time.Now()
	if l.Take("k", now) != nil || l.Take("k", now) != nil {
		t.Fatal("refused while Redis is down")
	}
	if l.Take("k", now) == nil {
		t.Fatal("the local bucket does not limit")
	}
	if down.Fallbacks() != 3 {
		t.Fatalf("%d fallbacks counted", down.Fallbacks())
	}
}

func TestRateInRedisTerms(t *testing.T) {
	for _, tc := range []struct {
		r      Rate
		period time.Duration
		rate   int
	}{
		{Rate{PerSecond: 0.5, BurstCount: 3}, 2 * time.Second, 1},
		{Rate{PerSecond: 10, BurstCount: 3}, time.Second, 10},
		{Rate{PerSecond: 0.004, BurstCount: 5}, 250 * time.Second, 1},
	} {
		l := limit(tc.r)
		if l.Period != tc.period || l.Rate != tc.rate || l.Burst != tc.r.BurstCount {
			t.Errorf("%+v: %+v", tc.r, l)
		}
	}
}
