package passwords

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var cheapArgon2 = Config{Algorithm: "argon2id", Argon2: Argon2Config{MemoryKiB: 64, Iterations: 1, Parallelism: 1}}

// TestHasherIsBounded fills every hashing slot: a further hash waits (and
// gives up with its request) instead of adding memory and CPU pressure.
func TestHasherIsBounded(t *testing.T) {
	h := NewHasher(cheapArgon2, 4)
	if h.Slots() != runtime.GOMAXPROCS(0) {
		t.Fatalf("%d slots for %d cores", h.Slots(), runtime.GOMAXPROCS(0))
	}
	for i := 0; i < h.Slots(); i++ {
		h.slots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hash with every slot taken: %v", err)
	}
	if err := h.VerifyDummy(ctx, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dummy verify with every slot taken: %v", err)
	}
	<-h.slots
	hash, err := h.Hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.Verify(context.Background(), "pw", hash); !ok {
		t.Fatal("hash does not verify")
	}
}

// TestEitherAlgorithmVerifiesBoth: hashes made under one configuration
// verify under the other, and the pepper and NFKC apply.
func TestEitherAlgorithmVerifiesBoth(t *testing.T) {
	ctx := context.Background()
	argon := NewHasher(Config{Algorithm: "argon2id", Pepper: "p", Argon2: cheapArgon2.Argon2}, 4)
	bc := NewHasher(Config{Algorithm: "bcrypt", Pepper: "p"}, 4)
	ha, _ := argon.Hash(ctx, "ﬁle")
	hb, _ := bc.Hash(ctx, "ﬁle")
	if !strings.HasPrefix(ha, "$argon2id$") || !strings.HasPrefix(hb, "$2") {
		t.Fatalf("%s %s", ha, hb)
	}
	for _, h := range []*Hasher{argon, bc} {
		for _, enc := range []string{ha, hb} {
			if ok, err := h.Verify(ctx, "file", enc); !ok || err != nil {
				t.Errorf("NFKC form does not verify %s: %v", enc, err)
			}
			if ok, _ := h.Verify(ctx, "other", enc); ok {
				t.Errorf("wrong password verifies %s", enc)
			}
		}
	}
	unpeppered := NewHasher(cheapArgon2, 4)
	if ok, _ := unpeppered.Verify(ctx, "file", ha); ok {
		t.Error("hash verifies without its pepper")
	}
}

// TestDummyHashFollowsTheConfiguredAlgorithm: the dummy is made with the
// configured algorithm and cost, whatever they are.
func TestDummyHashFollowsTheConfiguredAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		h      *Hasher
		prefix string
	}{
		{NewHasher(Config{Algorithm: "bcrypt"}, 5), "$2a$05$"},
		{NewHasher(Config{Algorithm: "argon2id", Argon2: Argon2Config{MemoryKiB: 128, Iterations: 3, Parallelism: 2}}, 4), "$argon2id$v=19$m=128,t=3,p=2$"},
	} {
		if d := tc.h.dummyHash(); !strings.HasPrefix(d, tc.prefix) {
			t.Errorf("dummy %q, want prefix %q", d, tc.prefix)
		}
		if err := tc.h.VerifyDummy(context.Background(), "anything"); err != nil {
			t.Error(err)
		}
	}
}

func TestPolicy(t *testing.T) {
	strict := Policy{Enabled: true, MinimumLength: 8, RequireDigit: true, RequireSymbol: true, RequireLowercase: true, RequireUppercase: true}
	for _, tc := range []struct {
		policy   Policy
		password string
		want     string
	}{
		{Policy{}, "", "Password must not be empty"},
		{Policy{}, "x", ""},
		{Policy{}, strings.Repeat("é", MaxLength), ""},
		{Policy{}, strings.Repeat("é", MaxLength+1), "Invalid password"},
		{strict, "Ab1!", "Password too short (minimum 8 characters)"},
		{strict, "Abcdefg!", "Password must contain at least one digit"},
		{strict, "Abcdefg1", "Password must contain at least one symbol"},
		{strict, "ABCDEF1!", "Password must contain at least one lowercase letter"},
		{strict, "abcdef1!", "Password must contain at least one uppercase letter"},
		{strict, "Abcdef1!", ""},
	} {
		got := ""
		if v := tc.policy.Check(tc.password); v != nil {
			got = v.Rule
			if v.TooLong != (got == "Invalid password") {
				t.Errorf("%q: TooLong %v", tc.password, v.TooLong)
			}
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.password, got, tc.want)
		}
	}
}

// TestIdlePoolGivesItsMemoryBack: once no hash runs or waits for
// idleRelease, argon2id's memory goes back to the system; bcrypt's pool,
// which holds little, never asks.
func TestIdlePoolGivesItsMemoryBack(t *testing.T) {
	var freed atomic.Int32
	restoreFree, restoreDelay := freeOSMemory, idleRelease
	freeOSMemory, idleRelease = func() { freed.Add(1) }, 20*time.Millisecond
	t.Cleanup(func() { freeOSMemory, idleRelease = restoreFree, restoreDelay })

	h := NewHasher(cheapArgon2, 4)
	waitFor := func(n int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); freed.Load() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("memory released %d times, want %d", freed.Load(), n)
			}
		}
	}
	h.Warm()
	waitFor(1) // after the hash unknown users are checked against
	if _, err := h.Hash(context.Background(), "pw"); err != nil {
		t.Fatal(err)
	}
	waitFor(2)

	b := NewHasher(Config{Algorithm: "bcrypt"}, 4)
	if _, err := b.Hash(context.Background(), "pw"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := freed.Load(); n != 2 {
		t.Fatalf("bcrypt's pool released memory (%d)", n)
	}
}
