package impl

import (
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"registrar/impl/matrix"
)

// corsAndLimits runs before routing: the CORS headers the spec recommends
// on every response, OPTIONS answered without running any endpoint, and the
// request body size limit (a query string is checked once the operation,
// and so the form its errors take, is known). It reports whether it answered the request.
// (It is called by observe, not installed as a middleware of its own:
// echo builds the chain of Pre middlewares anew for every request.)
func (h *httpStack) corsAndLimits(c echo.Context) (answered bool, err error) {
	header := c.Response().Header()
	for _, h := range corsHeaders {
		header[h.name] = h.value
	}
	req := c.Request()
	if req.Method == http.MethodOptions {
		return true, c.NoContent(http.StatusNoContent)
	}
	if req.ContentLength > h.maxBody {
		return true, matrix.ErrTooLarge
	}
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &limitedBody{ReadCloser: req.Body, remaining: h.maxBody}
	}
	return false, nil
}

// corsHeaders are on every answer (Matrix v1.13's methods). Every answer
// shares their value slices: a header is only ever replaced or appended
// to, and appending to a full slice copies it.
var corsHeaders = [...]struct {
	name  string
	value []string
}{
	{"Access-Control-Allow-Origin", []string{"*"}},
	{"Access-Control-Allow-Methods", []string{"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"}},
	{"Access-Control-Allow-Headers", []string{"X-Requested-With, Content-Type, Authorization"}},
}

var errBadQuery = matrix.BadRequest(matrix.CodeInvalidParam, "The query string is not valid URL encoding")

// validQuery reports whether a raw query string decodes: url.ParseQuery
// refuses a '%' not followed by two hex digits and a ';' separator, which
// the binders would otherwise meet after validation.
func validQuery(raw string) bool {
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// limitedBody fails reads past the body size limit with echo's 413 error,
// which the error writer maps to M_TOO_LARGE.
type limitedBody struct {
	io.ReadCloser
	remaining int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.remaining < 0 {
		return 0, echo.ErrStatusRequestEntityTooLarge
	}
	if int64(len(p)) > l.remaining+1 {
		p = p[:l.remaining+1]
	}
	n, err := l.ReadCloser.Read(p)
	l.remaining -= int64(n)
	if l.remaining < 0 {
		return n, echo.ErrStatusRequestEntityTooLarge
	}
	return n, err
}

// numberRequest gives the request its number; its ID (this process's
// random prefix and the number) is written out only when a log line or
// an error answer (X-Request-Id) needs it.
func (h *httpStack) numberRequest(info *requestInfo) {
	info.idPrefix, info.seq = h.requestPrefix, h.requestSeq.Add(1)
}

// requestID is the request's ID, "" before numberRequest.
func (i *requestInfo) requestID() string {
	if i.seq == 0 {
		return ""
	}
	var buf [32]byte
	b := append(buf[:0], i.idPrefix...)
	b = append(b, '-')
	return string(strconv.AppendUint(b, i.seq, 10))
}
