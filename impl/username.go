package impl

import (
	"context"
	"fmt"
	"net/http"
	"registrar/impl/matrix"
	"strings"
)

// maxUserIDLength is the longest user ID, "@localpart:server", in bytes.
const maxUserIDLength = 255

// maxUsernameInput is Synapse's cap on the raw username field.
const maxUsernameInput = 512

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

func (s *Server) userID(localpart string) string { return "@" + localpart + ":" + s.cfg.ServerName }

func lowerASCII(s string) string { return strings.ToLower(s) }

// localpartOf returns the localpart of a full user ID on this server, or
// the input unchanged when it is a bare localpart.
func (s *Server) localpartOf(user string) (string, bool) {
	if !strings.HasPrefix(user, "@") {
		return user, true
	}
	lp, server, ok := strings.Cut(user[1:], ":")
	if !ok || server != s.cfg.ServerName {
		return "", false
	}
	return lp, true
}

// checkUsername applies Synapse's check_username rules, in its order and
// with its messages, to a lower-cased localpart; guestUpgrade allows the
// numeric localparts of guests.
func (s *Server) checkUsername(ctx context.Context, localpart string, guestUpgrade bool) *matrix.Error {
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
	if s.appServices.ExclusiveOwner(s.userID(localpart)) != nil {
		return matrix.BadRequest(matrix.CodeExclusive, "This user ID is reserved by an application service.")
	}
	if len(s.userID(localpart)) > maxUserIDLength {
		return matrix.BadRequest(matrix.CodeInvalidUsername, fmt.Sprintf("User ID may not be longer than %d characters", maxUserIDLength))
	}
	if forbidden, exclusive := s.cfg.ForbiddenUsername(localpart); forbidden {
		if exclusive {
			return matrix.BadRequest(matrix.CodeExclusive, "This user ID is reserved.")
		}
		return matrix.BadRequest(matrix.CodeInvalidUsername, "This user ID is not allowed on this server.")
	}
	if !guestUpgrade {
		taken, err := s.store.LocalpartTaken(ctx, localpart)
		if err != nil {
			return matrix.Internal(err)
		}
		if taken {
			return matrix.BadRequest(matrix.CodeUserInUse, "User ID already taken.")
		}
		if isNumeric(localpart) {
			return matrix.BadRequest(matrix.CodeInvalidUsername, "Numeric user IDs are reserved for guest users.")
		}
	}
	return nil
}

var errRegistrationDisabled = &matrix.Error{Status: http.StatusForbidden, Code: matrix.CodeForbidden, Message: "Registration has been disabled"}
