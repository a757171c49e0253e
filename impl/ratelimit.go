package impl

import (
	"registrar/impl/accounts"
	"registrar/impl/config"
	"registrar/impl/ratelimit"
)

// limiters are the server's rate limits, Synapse's rc_* settings plus
// registrar's own: those of accounts, and those of the endpoints.
type limiters struct {
	accounts             accounts.Limits
	tokenValidity        *ratelimit.Limiter
	usernameAvailability *ratelimit.Limiter
	uiaStart             *ratelimit.Limiter
}

func newLimiters(c *config.Config) *limiters {
	return &limiters{
		accounts:             accounts.NewLimits(c),
		tokenValidity:        ratelimit.New(c.RcRegistrationTokenValidity, ratelimit.DefaultMaxKeys),
		usernameAvailability: ratelimit.New(c.RcUsernameAvailability, ratelimit.DefaultMaxKeys),
		uiaStart:             ratelimit.New(c.RcUIAStart, ratelimit.DefaultMaxKeys),
	}
}

func (l *limiters) all() []*ratelimit.Limiter {
	return append(l.accounts.All(), l.tokenValidity, l.usernameAvailability, l.uiaStart)
}
