// Package accounts owns local accounts: the registration policy that
// every way of making an account applies (username rules, forbidden and
// reserved names, password policy, approval, registration limits), the
// one place accounts are created, the one place logins (a device and its
// tokens) are issued, credentials checked, and passwords and deactivation
// applied.
package accounts

import (
	"context"
	"log/slog"
	"time"

	"registrar/db"
	"registrar/impl/appservice"
	"registrar/impl/config"
	"registrar/impl/matrix"
	"registrar/impl/metrics"
	"registrar/impl/passwords"
	"registrar/impl/ratelimit"
)

// Store is what accounts needs of the database.
type Store interface {
	Register(ctx context.Context, r db.Registration) (db.Registered, error)
	Account(ctx context.Context, localpartLower string) (db.Account, error)
	LocalpartTaken(ctx context.Context, localpartLower string) (bool, error)
	MaxNumericLocalpart(ctx context.Context) (int64, error)
	IssueLogin(ctx context.Context, userID string, l db.Login) (bool, error)
	RotateRefreshToken(ctx context.Context, oldHash string, next db.Login) (db.RefreshResult, error)
	SetPassword(ctx context.Context, userID, hash string, logout db.PasswordLogout) error
	Deactivate(ctx context.Context, userID string, erase bool) error
	SetApproved(ctx context.Context, userID string, approved bool) error
	ThreepidOwner(ctx context.Context, medium, address string) (string, error)
	AccountByUserID(ctx context.Context, userID string) (db.Account, error)
	CreateLoginToken(ctx context.Context, userID, hash string, expiresAtMS int64) error
	UseLoginToken(ctx context.Context, hash string) (string, error)
	DeleteDevice(ctx context.Context, userID, deviceID string) error
	ReplacePasswordHash(ctx context.Context, userID, old, replacement string) (bool, error)
}

// Homeserver is the homeserver registrar provisions, when it is one's
// authentication service.
type Homeserver interface {
	// Ensure tells the homeserver now of the user and the device, before
	// a token is handed out; an error when it could not.
	Ensure(ctx context.Context, userID, deviceID string) error
	// LocalpartAvailable asks whether the homeserver lets a user take
	// localpart: nil, its refusal, or unavailable.
	LocalpartAvailable(ctx context.Context, localpart string) *matrix.Error
	// Wake makes the background delivery push what was noted.
	Wake()
}

// Limits are the rate limits accounts applies (Synapse's rc_registration,
// rc_registration_global and rc_login); nil limiters allow everything.
type Limits struct {
	Registration, RegistrationHour, RegistrationDay *ratelimit.Limiter
	LoginAddress, LoginAccount, LoginFailures       *ratelimit.Limiter
}

// NewLimits builds the limits of cfg, in remote's Redis when it is not nil.
func NewLimits(cfg *config.Config, remote *ratelimit.Remote) Limits {
	l := Limits{
		Registration:  ratelimit.Shared("rc_registration", cfg.RcRegistration, remote),
		LoginAddress:  ratelimit.Shared("rc_login.address", cfg.RcLogin.Address, remote),
		LoginAccount:  ratelimit.Shared("rc_login.account", cfg.RcLogin.Account, remote),
		LoginFailures: ratelimit.Shared("rc_login.failed_attempts", cfg.RcLogin.FailedAttempts, remote),
	}
	if n := cfg.RcRegistrationGlobal.PerHour; n > 0 {
		l.RegistrationHour = ratelimit.Shared("rc_registration_global.per_hour", ratelimit.Rate{PerSecond: float64(n) / 3600, BurstCount: n}, remote)
	}
	if n := cfg.RcRegistrationGlobal.PerDay; n > 0 {
		l.RegistrationDay = ratelimit.Shared("rc_registration_global.per_day", ratelimit.Rate{PerSecond: float64(n) / 86400, BurstCount: n}, remote)
	}
	return l
}

// All lists the limiters (for reclaiming idle buckets).
func (l Limits) All() []*ratelimit.Limiter {
	return []*ratelimit.Limiter{l.Registration, l.RegistrationHour, l.RegistrationDay, l.LoginAddress, l.LoginAccount, l.LoginFailures}
}

// Service applies the account policies over a store.
type Service struct {
	cfg         *config.Config
	store       Store
	hasher      *passwords.Hasher
	appServices *appservice.Index
	limits      Limits
	now         func() time.Time
	log         *slog.Logger
	metrics     *metrics.Set
	// homeserver is nil when registrar provisions none.
	homeserver Homeserver
	// directory checks passwords first, nil for none (LDAP).
	directory Directory
}

// UseHomeserver makes logins and registrations provision h first.
func (s *Service) UseHomeserver(h Homeserver) { s.homeserver = h }

// EnsureSession tells the homeserver of a new session (a device made by
// this login) before its token is handed out; when it cannot, the
// device is deleted again, so nothing half-made stays, and the request is
// answered 503. A session on a device that existed (a repeated device_id)
// was provisioned with it.
func (s *Service) EnsureSession(ctx context.Context, userID, deviceID string, newDevice bool) error {
	if s.homeserver == nil || !newDevice {
		return nil
	}
	err := s.homeserver.Ensure(ctx, userID, deviceID)
	if err == nil {
		return nil
	}
	if derr := s.store.DeleteDevice(context.WithoutCancel(ctx), userID, deviceID); derr != nil {
		s.log.ErrorContext(ctx, "removing a session the homeserver was not told of failed", "user_id", userID, "device_id", deviceID,
			"error", derr)
	}
	return err
}

// New builds the service; cfg must be prepared. m counts registrations
// and refreshes (nil counts nothing).
func New(cfg *config.Config, store Store, hasher *passwords.Hasher, appServices *appservice.Index, limits Limits,
	now func() time.Time, log *slog.Logger, m *metrics.Set) *Service {
	return &Service{cfg: cfg, store: store, hasher: hasher, appServices: appServices, limits: limits, now: now, log: log, metrics: m}
}

// Hasher is the password hashing pool.
func (s *Service) Hasher() *passwords.Hasher { return s.hasher }
