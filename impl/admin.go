package impl

import (
	"encoding/hex"
	"log/slog"
	"time"

	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/config"
	"registrar/impl/homeserver"
	"registrar/impl/regtokens"
	"registrar/impl/useradmin"
)

// Admin is what operator commands work with, directly on the database
// (server running or not), under the same rules as the HTTP API.
type Admin struct {
	Accounts *accounts.Service
	Tokens   *regtokens.Service
	Users    *useradmin.Service
	// Homeserver is the homeserver registrar provisions, or nil.
	Homeserver *homeserver.Service
}

// NewAdmin builds the operator's services over store.
func NewAdmin(cfg config.Config, store *db.Store, log *slog.Logger) (*Admin, error) {
	c, err := newCore(cfg, store, time.Now, log, nil)
	if err != nil {
		return nil, err
	}
	return &Admin{Accounts: c.accounts, Tokens: c.regtokens, Users: c.users, Homeserver: c.homeserver}, nil
}

// SharedSecretMAC computes the mac of shared-secret registration.
func SharedSecretMAC(secret []byte, nonce, username, password string, admin bool) string {
	return hex.EncodeToString(sharedSecretMAC(secret, nonce, username, password, admin, ""))
}
