package impl

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"registrar/impl/matrix"
)

// writeError is the one place that writes error responses.
func (h *httpStack) writeError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	if challenge, ok := err.(*matrix.Challenge); ok {
		_ = c.JSON(http.StatusUnauthorized, challenge.Body)
		return
	}
	merr := matrix.From(err)
	if merr.Status >= 500 {
		h.log.Error("request failed", "request_id", h.requestID(c), "method", c.Request().Method,
			"route", c.Path(), "error", err)
	}
	if merr.RetryAfterMS > 0 {
		c.Response().Header().Set("Retry-After", strconv.FormatInt((merr.RetryAfterMS+999)/1000, 10))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(merr.Status)
		return
	}
	_ = c.JSON(merr.Status, merr.Body())
}

// mustJSON marshals v or panics; for values built by the server itself.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
