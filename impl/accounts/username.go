package accounts

import (
	"context"
	"fmt"
	"strings"

	"registrar/impl/matrix"
	"registrar/impl/secrets"
)

// MaxUserIDLength is the longest user ID, "@localpart:server", in bytes.
const MaxUserIDLength = 255

// MaxUsernameInput is Synapse's cap on the raw username field.
const MaxUsernameInput = 512

// UserID is the user ID of a localpart on this server.
func (s *Service) UserID(localpart string) string { return "@" + localpart + ":" + s.cfg.ServerName }

// Localpart returns the localpart of a full user ID on this server, or the
// input unchanged when it is a bare localpart.
func (s *Service) Localpart(user string) (string, bool) {
	if !strings.HasPrefix(user, "@") {
		return user, true
	}
	lp, server, ok := strings.Cut(user[1:], ":")
	if !ok || server != s.cfg.ServerName {
		return "", false
	}
	return lp, true
}

// CanonicalUserID turns a user ID or a bare localpart into the user ID it
// names on this server, localpart lower-cased when bare.
func (s *Service) CanonicalUserID(user string) (string, bool) {
	if strings.HasPrefix(user, "@") {
		_, ok := s.Localpart(user)
		return user, ok
	}
	return s.UserID(strings.ToLower(user)), user != ""
}

func isLocalpartChar(r byte) bool {
	return (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || strings.IndexByte("._=-/+", r) >= 0
}

func isNumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// usernameRules applies Synapse's check_username rules that need no
// database, in its order and with its messages, to a lower-cased
// localpart; guestUpgrade allows the numeric localparts of guests.
func (s *Service) usernameRules(localpart string, guestUpgrade bool) *matrix.Error {
	if localpart == "" {
		return matrix.BadRequest(matrix.CodeInvalidUsername, "User ID cannot be empty")
	}
	for i := 0; i < len(localpart); i++ {
		if !isLocalpartChar(localpart[i]) {
			return matrix.BadRequest(matrix.CodeInvalidUsername, "User ID can only contain characters a-z, 0-9, or '=_-./+'")
		}
	}
	if localpart[0] == '_' && !s.cfg.AllowUnderscorePrefixedLocalpart {
		return matrix.BadRequest(matrix.CodeInvalidUsername, "User ID may not begin with _")
	}
	if n := s.cfg.ServerNotices.SystemMXIDLocalpart; n != "" && strings.EqualFold(n, localpart) {
		return matrix.BadRequest(matrix.CodeExclusive, "This user ID is reserved.")
	}
	if s.appServices.ExclusiveOwner(s.UserID(localpart)) != nil {
		return matrix.BadRequest(matrix.CodeExclusive, "This user ID is reserved by an application service.")
	}
	if len(s.UserID(localpart)) > MaxUserIDLength {
		return matrix.BadRequest(matrix.CodeInvalidUsername, fmt.Sprintf("User ID may not be longer than %d characters", MaxUserIDLength))
	}
	if forbidden, exclusive := s.cfg.ForbiddenUsername(localpart); forbidden {
		if exclusive {
			return matrix.BadRequest(matrix.CodeExclusive, "This user ID is reserved.")
		}
		return matrix.BadRequest(matrix.CodeInvalidUsername, "This user ID is not allowed on this server.")
	}
	if !guestUpgrade && isNumeric(localpart) {
		return errNumeric
	}
	return nil
}

var (
	errNumeric = matrix.BadRequest(matrix.CodeInvalidUsername, "Numeric user IDs are reserved for guest users.")
	// ErrUserInUse is M_USER_IN_USE.
	ErrUserInUse = matrix.BadRequest(matrix.CodeUserInUse, "User ID already taken.")
)

// CheckUsername is the registration policy for a requested username: the
// rules, then availability (Synapse reports a taken name before a numeric
// one). localpart is lower-cased; guestUpgrade is a guest taking its own
// numeric ID.
func (s *Service) CheckUsername(ctx context.Context, localpart string, guestUpgrade bool) *matrix.Error {
	err := s.usernameRules(localpart, guestUpgrade)
	if err != nil && err != errNumeric {
		return err
	}
	if !guestUpgrade {
		taken, terr := s.store.LocalpartTaken(ctx, localpart)
		if terr != nil {
			return matrix.Internal(terr)
		}
		if taken {
			return ErrUserInUse
		}
	}
	if err == nil && !guestUpgrade && s.homeserver != nil {
		// The homeserver has its own users and its application services'
		// exclusive namespaces.
		return s.homeserver.LocalpartAvailable(ctx, localpart)
	}
	return err
}

// generateLocalpart returns a random localpart for a registration without
// a username: lower-case letters and digits starting with a letter, so it
// never collides with the numeric IDs reserved for guests.
func generateLocalpart() string {
	return secrets.RandomFrom("abcdefghijklmnopqrstuvwxyz", 1) + secrets.RandomFrom("abcdefghijklmnopqrstuvwxyz0123456789", 11)
}

// isHistoricalLocalpart is the spec's historical user ID grammar, which
// application services may still register.
// HistoricalLocalpart reports whether lp is a localpart of the historical
// grammar (printable ASCII but ':'), which user IDs made before Matrix
// restricted them, and application services', may have.
func HistoricalLocalpart(lp string) bool { return isHistoricalLocalpart(lp) }

func isHistoricalLocalpart(lp string) bool {
	if lp == "" {
		return false
	}
	for i := 0; i < len(lp); i++ {
		if lp[i] < 0x21 || lp[i] > 0x7e || lp[i] == ':' {
			return false
		}
	}
	return true
}
