// Package canonical turns third-party identifiers into their canonical
// forms (client-server API, "3PID types"), as they are stored and
// compared. It knows nothing of the server.
package canonical

import (
	"net/mail"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Email returns the address in canonical form (lower-cased) or ""
// when it is not a bare address.
func Email(s string) string {
	s = strings.TrimSpace(s)
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || len(s) < 3 || len(s) > 500 {
		return ""
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return ""
	}
	return strings.ToLower(local) + "@" + strings.ToLower(domain)
}

// Msisdn turns a number dialled from country into E.164 digits
// without the plus, or "".
func Msisdn(country, phone string) string {
	n, err := phonenumbers.Parse(phone, strings.ToUpper(country))
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return ""
	}
	return strings.TrimPrefix(phonenumbers.Format(n, phonenumbers.E164), "+")
}
