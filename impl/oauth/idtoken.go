package oauth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// signingKeySecret names the ID token signing key among the secrets every
// instance shares (kept in the database).
const signingKeySecret = "oauth_signing_key"

// idTokenLifetime is how long an ID token is valid.
const idTokenLifetime = time.Hour

type signingKey struct {
	signer jose.Signer
	public jose.JSONWebKey
}

// signing returns the ID token signing key, made (RSA 2048) the first
// time any instance needs one.
func (s *Service) signing(ctx context.Context) (*signingKey, error) {
	s.keyOnce.Do(func() { s.key, s.keyErr = s.loadKey(ctx) })
	return s.key, s.keyErr
}

func (s *Service) loadKey(ctx context.Context) (*signingKey, error) {
	var genErr error
	pemText, err := s.store.ServerSecret(ctx, signingKeySecret, func() string {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			genErr = err
			return ""
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			genErr = err
			return ""
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
	if err != nil || genErr != nil {
		return nil, fmt.Errorf("oauth signing key: %w", errors.Join(err, genErr))
	}
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("oauth signing key: not PEM")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("oauth signing key: %w", err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("oauth signing key: not RSA")
	}
	public := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.RS256), Use: "sig"}
	thumb, err := public.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	public.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: public.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return &signingKey{signer: signer, public: public}, nil
}

// KeySet is the JSON Web Key Set of the ID token signing key.
func (s *Service) KeySet(ctx context.Context) (jose.JSONWebKeySet, error) {
	k, err := s.signing(ctx)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public}}, nil
}

// idTokenClaims are an ID token's claims (OpenID Connect Core §2).
type idTokenClaims struct {
	jwt.Claims
	AuthTime int64  `json:"auth_time,omitempty"`
	Nonce    string `json:"nonce,omitempty"`
}

// idToken signs an ID token for the user and client.
func (s *Service) idToken(ctx context.Context, userID, clientID, nonce string, authTime int64) (string, error) {
	k, err := s.signing(ctx)
	if err != nil {
		return "", err
	}
	now := s.now()
	claims := idTokenClaims{Claims: jwt.Claims{Issuer: s.cfg.OAuth.Issuer, Subject: userID, Audience: jwt.Audience{clientID},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(idTokenLifetime))},
		AuthTime: authTime / 1000, Nonce: nonce}
	return jwt.Signed(k.signer).Claims(claims).Serialize()
}
