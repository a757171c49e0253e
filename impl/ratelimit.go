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
	threepidValidation   *ratelimit.Limiter
	tokenValidity        *ratelimit.Limiter
	usernameAvailability *ratelimit.Limiter
	uiaStart             *ratelimit.Limiter
}

func newLimiters(c *config.Config) *limiters {
	return &limiters{
		accounts:             accounts.NewLimits(c),
		threepidValidation:   ratelimit.New(c.Rc3PIDValidation, ratelimit.DefaultMaxKeys),
		tokenValidity:        ratelimit.New(c.RcRegistrationTokenValidity, ratelimit.DefaultMaxKeys),
		usernameAvailability: ratelimit.New(c.RcUsernameAvailability, ratelimit.DefaultMaxKeys),
		uiaStart:             ratelimit.New(c.RcUIAStart, ratelimit.DefaultMaxKeys),
	}
}

func (l *limiters) all() []*ratelimit.Limiter {
	return append(l.accounts.All(), l.threepidValidation, l.tokenValidity, l.usernameAvailability, l.uiaStart)
}
