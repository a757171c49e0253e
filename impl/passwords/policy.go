package passwords

import (
	"fmt"
	"unicode"
)

// Policy is Synapse's password_config.policy.
type Policy struct {
	Enabled          bool `yaml:"enabled"`
	MinimumLength    int  `yaml:"minimum_length"`
	RequireDigit     bool `yaml:"require_digit"`
	RequireSymbol    bool `yaml:"require_symbol"`
	RequireLowercase bool `yaml:"require_lowercase"`
	RequireUppercase bool `yaml:"require_uppercase"`
}

// Violation is a password the policy refuses; Rule says why, in Synapse's
// words, and TooLong tells an over-long password (an invalid parameter,
// not a weak password).
type Violation struct {
	Rule    string
	TooLong bool
}

func (v *Violation) Error() string { return v.Rule }

// Check applies the policy (and, whatever the policy, refuses empty and
// over-long passwords); the violation names the rule that failed.
func (p Policy) Check(password string) *Violation {
	n := len([]rune(password))
	if n > MaxLength {
		return &Violation{Rule: "Invalid password", TooLong: true}
	}
	if password == "" {
		return &Violation{Rule: "Password must not be empty"}
	}
	if !p.Enabled {
		return nil
	}
	if n < p.MinimumLength {
		return &Violation{Rule: fmt.Sprintf("Password too short (minimum %d characters)", p.MinimumLength)}
	}
	var digit, symbol, lower, upper bool
	for _, r := range password {
		switch {
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		default:
			symbol = true
		}
	}
	switch {
	case p.RequireDigit && !digit:
		return &Violation{Rule: "Password must contain at least one digit"}
	case p.RequireSymbol && !symbol:
		return &Violation{Rule: "Password must contain at least one symbol"}
	case p.RequireLowercase && !lower:
		return &Violation{Rule: "Password must contain at least one lowercase letter"}
	case p.RequireUppercase && !upper:
		return &Violation{Rule: "Password must contain at least one uppercase letter"}
	}
	return nil
}
