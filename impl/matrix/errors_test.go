package matrix

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"
)

func TestFromMapsEveryKindOfFailure(t *testing.T) {
	param := &openapi3.Parameter{Name: "username"}
	secret := "hunter2-secret"
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"matrix error", Forbidden("no"), 403, CodeForbidden},
		{"wrapped matrix error", fmt.Errorf("ctx: %w", BadRequest(CodeUserInUse, "taken")), 400, CodeUserInUse},
		{"not found route", echo.ErrNotFound, 404, CodeUnrecognized},
		{"wrong method", echo.ErrMethodNotAllowed, 405, CodeUnrecognized},
		{"too large", echo.ErrStatusRequestEntityTooLarge, 413, CodeTooLarge},
		{"binder", echo.NewHTTPError(http.StatusBadRequest, "bad"), 400, CodeInvalidParam},
		{"missing query", &openapi3filter.RequestError{Parameter: param, Err: openapi3filter.ErrInvalidRequired}, 400, CodeMissingParam},
		{"bad query", &openapi3filter.RequestError{Parameter: param, Err: &openapi3.SchemaError{Value: secret, Reason: "too long"}}, 400, CodeInvalidParam},
		{"empty body", &openapi3filter.RequestError{Err: openapi3filter.ErrInvalidRequired}, 400, CodeNotJSON},
		{"unparsable body", &openapi3filter.RequestError{Err: &openapi3filter.ParseError{}}, 400, CodeNotJSON},
		{"schema", &openapi3filter.RequestError{Err: &openapi3.SchemaError{Value: secret, Reason: "wrong type"}}, 400, CodeBadJSON},
		{"anything else", errors.New("disk on fire"), 500, CodeUnknown},
	} {
		got := From(tc.err)
		if got.Status != tc.status || got.Code != tc.code {
			t.Errorf("%s: got %d %s, want %d %s", tc.name, got.Status, got.Code, tc.status, tc.code)
		}
		if b := got.Body(); b.Errcode != tc.code || b.Error == "" || contains(b.Error, secret) || contains(b.Error, "disk") {
			t.Errorf("%s: body %+v", tc.name, b)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
