// Package secrets makes and keeps the server's secrets: unguessable
// random strings and tokens, the hashes tokens are stored as, and sealing
// of small values kept between requests. It knows nothing of the server.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"

	"golang.org/x/crypto/hkdf"
)

// Alphanumeric is [A-Za-z0-9].
const Alphanumeric = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// RandomString returns n characters from [A-Za-z0-9] drawn from
// crypto/rand without modulo bias.
func RandomString(n int) string {
	return RandomFrom(Alphanumeric, n)
}

// RandomFrom returns n characters of alphabet drawn from crypto/rand
// without modulo bias.
func RandomFrom(alphabet string, n int) string {
	out := make([]byte, n)
	buf := make([]byte, n+n/2+8)
	limit := 256 - 256%len(alphabet)
	for i := 0; i < n; {
		_, _ = rand.Read(buf) // crypto/rand never fails on supported platforms
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out[i] = alphabet[int(b)%len(alphabet)]
			i++
			if i == n {
				break
			}
		}
	}
	return string(out)
}

// HashToken is how access, refresh and other bearer tokens are stored: a
// SHA-256 of a secret with at least 128 bits of entropy needs no salt or
// slow hash.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	var text [2 * sha256.Size]byte
	hex.Encode(text[:], sum[:])
	return string(text[:])
}

// NewAccessToken returns a fresh access token (syt_ prefix, as Synapse).
func NewAccessToken() string { return "syt_" + RandomString(43) }

// NewRefreshToken returns a fresh refresh token (syr_ prefix).
func NewRefreshToken() string { return "syr_" + RandomString(43) }

// Sealer encrypts small values kept between requests with AES-256-GCM
// under a key derived from the server's secret and a purpose, so that a
// value sealed for one purpose never opens for another.
type Sealer struct{ aead cipher.AEAD }

// NewSealer derives the key of purpose from secret.
func NewSealer(secret []byte, purpose string) (*Sealer, error) {
	key := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, nil, []byte("registrar "+purpose)), key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plain, binding it to context; the result is URL-safe. It
// also returns the sealing's nonce, random and unique per sealing.
func (s *Sealer) Seal(plain []byte, context string) (sealed string, nonce []byte) {
	nonce = make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(context))), nonce
}

// ErrMalformed is returned by Open for anything Seal did not make.
var ErrMalformed = errors.New("secrets: sealed value is malformed or was not made here")

// Open decrypts a value sealed with the same context; it also returns the
// value's nonce, unique per sealing.
func (s *Sealer) Open(sealed, context string) (plain, nonce []byte, err error) {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return nil, nil, ErrMalformed
	}
	nonce = b[:s.aead.NonceSize()]
	plain, err = s.aead.Open(nil, nonce, b[s.aead.NonceSize():], []byte(context))
	if err != nil {
		return nil, nil, ErrMalformed
	}
	return plain, nonce, nil
}

// EncodeID is the URL-safe text form of a random binary ID.
func EncodeID(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// RandomBytes is n bytes from the system's cryptographic source.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}
