package impl

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/appservice"
	"registrar/impl/config"
	"registrar/impl/devices"
	"registrar/impl/homeserver"
	"registrar/impl/metrics"
	"registrar/impl/passwords"
	"registrar/impl/ratelimit"
	"registrar/impl/regtokens"
	"registrar/impl/secrets"
	"registrar/impl/tokencache"
	"registrar/impl/useradmin"
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
	devices     *devices.Service
	users       *useradmin.Service
	now         func() time.Time
	log         *slog.Logger
	// revoking is the store itself, for wiring the services.
	revoking *tokencache.Store
	// redis holds the rate limits shared by instances, when configured.
	redis *ratelimit.Remote
	// metrics counts what the server does; nil (operator commands) counts
	// nothing.
	metrics *metrics.Set
	// hasher hashes and verifies passwords (its queue is measured).
	hasher *passwords.Hasher
	// homeserver provisions the homeserver registrar authenticates for;
	// nil when there is none.
	homeserver *homeserver.Service
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
	DeleteClientIPsBefore(ctx context.Context, beforeMS int64) (int64, error)
	DeleteExpiredOAuth(ctx context.Context, unusedClientsBefore int64) (int64, error)
	ExternalIDs(ctx context.Context, userID string) ([]db.ExternalID, error)
	UpdateAccount(ctx context.Context, userID string, c db.AccountChanges) (db.Account, error)
	BrowserSessions(ctx context.Context, userID string) ([]db.BrowserSessionInfo, error)
	EndBrowserSession(ctx context.Context, userID, idHash string) error
	EndOtherSessions(ctx context.Context, userID, keepIDHash string) error
	DeviceClients(ctx context.Context, userID string) (map[string]string, error)
	CreateUpstreamSession(ctx context.Context, u db.UpstreamSession) error
	UpstreamSessionByID(ctx context.Context, id string) (db.UpstreamSession, error)
	ReturnUpstreamSession(ctx context.Context, id, subject, sid, claims string) error
	EndUpstreamSession(ctx context.Context, id string) (bool, error)
	ExternalIDOwner(ctx context.Context, provider, externalID string) (string, error)
	LinkExternalID(ctx context.Context, e db.ExternalID) error
	UnlinkExternalID(ctx context.Context, userID, provider, externalID string) error
	RecordUpstreamLogin(ctx context.Context, l db.UpstreamLogin) error
	AttachUpstreamDevice(ctx context.Context, loginTokenHash, deviceID string) error
	DeleteExpiredUpstream(ctx context.Context) (int64, error)
	SaveFactorChallenge(ctx context.Context, c db.FactorChallenge) error
	FactorChallengeByID(ctx context.Context, idHash string) (db.FactorChallenge, error)
	EndFactorChallenge(ctx context.Context, idHash string) (bool, error)
	MarkFactorProved(ctx context.Context, idHash string) error
	BrowserFactorAt(ctx context.Context, idHash string) (*int64, error)
	DeleteExpiredFactorChallenges(ctx context.Context) (int64, error)
}

func newCore(cfg config.Config, store *db.Store, now func() time.Time, log *slog.Logger, m *metrics.Set) (*core, error) {
	if err := cfg.Prepare(); err != nil {
		return nil, err
	}
	if len(cfg.SecretKey()) == 0 {
		if err := useKeptSecret(&cfg, store); err != nil {
			return nil, err
		}
	}
	revoking := tokencache.Wrap(store, tokencache.New(100_000), now)
	revoking.OnRevoke(func(userID string) { announce(store, userID, log) })
	c := &core{cfg: cfg, store: revoking, revoking: revoking, now: now, log: log, metrics: m}
	if c.cfg.Redis.Enabled {
		c.redis = ratelimit.NewRemote(c.cfg.Redis.Address(), c.cfg.Redis.Password, c.cfg.Redis.Dbid, "registrar:", log)
	}
	c.limits = newLimiters(&c.cfg, c.redis)
	c.appServices = appservice.NewIndex(c.cfg.AppServices())
	c.hasher = passwords.NewHasher(c.cfg.PasswordConfig, c.cfg.BcryptRounds)
	if m != nil {
		c.hasher.Observe(m.Hashed)
		c.hasher.OnVerify(m.PasswordVerified)
	}
	c.accounts = accounts.New(&c.cfg, revoking, c.hasher, c.appServices, c.limits.accounts, now, log, m)
	c.regtokens = regtokens.New(revoking, now)
	c.devices = devices.New(revoking)
	c.users = useradmin.New(&c.cfg, revoking, c.accounts, c.devices, log)
	if c.cfg.Matrix.Enabled() {
		if err := c.useHomeserver(store); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// useHomeserver provisions the configured homeserver: changes are noted
// for it from now on, and logins and registrations tell it first.
func (c *core) useHomeserver(store *db.Store) error {
	m := c.cfg.Matrix
	hs, err := homeserver.New(homeserver.Options{ServerName: c.cfg.ServerName, Endpoint: m.Endpoint, Secret: m.Secret, Kind: m.Kind,
		Log: c.log, Now: c.now, Metrics: c.metrics}, c.revoking)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.SetHomeserverSync(ctx, true); err != nil {
		return fmt.Errorf("turn on the homeserver outbox: %w", err)
	}
	c.homeserver = hs
	c.accounts.UseHomeserver(hs)
	return nil
}

// useKeptSecret takes the secret key kept with the database, when the
// configuration gives none: on SQLite a file in the data directory, on
// PostgreSQL the database, so that every instance uses the same one.
func useKeptSecret(cfg *config.Config, store *db.Store) error {
	if store.Engine() != db.Postgres {
		return cfg.UseSecretKeyFile()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key, err := store.ServerSecret(ctx, "macaroon_secret_key", func() string { return secrets.RandomString(48) })
	if err != nil {
		return fmt.Errorf("read the shared secret key from the database: %w", err)
	}
	return cfg.SetSecretKey([]byte(key))
}

// announce tells the other instances sharing the database (PostgreSQL)
// that a user's tokens were revoked; if it cannot, they notice within the
// token cache's TTL.
func announce(store *db.Store, userID string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := store.Announce(ctx, userID); err != nil {
		log.Warn("could not announce a revocation to the other instances", "user_id", userID, "error", err)
	}
}
