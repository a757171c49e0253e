package matrix

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"
)

// From turns any error reaching the top of a request into an *Error:
// Matrix errors pass through, echo's routing and binding errors and
// kin-openapi validation errors are mapped, anything else is a 500.
func From(err error) *Error {
	if e, ok := As(err); ok {
		return e
	}
	if errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
		return ErrTooLarge
	}
	var reqErr *openapi3filter.RequestError
	if errors.As(err, &reqErr) {
		return fromValidation(reqErr)
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return ErrUnrecognized
		case http.StatusMethodNotAllowed:
			return &Error{Status: http.StatusMethodNotAllowed, Code: CodeUnrecognized, Message: "Unrecognized request"}
		case http.StatusRequestEntityTooLarge:
			return ErrTooLarge
		case http.StatusBadRequest:
			// Binding of an already validated request; the message names the
			// parameter but never its value.
			return &Error{Status: http.StatusBadRequest, Code: CodeInvalidParam, Message: "Invalid parameter", Internal: err}
		}
		if he.Code < 500 {
			return &Error{Status: he.Code, Code: CodeUnknown, Message: http.StatusText(he.Code)}
		}
	}
	return Internal(err)
}

// fromValidation maps a kin-openapi request validation failure. Messages
// name the field and the rule, never the submitted value.
func fromValidation(re *openapi3filter.RequestError) *Error {
	if errors.Is(re.Err, echo.ErrStatusRequestEntityTooLarge) {
		return ErrTooLarge
	}
	if re.Parameter != nil {
		if errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
			return BadRequest(CodeMissingParam, fmt.Sprintf("Missing required parameter '%s'", re.Parameter.Name))
		}
		return BadRequest(CodeInvalidParam, fmt.Sprintf("Invalid value for parameter '%s'%s", re.Parameter.Name, schemaReason(re.Err)))
	}
	// Request body.
	if errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
		return ErrNotJSON
	}
	var parseErr *openapi3filter.ParseError
	if errors.As(re.Err, &parseErr) || re.Reason == "failed to decode request body" {
		return ErrNotJSON
	}
	var schemaErr *openapi3.SchemaError
	if errors.As(re.Err, &schemaErr) {
		return BadRequest(CodeBadJSON, "Invalid JSON"+schemaReason(schemaErr))
	}
	var multi openapi3.MultiError
	if errors.As(re.Err, &multi) {
		return BadRequest(CodeBadJSON, "Invalid JSON")
	}
	return ErrNotJSON
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
