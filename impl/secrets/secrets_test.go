package secrets

import (
	"strings"
	"testing"
)

func TestRandomFromUsesOnlyTheAlphabetAndDiffers(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		s := RandomFrom("abc", 20)
		if len(s) != 20 || strings.Trim(s, "abc") != "" {
			t.Fatalf("got %q", s)
		}
		if seen[s] {
			t.Fatalf("repeated %q", s)
		}
		seen[s] = true
	}
}

func TestTokensHaveTheirPrefixAndHashDiffers(t *testing.T) {
	a, r := NewAccessToken(), NewRefreshToken()
	if !strings.HasPrefix(a, "syt_") || !strings.HasPrefix(r, "syr_") || len(a) != 47 {
		t.Fatalf("%q %q", a, r)
	}
	if HashToken(a) == HashToken(r) || len(HashToken(a)) != 64 || HashToken(a) != HashToken(a) {
		t.Fatal("hashes")
	}
	// Stored hashes are lowercase hex SHA-256: tokens issued by earlier
	// releases must keep resolving.
	if got := HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashToken(abc) = %s", got)
	}
}

func TestSealerRoundTripAndBindings(t *testing.T) {
	s, _ := NewSealer([]byte("a server secret of some length"), "purpose one")
	other, _ := NewSealer([]byte("a server secret of some length"), "purpose two")
	sealed, sealNonce := s.Seal([]byte("hello"), "ctx")
	if strings.ContainsAny(sealed, "+/=") {
		t.Fatalf("not URL-safe: %q", sealed)
	}
	plain, nonce, err := s.Open(sealed, "ctx")
	if err != nil || string(plain) != "hello" || len(nonce) != 12 || string(nonce) != string(sealNonce) {
		t.Fatalf("open: %q %v", plain, err)
	}
	for name, open := range map[string]func() error{
		"other context": func() error { _, _, err := s.Open(sealed, "ctx2"); return err },
		"other purpose": func() error { _, _, err := other.Open(sealed, "ctx"); return err },
		"tampered":      func() error { _, _, err := s.Open(sealed[:len(sealed)-2]+"AA", "ctx"); return err },
		"garbage":       func() error { _, _, err := s.Open("!!", "ctx"); return err },
	} {
		if err := open(); err != ErrMalformed {
			t.Errorf("%s: %v", name, err)
		}
	}
}
