package impl

import (
	"strconv"
	"testing"
	"time"
)

func TestLimiterReclaimsIdleKeys(t *testing.T) {
	l := newLimiter(RateLimit{PerSecond: 1, BurstCount: 2})
	now := time.Unix(1000, 0)
	for i := 0; i < 100; i++ {
		if err := l.take("10.0.0."+strconv.Itoa(i), now); err != nil {
			t.Fatal(err)
		}
	}
	l.reclaim(now)
	if n := l.size(); n != 100 {
		t.Fatalf("reclaimed buckets still in use: %d left", n)
	}
	l.reclaim(now.Add(2 * time.Second))
	if n := l.size(); n != 0 {
		t.Fatalf("%d idle buckets kept", n)
	}
	if newLimiter(RateLimit{PerSecond: 1}) != nil {
		t.Fatal("burst_count 0 must disable the limit")
	}
}
