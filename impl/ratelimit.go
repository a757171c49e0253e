package impl

import (
	"registrar/impl/config"
	"registrar/impl/matrix"
	"registrar/impl/ratelimit"
	"time"
)

// limiters are the server's rate limits, Synapse's rc_* settings plus
// registrar's own.
type limiters struct {
	registration         *ratelimit.Limiter
	registrationHour     *ratelimit.Limiter
	registrationDay      *ratelimit.Limiter
	loginAddress         *ratelimit.Limiter
	loginAccount         *ratelimit.Limiter
	loginFailures        *ratelimit.Limiter
	threepidValidation   *ratelimit.Limiter
	tokenValidity        *ratelimit.Limiter
	usernameAvailability *ratelimit.Limiter
	uiaStart             *ratelimit.Limiter
}

func newLimiters(c *config.Config) *limiters {
	l := &limiters{
		registration:         newLimiter(c.RcRegistration),
		loginAddress:         newLimiter(c.RcLogin.Address),
		loginAccount:         newLimiter(c.RcLogin.Account),
		loginFailures:        newLimiter(c.RcLogin.FailedAttempts),
		threepidValidation:   newLimiter(c.Rc3PIDValidation),
		tokenValidity:        newLimiter(c.RcRegistrationTokenValidity),
		usernameAvailability: newLimiter(c.RcUsernameAvailability),
		uiaStart:             newLimiter(c.RcUIAStart),
	}
	if n := c.RcRegistrationGlobal.PerHour; n > 0 {
		l.registrationHour = newLimiter(ratelimit.Rate{PerSecond: float64(n) / 3600, BurstCount: n})
	}
	if n := c.RcRegistrationGlobal.PerDay; n > 0 {
		l.registrationDay = newLimiter(ratelimit.Rate{PerSecond: float64(n) / 86400, BurstCount: n})
	}
	return l
}

func (l *limiters) all() []*ratelimit.Limiter {
	return []*ratelimit.Limiter{l.registration, l.registrationHour, l.registrationDay, l.loginAddress, l.loginAccount,
		l.loginFailures, l.threepidValidation, l.tokenValidity, l.usernameAvailability, l.uiaStart}
}

// globalKey is the single key of server-wide limits.
const globalKey = "*"

// checkRegistration is the peek at the start of /register: the address's
// bucket and the global caps must hold a token.
func (l *limiters) checkRegistration(ip string, now time.Time) *matrix.Error {
	if err := l.registration.Check(ip, now); err != nil {
		return err
	}
	if err := l.registrationHour.Check(globalKey, now); err != nil {
		return err
	}
	return l.registrationDay.Check(globalKey, now)
}

// takeRegistration consumes the registration limits when an account is
// about to be created.
func (l *limiters) takeRegistration(ip string, now time.Time) *matrix.Error {
	if err := l.checkRegistration(ip, now); err != nil {
		return err
	}
	_ = l.registration.Take(ip, now)
	_ = l.registrationHour.Take(globalKey, now)
	_ = l.registrationDay.Take(globalKey, now)
	return nil
}

func newLimiter(r ratelimit.Rate) *ratelimit.Limiter {
	return ratelimit.New(r, ratelimit.DefaultMaxKeys)
}
