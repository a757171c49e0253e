package impl

import (
	"context"
	"log/slog"
	"time"

	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/appservice"
	"registrar/impl/config"
	"registrar/impl/passwords"
	"registrar/impl/regtokens"
	"registrar/impl/tokencache"
)

// core is what the HTTP server and the operator commands share: the
// prepared configuration, the store (behind the token cache, so that
// every revocation is announced), and the services over it.
type core struct {
	cfg config.Config
	// store is what the handlers use directly; the services get their own
	// narrow views of the same revoking store.
	store       handlerStore
	appServices *appservice.Index
	limits      *limiters
	accounts    *accounts.Service
	regtokens   *regtokens.Service
	now         func() time.Time
	log         *slog.Logger
	// revoking is the store itself, for wiring the services.
	revoking *tokencache.Store
}

// handlerStore is what the handlers read and write themselves.
type handlerStore interface {
	Account(ctx context.Context, localpartLower string) (db.Account, error)
	AccountByUserID(ctx context.Context, userID string) (db.Account, error)
	LookupAccessToken(ctx context.Context, hash string) (db.TokenOwner, error)
	DeleteDevice(ctx context.Context, userID, deviceID string) error
	DeleteAllDevices(ctx context.Context, userID string) error
	Threepids(ctx context.Context, userID string) ([]db.Threepid, error)
	ThreepidOwner(ctx context.Context, medium, address string) (string, error)
	DeleteThreepid(ctx context.Context, userID, medium, address string) error
	ConsumeThreepidSession(ctx context.Context, sid string) error
	CreateNonce(ctx context.Context, nonce string, expiresAtMS int64) error
	UseNonce(ctx context.Context, nonce string) (bool, error)
	DeleteExpiredUIASessions(ctx context.Context) (int64, error)
	ReleaseAbandonedReservations(ctx context.Context, minAgeMS int64) (int64, error)
	DeleteExpiredThreepidSessions(ctx context.Context) (int64, error)
}

func newCore(cfg config.Config, store *db.Store, now func() time.Time, log *slog.Logger) (*core, error) {
	if err := cfg.Prepare(); err != nil {
		return nil, err
	}
	revoking := tokencache.Wrap(store, tokencache.New(100_000), now)
	c := &core{cfg: cfg, store: revoking, revoking: revoking, now: now, log: log}
	c.limits = newLimiters(&c.cfg)
	c.appServices = appservice.NewIndex(c.cfg.AppServices())
	c.accounts = accounts.New(&c.cfg, revoking, passwords.NewHasher(c.cfg.PasswordConfig, c.cfg.BcryptRounds), c.appServices,
		c.limits.accounts, now, log)
	c.regtokens = regtokens.New(revoking, now)
	return c, nil
}
