package impl

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestHasherIsBounded fills every hashing slot: a further hash waits (and
// gives up with its request) instead of adding memory and CPU pressure.
func TestHasherIsBounded(t *testing.T) {
	h := newHasher(PasswordConfig{Algorithm: "argon2id", Argon2: Argon2Config{MemoryKiB: 64, Iterations: 1, Parallelism: 1}}, 4)
	if cap(h.slots) != runtime.GOMAXPROCS(0) {
		t.Fatalf("%d slots for %d cores", cap(h.slots), runtime.GOMAXPROCS(0))
	}
	for i := 0; i < cap(h.slots); i++ {
		h.slots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hash with every slot taken: %v", err)
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
