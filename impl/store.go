package impl

import (
	"context"

	"registrar/db"
)

// Store is what impl needs from the database; *db.Store satisfies it.
type Store interface {
	Register(ctx context.Context, r db.Registration) error
	Account(ctx context.Context, localpartLower string) (db.Account, error)
	AccountByUserID(ctx context.Context, userID string) (db.Account, error)
	SetApproved(ctx context.Context, userID string, approved bool) error
	LocalpartTaken(ctx context.Context, localpartLower string) (bool, error)
	MaxNumericLocalpart(ctx context.Context) (int64, error)
	SetPassword(ctx context.Context, userID, hash string, logoutOthers bool, keepDevice string) error
	Deactivate(ctx context.Context, userID string, erase bool) error

	IssueLogin(ctx context.Context, userID string, l db.Login) error
	LookupAccessToken(ctx context.Context, hash string) (db.TokenOwner, error)
	MarkAccessTokenUsed(ctx context.Context, tokenID, refreshTokenID int64) error
	RotateRefreshToken(ctx context.Context, oldHash string, next db.Login) (db.RefreshResult, error)
	DeleteDevice(ctx context.Context, userID, deviceID string) error
	DeleteAllDevices(ctx context.Context, userID string) error

	CreateUIASession(ctx context.Context, s db.UIASession) error
	UIASession(ctx context.Context, id string) (db.UIASession, error)
	UpdateUIASession(ctx context.Context, s db.UIASession) error
	DeleteExpiredUIASessions(ctx context.Context) (int64, error)
	LiveUIASessions(ctx context.Context, clientAddr string) (int64, error)

	CreateRegistrationToken(ctx context.Context, t db.RegistrationToken) error
	RegistrationToken(ctx context.Context, token string) (db.RegistrationToken, error)
	RegistrationTokens(ctx context.Context, valid *bool) ([]db.RegistrationToken, error)
	UpdateRegistrationToken(ctx context.Context, token string, u db.TokenUpdate) (db.RegistrationToken, error)
	DeleteRegistrationToken(ctx context.Context, token string) error
	ReserveRegistrationToken(ctx context.Context, token, sessionID string) error
	ReleaseAbandonedReservations(ctx context.Context, minAgeMS int64) (int64, error)
	CreateNonce(ctx context.Context, nonce string, expiresAtMS int64) error

	StartThreepidValidation(ctx context.Context, next db.ThreepidSession) (db.ThreepidSession, bool, error)
	ThreepidSession(ctx context.Context, sid string) (db.ThreepidSession, error)
	MarkThreepidValidated(ctx context.Context, sid, tokenHash string) (bool, error)
	ThreepidOwner(ctx context.Context, medium, address string) (string, error)
	Threepids(ctx context.Context, userID string) ([]db.Threepid, error)
	AddThreepid(ctx context.Context, userID string, t db.NewThreepid) error
	DeleteThreepid(ctx context.Context, userID, medium, address string) error
	ConsumeThreepidSession(ctx context.Context, sid string) error
	DeleteExpiredThreepidSessions(ctx context.Context) (int64, error)
	UseNonce(ctx context.Context, nonce string) (bool, error)
}

var _ Store = (*db.Store)(nil)
