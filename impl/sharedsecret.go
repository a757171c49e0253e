package impl

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"registrar/api"
	"registrar/db"
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
	if len(b.Username) > maxUsernameInput || strings.ContainsRune(b.Username, 0) {
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
	user, err := s.createUser(ctx, b.Username, b.Password, boolValue(b.Admin), b.Displayname, !boolValue(b.InhibitLogin))
	if err != nil {
		return nil, err
	}
	resp := api.RegisterWithSharedSecret200JSONResponse{UserId: user.UserID, HomeServer: &s.cfg.ServerName}
	if user.login.AccessToken != "" {
		resp.AccessToken, resp.DeviceId = &user.login.AccessToken, &user.login.DeviceID
	}
	return resp, nil
}

// createdUser is an account made by an operator.
type createdUser struct {
	UserID string
	login  loginResult
}

// createUser makes an account directly (shared-secret API and the CLI):
// the username rules apply, registration being disabled does not.
func (s *Server) createUser(ctx context.Context, username, password string, admin bool, displayName *string, withLogin bool) (createdUser, error) {
	localpart := strings.ToLower(username)
	if err := s.checkUsername(ctx, localpart, false); err != nil {
		return createdUser{}, err
	}
	if err := checkPasswordPolicy(s.cfg.PasswordConfig.Policy, password); err != nil {
		return createdUser{}, err
	}
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return createdUser{}, matrix.Internal(err)
	}
	reg := db.Registration{Account: db.Account{UserID: s.userID(localpart), LocalpartLower: localpart,
		PasswordHash: hash, Kind: db.KindUser, Admin: admin}}
	if displayName != nil {
		reg.Account.DisplayName = *displayName
	}
	var out createdUser
	out.UserID = reg.Account.UserID
	if withLogin {
		login, res, err := s.newLogin(nil, nil, false)
		if err != nil {
			return out, err
		}
		reg.Login, out.login = &login, res
	}
	err = s.store.Register(ctx, reg)
	if errors.Is(err, db.ErrUserExists) {
		return out, matrix.BadRequest(matrix.CodeUserInUse, "User ID already taken.")
	}
	if err != nil {
		return out, matrix.Internal(err)
	}
	s.log.Info("operator registered user", "user_id", out.UserID, "admin", admin)
	return out, nil
}
