package oauth

import "net/http"

// Error is an OAuth 2.0 error answer (RFC 6749 §5.2, RFC 7591 §3.2.2):
// {"error": Code, "error_description": Description} with Status.
type Error struct {
	Status      int
	Code        string
	Description string
}

// Error implements error.
func (e *Error) Error() string { return e.Code + ": " + e.Description }

// The error codes registrar answers with.
const (
	CodeInvalidRequest        = "invalid_request"
	CodeInvalidClient         = "invalid_client"
	CodeUnauthorizedClient    = "unauthorized_client"
	CodeInvalidClientMetadata = "invalid_client_metadata"
	CodeInvalidRedirectURI    = "invalid_redirect_uri"
	CodeServerError           = "server_error"
	CodeTemporarilyUnavailble = "temporarily_unavailable"
)

func badRequest(code, description string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Description: description}
}
