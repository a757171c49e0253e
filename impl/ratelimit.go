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
	// loginTokens is POST /login/get_token's limit per user (Synapse's: one
	// a minute).
	loginTokens *ratelimit.Limiter
}

func newLimiters(c *config.Config, remote *ratelimit.Remote) *limiters {
	return &limiters{
		accounts:             accounts.NewLimits(c, remote),
		tokenValidity:        ratelimit.Shared("rc_registration_token_validity", c.RcRegistrationTokenValidity, remote),
		usernameAvailability: ratelimit.Shared("rc_username_availability", c.RcUsernameAvailability, remote),
		uiaStart:             ratelimit.Shared("rc_uia_start", c.RcUIAStart, remote),
		loginTokens:          ratelimit.Shared("login_via_existing_session", ratelimit.Rate{PerSecond: 1.0 / 60, BurstCount: 1}, remote),
	}
}

func (l *limiters) all() []*ratelimit.Limiter {
	return append(l.accounts.All(), l.tokenValidity, l.usernameAvailability, l.uiaStart, l.loginTokens)
}
