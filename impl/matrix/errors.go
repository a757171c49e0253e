// Package matrix is the Matrix error vocabulary: the one error type every
// failure a client sees is turned into, the errcodes, and the mapping of
// request-validation and routing failures onto them. It knows nothing of
// the server.
package matrix

import (
	"errors"
	"fmt"
	"net/http"
)

// Matrix error codes used by registrar.
const (
	CodeForbidden             = "M_FORBIDDEN"
	CodeUnknownToken          = "M_UNKNOWN_TOKEN"
	CodeMissingToken          = "M_MISSING_TOKEN"
	CodeBadJSON               = "M_BAD_JSON"
	CodeNotJSON               = "M_NOT_JSON"
	CodeNotFound              = "M_NOT_FOUND"
	CodeLimitExceeded         = "M_LIMIT_EXCEEDED"
	CodeUnrecognized          = "M_UNRECOGNIZED"
	CodeUnknown               = "M_UNKNOWN"
	CodeUnauthorized          = "M_UNAUTHORIZED"
	CodeUserDeactivated       = "M_USER_DEACTIVATED"
	CodeUserInUse             = "M_USER_IN_USE"
	CodeInvalidUsername       = "M_INVALID_USERNAME"
	CodeExclusive             = "M_EXCLUSIVE"
	CodeWeakPassword          = "M_WEAK_PASSWORD"
	CodeMissingParam          = "M_MISSING_PARAM"
	CodeInvalidParam          = "M_INVALID_PARAM"
	CodeTooLarge              = "M_TOO_LARGE"
	CodeGuestAccessForbidden  = "M_GUEST_ACCESS_FORBIDDEN"
	CodeThreepidInUse         = "M_THREEPID_IN_USE"
	CodeThreepidNotFound      = "M_THREEPID_NOT_FOUND"
	CodeThreepidDenied        = "M_THREEPID_DENIED"
	CodeThreepidAuthFailed    = "M_THREEPID_AUTH_FAILED"
	CodeCaptchaNeeded         = "M_CAPTCHA_NEEDED"
	CodeCaptchaInvalid        = "M_CAPTCHA_INVALID"
	CodeUserAwaitingApproval  = "M_USER_AWAITING_APPROVAL"
	CodeThreepidMediumUnknown = "M_THREEPID_MEDIUM_NOT_SUPPORTED"
	CodeTokenIncorrect        = "M_TOKEN_INCORRECT"
	CodeUserLocked            = "M_USER_LOCKED"
	CodeUserSuspended         = "M_USER_SUSPENDED"
	CodeUnknownDevice         = "M_UNKNOWN_DEVICE"
)

// Error is the one Matrix error type: every failure a client sees is an
// *Error. Internal holds the cause for the log and is never sent.
type Error struct {
	Status       int
	Code         string
	Message      string
	RetryAfterMS int64
	SoftLogout   bool
	Internal     error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Internal != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Internal)
	}
	return e.Code + ": " + e.Message
}

// Unwrap exposes the internal cause.
func (e *Error) Unwrap() error { return e.Internal }

// Body is the wire shape of an *Error.
func (e *Error) Body() ErrorBody {
	return ErrorBody{Errcode: e.Code, Error: e.Message, RetryAfterMS: e.RetryAfterMS, SoftLogout: e.SoftLogout}
}

// ErrorBody is the JSON of a Matrix error.
type ErrorBody struct {
	Errcode      string `json:"errcode"`
	Error        string `json:"error"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
	SoftLogout   bool   `json:"soft_logout,omitempty"`
}

// BadRequest is a 400 with code and message.
func BadRequest(code, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: msg}
}

// Forbidden is a 403 M_FORBIDDEN.
func Forbidden(msg string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: msg}
}

// NotFound is a 404 M_NOT_FOUND.
func NotFound(msg string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: msg}
}

// Internal wraps an unexpected failure; the client sees a generic 500.
func Internal(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: CodeUnknown, Message: "Internal server error", Internal: err}
}

// Unavailable is a 503 for a dependency that did not answer (captcha
// provider, identity server); the cause is logged, not sent.
func Unavailable(msg string, err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnknown, Message: msg, Internal: err}
}

// Challenge is the 401 of User-Interactive Authentication: not a failure
// of the request but a demand for more stages, written as its Body (the
// spec's AuthResponse shape).
type Challenge struct {
	Body any
	// Code is the errcode of a failed stage in Body, "" for none.
	Code string
}

// Error implements error.
func (c *Challenge) Error() string { return "user-interactive authentication required" }

// Common errors.
var (
	ErrMissingToken     = &Error{Status: http.StatusUnauthorized, Code: CodeMissingToken, Message: "Missing access token."}
	ErrUnknownToken     = &Error{Status: http.StatusUnauthorized, Code: CodeUnknownToken, Message: "Unrecognised access token."}
	ErrExpiredToken     = &Error{Status: http.StatusUnauthorized, Code: CodeUnknownToken, Message: "Access token has expired", SoftLogout: true}
	ErrGuestForbidden   = &Error{Status: http.StatusForbidden, Code: CodeGuestAccessForbidden, Message: "Guest access not allowed"}
	ErrUserDeactivated  = &Error{Status: http.StatusForbidden, Code: CodeUserDeactivated, Message: "This account has been deactivated"}
	ErrAwaitingApproval = &Error{Status: http.StatusForbidden, Code: CodeUserAwaitingApproval,
		Message: "This account is pending approval by a server administrator."}
	// ErrUserLocked answers every request of a locked account but logout
	// (Matrix v1.12): the client keeps its session for when it is unlocked.
	ErrUserLocked = &Error{Status: http.StatusUnauthorized, Code: CodeUserLocked, Message: "This account has been locked", SoftLogout: true}
	// ErrUserSuspended refuses an account change of a suspended account
	// (Matrix v1.13).
	ErrUserSuspended = &Error{Status: http.StatusForbidden, Code: CodeUserSuspended, Message: "You cannot perform this action while suspended."}
	ErrTooLarge      = &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: "Request body too large"}
	ErrNotJSON       = BadRequest(CodeNotJSON, "Content not JSON.")
	ErrUnrecognized  = &Error{Status: http.StatusNotFound, Code: CodeUnrecognized, Message: "Unrecognized request"}
)

// As returns err as an *Error when it is one (or wraps one).
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
