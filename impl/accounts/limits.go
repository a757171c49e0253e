package accounts

import (
	"registrar/impl/matrix"
)

// globalKey is the single key of server-wide limits.
const globalKey = "*"

// CheckRegistration is the peek at the start of a registration: the
// address's bucket and the global caps must hold a token.
func (s *Service) CheckRegistration(addressKey string) *matrix.Error {
	now := s.now()
	if err := s.limits.Registration.Check(addressKey, now); err != nil {
		return err
	}
	if err := s.limits.RegistrationHour.Check(globalKey, now); err != nil {
		return err
	}
	return s.limits.RegistrationDay.Check(globalKey, now)
}

// TakeRegistration consumes the registration limits when an account is
// about to be created.
func (s *Service) TakeRegistration(addressKey string) error {
	if err := s.CheckRegistration(addressKey); err != nil {
		return err
	}
	now := s.now()
	_ = s.limits.Registration.Take(addressKey, now)
	_ = s.limits.RegistrationHour.Take(globalKey, now)
	_ = s.limits.RegistrationDay.Take(globalKey, now)
	return nil
}
