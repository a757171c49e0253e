package impl

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"time"

	"registrar/api"
	"registrar/impl/accounts"
	"registrar/impl/matrix"
	"registrar/impl/passwords"
	"registrar/impl/secrets"
)

// nonceLifetime is how long a shared-secret registration nonce is valid
// (Synapse: 60 s); each is usable once.
const nonceLifetime = time.Minute

var errSharedSecretDisabled = matrix.BadRequest(matrix.CodeUnknown, "Shared secret registration is not enabled")

// GetRegistrationNonce is GET /_synapse/admin/v1/register.
func (s *Server) GetRegistrationNonce(ctx context.Context, _ api.GetRegistrationNonceRequestObject) (api.GetRegistrationNonceResponseObject, error) {
	if len(s.cfg.SharedSecret()) == 0 {
		return nil, errSharedSecretDisabled
	}
	nonce := secrets.RandomFrom("0123456789abcdef", 64)
	if err := s.store.CreateNonce(ctx, nonce, s.now().Add(nonceLifetime).UnixMilli()); err != nil {
		return nil, matrix.Internal(err)
	}
	return api.GetRegistrationNonce200JSONResponse{Nonce: nonce}, nil
}

// sharedSecretMAC is Synapse's mac: hex HMAC-SHA1 over nonce, username,
// password, "admin"/"notadmin" and the optional user type, NUL-separated.
func sharedSecretMAC(secret []byte, nonce, username, password string, admin bool, userType string) []byte {
	m := hmac.New(sha1.New, secret)
	role := "notadmin"
	if admin {
		role = "admin"
	}
	parts := []string{nonce, username, password, role}
	if userType != "" {
		parts = append(parts, userType)
	}
	m.Write([]byte(strings.Join(parts, "\x00")))
	return m.Sum(nil)
}

// RegisterWithSharedSecret is POST /_synapse/admin/v1/register: what
// register_new_matrix_user speaks. It works while public registration is
// disabled.
func (s *Server) RegisterWithSharedSecret(ctx context.Context, req api.RegisterWithSharedSecretRequestObject) (api.RegisterWithSharedSecretResponseObject, error) {
	if len(s.cfg.SharedSecret()) == 0 {
		return nil, errSharedSecretDisabled
	}
	b := req.Body
	ok, err := s.store.UseNonce(ctx, b.Nonce)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	if !ok {
		return nil, matrix.BadRequest(matrix.CodeUnknown, "unrecognised nonce")
	}
	if len(b.Username) > accounts.MaxUsernameInput || strings.ContainsRune(b.Username, 0) {
		return nil, matrix.BadRequest(matrix.CodeInvalidParam, "Invalid username")
	}
	if len([]rune(b.Password)) > passwords.MaxLength || strings.ContainsRune(b.Password, 0) {
		return nil, matrix.BadRequest(matrix.CodeInvalidParam, "Invalid password")
	}
	userType := ""
	if v := nullableValue(b.UserType); v != nil {
		userType = *v
	}
	got, err := hex.DecodeString(b.Mac)
	want := sharedSecretMAC(s.cfg.SharedSecret(), b.Nonce, b.Username, b.Password, boolValue(b.Admin), userType)
	if err != nil || !hmac.Equal(got, want) {
		return nil, matrix.Forbidden("HMAC incorrect")
	}
	n := accounts.NewAccount{Source: accounts.SourceSharedSecret, Localpart: strings.ToLower(b.Username), Password: &b.Password,
		Admin: boolValue(b.Admin)}
	if b.Displayname != nil {
		n.DisplayName = *b.Displayname
	}
	if !boolValue(b.InhibitLogin) {
		n.Login = &accounts.LoginRequest{}
	}
	created, err := s.accounts.Create(ctx, n)
	if err != nil {
		return nil, err
	}
	resp := api.RegisterWithSharedSecret200JSONResponse{UserId: created.UserID, HomeServer: &s.cfg.ServerName}
	if created.Login != nil {
		resp.AccessToken, resp.DeviceId = &created.Login.AccessToken, &created.Login.DeviceID
	}
	return resp, nil
}
