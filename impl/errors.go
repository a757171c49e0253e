package impl

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	"registrar/api"
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
)

// Error is the one Matrix error type: every failure a client sees is an
// *Error, written by writeError. Internal holds the cause for the log and is
// never sent.
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

func badRequest(code, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: msg}
}
func forbidden(msg string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: msg}
}

// internalError wraps an unexpected failure; the client sees a generic 500.
func internalError(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: CodeUnknown, Message: "Internal server error", Internal: err}
}

// uiaChallenge is the 401 of User-Interactive Authentication: not a failure
// of the request but a demand for more stages, written with the spec's
// AuthResponse shape (plus errcode/error when a stage failed).
type uiaChallenge struct {
	body api.AuthResponse
}

func (u *uiaChallenge) Error() string { return "user-interactive authentication required" }

// errorBody is the wire shape of an *Error.
type errorBody struct {
	Errcode      string `json:"errcode"`
	Error        string `json:"error"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
	SoftLogout   bool   `json:"soft_logout,omitempty"`
}

// writeError is the one place that writes error responses.
func (s *Server) writeError(c echo.Context, err error) {
	if c.Response().Committed {
		return
	}
	var challenge *uiaChallenge
	if errors.As(err, &challenge) {
		_ = c.JSON(http.StatusUnauthorized, challenge.body)
		return
	}
	merr := asMatrixError(err)
	if merr.Status >= 500 {
		s.log.Error("request failed", "request_id", s.requestID(c), "method", c.Request().Method,
			"route", c.Path(), "error", err)
	}
	if merr.RetryAfterMS > 0 {
		c.Response().Header().Set("Retry-After", strconv.FormatInt((merr.RetryAfterMS+999)/1000, 10))
	}
	body := errorBody{Errcode: merr.Code, Error: merr.Message, RetryAfterMS: merr.RetryAfterMS, SoftLogout: merr.SoftLogout}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(merr.Status)
		return
	}
	_ = c.JSON(merr.Status, body)
}

// asMatrixError turns any error reaching the top of a request into an
// *Error: Matrix errors pass through, echo's routing and binding errors and
// kin-openapi validation errors are mapped, anything else is a 500.
func asMatrixError(err error) *Error {
	var merr *Error
	if errors.As(err, &merr) {
		return merr
	}
	if errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: "Request body too large"}
	}
	var reqErr *openapi3filter.RequestError
	if errors.As(err, &reqErr) {
		return validationError(reqErr)
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return &Error{Status: http.StatusNotFound, Code: CodeUnrecognized, Message: "Unrecognized request"}
		case http.StatusMethodNotAllowed:
			return &Error{Status: http.StatusMethodNotAllowed, Code: CodeUnrecognized, Message: "Unrecognized request"}
		case http.StatusRequestEntityTooLarge:
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: "Request body too large"}
		case http.StatusBadRequest:
			// Binding of an already validated request; the message names the
			// parameter but never its value.
			return &Error{Status: http.StatusBadRequest, Code: CodeInvalidParam, Message: "Invalid parameter", Internal: err}
		}
		if he.Code < 500 {
			return &Error{Status: he.Code, Code: CodeUnknown, Message: http.StatusText(he.Code)}
		}
	}
	return internalError(err)
}

// validationError maps a kin-openapi request validation failure. Messages
// name the field and the rule, never the submitted value.
func validationError(re *openapi3filter.RequestError) *Error {
	if errors.Is(re.Err, echo.ErrStatusRequestEntityTooLarge) {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: "Request body too large"}
	}
	if re.Parameter != nil {
		if errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
			return badRequest(CodeMissingParam, fmt.Sprintf("Missing required parameter '%s'", re.Parameter.Name))
		}
		return badRequest(CodeInvalidParam, fmt.Sprintf("Invalid value for parameter '%s'%s", re.Parameter.Name, schemaReason(re.Err)))
	}
	// Request body.
	if errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
		return badRequest(CodeNotJSON, "Content not JSON.")
	}
	var parseErr *openapi3filter.ParseError
	if errors.As(re.Err, &parseErr) || re.Reason == "failed to decode request body" {
		return badRequest(CodeNotJSON, "Content not JSON.")
	}
	var schemaErr *openapi3.SchemaError
	if errors.As(re.Err, &schemaErr) {
		return badRequest(CodeBadJSON, "Invalid JSON"+schemaReason(schemaErr))
	}
	var multi openapi3.MultiError
	if errors.As(re.Err, &multi) {
		return badRequest(CodeBadJSON, "Invalid JSON")
	}
	return badRequest(CodeNotJSON, "Content not JSON.")
}

// schemaReason describes a schema violation by JSON pointer and rule only.
func schemaReason(err error) string {
	var se *openapi3.SchemaError
	if !errors.As(err, &se) {
		return ""
	}
	field := ""
	if ptr := se.JSONPointer(); len(ptr) > 0 {
		field = "/" + strings.Join(ptr, "/")
	}
	if field != "" {
		return fmt.Sprintf(" at '%s': %s", field, se.Reason)
	}
	return ": " + se.Reason
}

// mustJSON marshals v or panics; for values built by the server itself.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
