package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

func TestTakeAnswers429AndRefills(t *testing.T) {
	l := New(Rate{PerSecond: 1, BurstCount: 2}, 10)
	now := time.Unix(1000, 0)
	for i := 0; i < 2; i++ {
		if err := l.Take("a", now); err != nil {
			t.Fatal(err)
		}
	}
	err := l.Take("a", now)
	if err == nil || err.Status != 429 || err.Code != "M_LIMIT_EXCEEDED" || err.RetryAfterMS != 1000 {
		t.Fatalf("third take: %+v", err)
	}
	if l.Check("a", now) == nil || l.Check("b", now) != nil {
		t.Fatal("check")
	}
	if err := l.Take("a", now.Add(time.Second)); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if New(Rate{PerSecond: 1}, 10) != nil {
		t.Fatal("burst_count 0 must disable the limit")
	}
	var off *Limiter
	if off.Take("a", now) != nil || off.Check("a", now) != nil || off.Len() != 0 {
		t.Fatal("a nil limiter must allow everything")
	}
}

// TestBucketsAreBounded: past maxKeys the least recently used key goes,
// and a key in use is never the one dropped.
func TestBucketsAreBounded(t *testing.T) {
	l := New(Rate{PerSecond: 0.001, BurstCount: 1}, 100)
	now := time.Unix(1000, 0)
	_ = l.Take("busy", now)
	for i := 0; i < 10_000; i++ {
		_ = l.Take("k"+strconv.Itoa(i), now)
		if i%50 == 0 {
			if l.Take("busy", now) == nil {
				t.Fatalf("the busy key lost its bucket after %d others", i)
			}
		}
	}
	if n := l.Len(); n != 100 {
		t.Fatalf("%d buckets held, bound is 100", n)
	}
}

// TestCyclingKeysDoesNotRefillADrainedBucket: an attacker drains its key,
// then pushes its bucket out with many other keys (more than the limiter
// holds); its key is still refused, by Take and Check, until it would
// have refilled. Keys nobody drained keep their whole burst.
func TestCyclingKeysDoesNotRefillADrainedBucket(t *testing.T) {
	l := New(Rate{PerSecond: 0.01, BurstCount: 3}, 100)
	now := time.Unix(1000, 0)
	for i := 0; i < 3; i++ {
		if err := l.Take("attacker", now); err != nil {
			t.Fatalf("take %d: %v", i, err)
		}
	}
	if l.Take("attacker", now) == nil {
		t.Fatal("a drained bucket gave a token")
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < 10_000; i++ {
			_ = l.Take("cycle"+strconv.Itoa(round)+"-"+strconv.Itoa(i), now)
		}
		if l.Check("attacker", now) == nil || l.Take("attacker", now) == nil {
			t.Fatalf("round %d: the attacker's bucket refilled by eviction", round)
		}
	}
	if n := l.Len(); n != 100 {
		t.Fatalf("%d buckets held, bound is 100", n)
	}
	// 100 s later one token is back, and only one.
	later := now.Add(100 * time.Second)
	for i := 0; i < 10_000; i++ {
		_ = l.Take("more"+strconv.Itoa(i), later)
	}
	if err := l.Take("attacker", later); err != nil {
		t.Fatalf("after 100 s: %v", err)
	}
	if l.Take("attacker", later) == nil {
		t.Fatal("a second token after 100 s")
	}
	// Keys never drained start full: (almost) all get their burst.
	short := 0
	for i := 0; i < 1000; i++ {
		key := "innocent" + strconv.Itoa(i)
		for j := 0; j < 3; j++ {
			if l.Take(key, later) != nil {
				short++
				break
			}
		}
	}
	if short > 10 {
		t.Fatalf("%d of 1000 fresh keys did not get their whole burst", short)
	}
}

func TestReclaimDropsIdleBuckets(t *testing.T) {
	l := New(Rate{PerSecond: 1, BurstCount: 2}, 1000)
	now := time.Unix(1000, 0)
	for i := 0; i < 100; i++ {
		_ = l.Take("10.0.0."+strconv.Itoa(i), now)
	}
	l.Reclaim(now)
	if n := l.Len(); n != 100 {
		t.Fatalf("reclaimed buckets still in use: %d left", n)
	}
	l.Reclaim(now.Add(2 * time.Second))
	if n := l.Len(); n != 0 {
		t.Fatalf("%d idle buckets kept", n)
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                "192.0.2.7",
		"2001:db8:1:2:aaaa::1":     "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff::": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":          "2001:db8:1:3::/64",
		"::ffff:192.0.2.7":         "::ffff:192.0.2.7",
		"not an ip":                "not an ip",
	} {
		if got := AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkDistinctKeys measures a Take for a key never seen before, with
// the limiter full: the cost stays flat however many keys came before
// (run with -benchtime=1000000x to cross 1M distinct keys).
func BenchmarkDistinctKeys(b *testing.B) {
	l := New(Rate{PerSecond: 0.17, BurstCount: 3}, DefaultMaxKeys)
	now := time.Unix(1000, 0)
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = l.Take(keys[i], now)
	}
}
