package impl

import (
	"context"
	"errors"
	"net/http"

	"registrar/impl/matrix"
	"registrar/impl/web"
)

// formError is a page form's own refusal: a message ID, said beside field
// (or above the form when field is ""), with its status and errcode.
type formError struct {
	status      int
	code        string
	field, key  string
	placeholder []any
}

func (e *formError) Error() string { return "form: " + e.key }

// fieldError is a 400 M_INVALID_PARAM beside field.
func fieldError(field, key string) *formError {
	return &formError{status: http.StatusBadRequest, code: matrix.CodeInvalidParam, field: field, key: key}
}

// The roles of a form's fields that the API's errors concern; each form
// maps them onto its inputs' ids.
const (
	roleUsername = "username"
	rolePassword = "password"
	roleCurrent  = "current_password"
	roleEmail    = "email"
	rolePhone    = "phone"
	roleCode     = "code"
	roleToken    = "registration_token"
)

// apiMessages are the page messages of the API's errcodes: the field role
// they concern and the message ID.
var apiMessages = map[string]struct{ role, key string }{
	matrix.CodeUserInUse:             {roleUsername, "error_username_taken"},
	matrix.CodeInvalidUsername:       {roleUsername, "error_username_invalid"},
	matrix.CodeExclusive:             {roleUsername, "error_username_reserved"},
	matrix.CodeWeakPassword:          {rolePassword, "error_weak_password"},
	matrix.CodeLimitExceeded:         {"", "error_too_many_attempts"},
	matrix.CodeTokenIncorrect:        {roleCode, "error_code_wrong"},
	matrix.CodeThreepidInUse:         {roleEmail, "error_address_taken"},
	matrix.CodeThreepidDenied:        {roleEmail, "error_address_denied"},
	matrix.CodeThreepidAuthFailed:    {roleCode, "error_code_wrong"},
	matrix.CodeThreepidMediumUnknown: {"", "error_address_unsupported"},
	matrix.CodeUnauthorized:          {roleToken, "error_registration_token"},
	matrix.CodeCaptchaInvalid:        {"", "error_captcha_invalid"},
	matrix.CodeCaptchaNeeded:         {"", "error_captcha_needed"},
	matrix.CodeUserDeactivated:       {"", "error_deactivated"},
	matrix.CodeUserLocked:            {"", "error_locked"},
	matrix.CodeUserSuspended:         {"", "error_suspended"},
	matrix.CodeUnknown:               {"", "error_internal"},
}

// pageFailure puts err on the page: beside the field it concerns (fields
// maps roles to the form's inputs) or above the form, in the page's
// language. An API error registrar has no message for shows the API's own
// (English) message.
func (s *Server) pageFailure(ctx context.Context, f *web.Frame, err error, fields map[string]string) {
	lang := web.Lang(ctx)
	place := func(role, msg string) {
		if id := fields[role]; id != "" {
			f.FieldError(id, msg)
			return
		}
		f.Error = msg
	}
	var fe *formError
	if errors.As(err, &fe) {
		f.ErrorCode = fe.code
		msg := web.T(lang, fe.key, fe.placeholder...)
		if fe.field != "" {
			f.FieldError(fe.field, msg)
		} else {
			f.Error = msg
		}
		return
	}
	merr, ok := matrix.As(err)
	if !ok || merr.Status >= 500 {
		s.log.ErrorContext(ctx, "a page's request failed", "error", err)
		f.Error, f.ErrorCode = web.T(lang, "error_internal"), matrix.CodeUnknown
		return
	}
	f.ErrorCode = merr.Code
	m, known := apiMessages[merr.Code]
	switch {
	case merr.Code == matrix.CodeWeakPassword:
		place(m.role, web.T(lang, m.key, "Rules", s.passwordRules(lang)))
	case known:
		place(m.role, web.T(lang, m.key))
	default:
		f.Error = merr.Message
	}
}

// pageStatus is the status of a page showing err.
func pageStatus(err error) int {
	var fe *formError
	if errors.As(err, &fe) {
		return fe.status
	}
	if merr, ok := matrix.As(err); ok {
		return merr.Status
	}
	return http.StatusInternalServerError
}
