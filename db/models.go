package db

// Account kinds.
const (
	KindUser  = "user"
	KindGuest = "guest"
)

// Account is a local user account. The user ID stays taken for ever, also
// once the account is deactivated.
type Account struct {
	UserID         string `gorm:"column:user_id;primaryKey"`
	LocalpartLower string `gorm:"column:localpart_lower"`
	PasswordHash   string `gorm:"column:password_hash"`
	Kind           string `gorm:"column:kind"`
	Admin          bool   `gorm:"column:admin"`
	AppserviceID   string `gorm:"column:appservice_id"`
	DisplayName    string `gorm:"column:display_name"`
	AvatarURL      string `gorm:"column:avatar_url"`
	CreatedAt      int64  `gorm:"column:created_at;autoCreateTime:false"`
	DeactivatedAt  *int64 `gorm:"column:deactivated_at"`
	Erased         bool   `gorm:"column:erased"`
	// ApprovalPending marks an account an admin has not approved yet
	// (require_approval_for_new_accounts); it cannot log in.
	ApprovalPending bool `gorm:"column:approval_pending"`
	// Locked accounts keep their tokens but may use none of them but to
	// log out (Matrix v1.12); Suspended ones may not change the account
	// (v1.13).
	Locked    bool `gorm:"column:locked"`
	Suspended bool `gorm:"column:suspended"`
	// ShadowBanned is Synapse's shadow ban, kept for the homeserver and
	// the admin API.
	ShadowBanned bool `gorm:"column:shadow_banned"`
	// UserType is nil for a normal user, or bot, support.
	UserType *string `gorm:"column:user_type"`
	// LastSeenAt is when one of the account's tokens was last used (ms),
	// recorded in batches.
	LastSeenAt *int64 `gorm:"column:last_seen_at"`
	// ConsentVersion is the terms accepted at registration (policy:version
	// pairs), at ConsentAt.
	ConsentVersion string `gorm:"column:consent_version"`
	ConsentAt      *int64 `gorm:"column:consent_at"`
}

// TableName implements gorm's Tabler.
func (Account) TableName() string { return "accounts" }

// Deactivated reports whether the account was deactivated.
func (a Account) Deactivated() bool { return a.DeactivatedAt != nil }

// Device is one logged-in client of an account.
type Device struct {
	UserID      string `gorm:"column:user_id;primaryKey"`
	DeviceID    string `gorm:"column:device_id;primaryKey"`
	DisplayName string `gorm:"column:display_name"`
	CreatedAt   int64  `gorm:"column:created_at;autoCreateTime:false"`
	// LastSeenIP, LastSeenUserAgent and LastSeenAt describe the device's
	// last request, recorded in batches (a few minutes late at most).
	LastSeenIP        string `gorm:"column:last_seen_ip"`
	LastSeenUserAgent string `gorm:"column:last_seen_user_agent"`
	LastSeenAt        *int64 `gorm:"column:last_seen_at"`
	// Hidden devices carry an admin's token for the user (POST
	// /_synapse/admin/v1/users/{userId}/login); lists leave them out.
	Hidden bool `gorm:"column:hidden"`
}

// TableName implements gorm's Tabler.
func (Device) TableName() string { return "devices" }

type accessToken struct {
	ID             int64  `gorm:"column:id;primaryKey"`
	TokenHash      string `gorm:"column:token_hash"`
	UserID         string `gorm:"column:user_id"`
	DeviceID       string `gorm:"column:device_id"`
	CreatedAt      int64  `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt      *int64 `gorm:"column:expires_at"`
	RefreshTokenID *int64 `gorm:"column:refresh_token_id"`
	Used           bool   `gorm:"column:used"`
	// PuppetedBy is the admin who made this token for the user, or "".
	PuppetedBy string `gorm:"column:puppeted_by"`
	// OAuthClientID is the OAuth 2.0 client the token was issued to.
	OAuthClientID string `gorm:"column:oauth_client_id"`
}

func (accessToken) TableName() string { return "access_tokens" }

type refreshToken struct {
	ID               int64  `gorm:"column:id;primaryKey"`
	TokenHash        string `gorm:"column:token_hash"`
	UserID           string `gorm:"column:user_id"`
	DeviceID         string `gorm:"column:device_id"`
	CreatedAt        int64  `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt        *int64 `gorm:"column:expires_at"`
	SessionExpiresAt *int64 `gorm:"column:session_expires_at"`
	NextTokenID      *int64 `gorm:"column:next_token_id"`
	Consumed         bool   `gorm:"column:consumed"`
	// OAuthClientID and Scope: the OAuth 2.0 client and scope of the
	// grant, kept across rotations.
	OAuthClientID string `gorm:"column:oauth_client_id"`
	Scope         string `gorm:"column:scope"`
}

func (refreshToken) TableName() string { return "refresh_tokens" }

// UIASession is the stored state of a User-Interactive Authentication
// session, written once a stage completes (a session nobody has
// progressed in lives only in the client's session ID). Completed and
// Data are owned by impl/uia (opaque here); Version guards concurrent
// updates; a Consumed session authorised its operation and authorises
// nothing more.
type UIASession struct {
	SessionID  string `gorm:"column:session_id;primaryKey"`
	Method     string `gorm:"column:method"`
	Path       string `gorm:"column:path"`
	Requester  string `gorm:"column:requester"`
	ClientAddr string `gorm:"column:client_addr"`
	Completed  string `gorm:"column:completed"`
	Data       string `gorm:"column:data"`
	Consumed   bool   `gorm:"column:consumed"`
	// FlowComplete: a flow of the session is complete (it waits for its
	// operation, or was kept for a request that brings what it lacks).
	FlowComplete bool  `gorm:"column:flow_complete"`
	Version      int64 `gorm:"column:version"`
	CreatedAt    int64 `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt    int64 `gorm:"column:expires_at"`
}

// TableName implements gorm's Tabler.
func (UIASession) TableName() string { return "uia_sessions" }
