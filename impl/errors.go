package impl

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"registrar/impl/matrix"
	"registrar/impl/oauth"
	"registrar/impl/web"
)

// writeError is the one place that writes error responses.
func (h *httpStack) writeError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	info := infoFrom(c.Request().Context())
	if id := info.requestID(); id != "" {
		c.Response().Header().Set(echo.HeaderXRequestID, id)
	}
	if challenge, ok := err.(*matrix.Challenge); ok {
		info.errcode = challenge.Code
		_ = c.JSON(http.StatusUnauthorized, challenge.Body)
		return
	}
	var oerr *oauth.Error
	if errors.As(err, &oerr) {
		info.errcode = oerr.Code
		_ = c.JSON(oerr.Status, oauthErrorBody{Error: oerr.Code, Description: oerr.Description})
		return
	}
	merr := matrix.From(err)
	info.errcode = merr.Code
	format := info.errorFormat
	if merr.Status >= 500 {
		h.log.ErrorContext(c.Request().Context(), "request failed", "method", c.Request().Method, "route", c.Path(), "error", err)
	}
	if merr.RetryAfterMS > 0 {
		c.Response().Header().Set("Retry-After", strconv.FormatInt((merr.RetryAfterMS+999)/1000, 10))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(merr.Status)
		return
	}
	switch {
	case format == "oauth2" && merr != errOAuthOff:
		code := oauth.CodeInvalidRequest
		switch {
		case merr.Code == matrix.CodeBadJSON: // only client registration takes JSON
			code = oauth.CodeInvalidClientMetadata
		case merr.Status >= 500:
			code = oauth.CodeServerError
		case merr.Status == http.StatusTooManyRequests:
			code = oauth.CodeTemporarilyUnavailble
		}
		_ = c.JSON(merr.Status, oauthErrorBody{Error: code, Description: merr.Message})
	case format == "html" && h.errorPage != nil && merr != errOAuthOff:
		page := h.errorPage(c.Request().Context(), merr.Status, merr.Message)
		web.SetHeaders(c.Response().Header(), web.Policy{})
		_ = c.HTMLBlob(merr.Status, page)
	default:
		_ = c.JSON(merr.Status, merr.Body())
	}
}

// oauthErrorBody is the error answer of RFC 6749 §5.2.
type oauthErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// mustJSON marshals v or panics; for values built by the server itself.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
