package impl

import (
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
	cfg         config.Config
	store       *tokencache.Store
	appServices *appservice.Index
	limits      *limiters
	accounts    *accounts.Service
	regtokens   *regtokens.Service
	now         func() time.Time
	log         *slog.Logger
}

func newCore(cfg config.Config, store *db.Store, now func() time.Time, log *slog.Logger) (*core, error) {
	if err := cfg.Prepare(); err != nil {
		return nil, err
	}
	c := &core{cfg: cfg, now: now, log: log}
	c.store = tokencache.Wrap(store, tokencache.New(100_000), now)
	c.limits = newLimiters(&c.cfg)
	c.appServices = appservice.NewIndex(c.cfg.AppServices())
	c.accounts = accounts.New(&c.cfg, c.store, passwords.NewHasher(c.cfg.PasswordConfig, c.cfg.BcryptRounds), c.appServices,
		c.limits.accounts, now, log)
	c.regtokens = regtokens.New(c.store, now)
	return c, nil
}
