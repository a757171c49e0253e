package config

import "regexp"

// SecondFactors are the second factors people may enrol on the account
// pages, and who must.
type SecondFactors struct {
	// TOTP (authenticator apps) and WebAuthn (passkeys and security keys)
	// are offered when set to true (both off by default: the legacy API
	// then offers m.login.sso for the accounts that enrol one).
	TOTP     *bool `yaml:"totp"`
	WebAuthn *bool `yaml:"webauthn"`
	// RequiredForAdmins makes server admins enrol one at their next
	// browser sign-in.
	RequiredForAdmins bool `yaml:"required_for_admins"`
	// RequiredFor are user ID patterns (regular expressions) whose users
	// must enrol one; "all" is everyone.
	RequiredFor []string `yaml:"required_for"`

	required []*regexp.Regexp
	all      bool
}

// TOTPEnabled reports whether authenticator apps are offered.
func (f SecondFactors) TOTPEnabled() bool { return f.TOTP != nil && *f.TOTP }

// WebAuthnEnabled reports whether passkeys and security keys are offered.
func (f SecondFactors) WebAuthnEnabled() bool { return f.WebAuthn != nil && *f.WebAuthn }

// Any reports whether any second factor is offered.
func (f SecondFactors) Any() bool { return f.TOTPEnabled() || f.WebAuthnEnabled() }

// Required reports whether the user must have a second factor.
func (f SecondFactors) Required(userID string, admin bool) bool {
	if !f.Any() {
		return false
	}
	if f.all || admin && f.RequiredForAdmins {
		return true
	}
	for _, re := range f.required {
		if re.MatchString(userID) {
			return true
		}
	}
	return false
}

func (c *Config) validateSecondFactors(p *problems) {
	f := &c.SecondFactors
	f.required, f.all = nil, false
	for i, pattern := range f.RequiredFor {
		if pattern == "all" {
			f.all = true
			continue
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			p.add("second_factors.required_for[%d] %q is not a regular expression: %v", i, pattern, err)
			continue
		}
		f.required = append(f.required, re)
	}
	if (f.all || len(f.required) > 0 || f.RequiredForAdmins) && !f.Any() {
		p.add("second_factors: a second factor is required but neither totp nor webauthn is on")
	}
}
