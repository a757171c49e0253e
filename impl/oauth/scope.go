package oauth

import (
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The scope tokens of the Matrix specification (client-server API,
// "Scope"), and the unstable MSC2967 forms clients still send.
const (
	ScopeAPI             = "urn:matrix:client:api:*"
	ScopeDevicePrefix    = "urn:matrix:client:device:"
	scopeAPIUnstable     = "urn:matrix:org.matrix.msc2967.client:api:*"
	scopeDeviceUnstable  = "urn:matrix:org.matrix.msc2967.client:device:"
	maxDeviceIDLength    = 255
	errScopeNoDevice     = "the scope must hold exactly one urn:matrix:client:device:<device_id>"
	errScopeNoAPI        = "the scope must hold urn:matrix:client:api:*"
	errScopeBadDevice    = "the device ID must be 1 to 255 characters allowed in a scope token"
	scopeOpenID          = oidc.ScopeOpenID
	matrixScopeNamespace = "urn:matrix:"
)

// Scope is a requested scope as registrar grants it.
type Scope struct {
	DeviceID string
	OpenID   bool
	// Granted are the scope tokens granted, as the client spelled them.
	Granted []string
}

// String is the granted scope, space-separated.
func (s Scope) String() string { return strings.Join(s.Granted, " ") }

// allowedScope reports whether registrar grants a scope token: the Matrix
// ones and openid (other tokens are ignored, RFC 6749 §3.3).
func allowedScope(token string) bool {
	return token == ScopeAPI || token == scopeAPIUnstable || token == scopeOpenID ||
		strings.HasPrefix(token, ScopeDevicePrefix) || strings.HasPrefix(token, scopeDeviceUnstable)
}

// ParseScope reads the scope tokens of a login: full API access and
// exactly one device ID are required.
func ParseScope(tokens []string) (Scope, string) {
	var s Scope
	api := false
	devices := 0
	for _, t := range tokens {
		switch {
		case t == ScopeAPI || t == scopeAPIUnstable:
			api = true
		case t == scopeOpenID:
			s.OpenID = true
		case strings.HasPrefix(t, ScopeDevicePrefix) || strings.HasPrefix(t, scopeDeviceUnstable):
			id := strings.TrimPrefix(strings.TrimPrefix(t, ScopeDevicePrefix), scopeDeviceUnstable)
			if !validDeviceID(id) {
				return Scope{}, errScopeBadDevice
			}
			s.DeviceID = id
			devices++
		default:
			continue
		}
		s.Granted = append(s.Granted, t)
	}
	switch {
	case devices != 1:
		return Scope{}, errScopeNoDevice
	case !api:
		return Scope{}, errScopeNoAPI
	}
	return s, ""
}

// validDeviceID: the characters RFC 6749 §3.3 allows in a scope token.
func validDeviceID(id string) bool {
	if id == "" || len(id) > maxDeviceIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}
