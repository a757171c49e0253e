// Package logging builds the server's slog handler over an output that
// writes the access log's lines in batches, and formats those lines
// itself: one appended byte slice per request, the same bytes slog's
// JSON or text handler would write, without a record, attributes or a
// write of its own.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Handler is slog's JSON or text handler over an Output, with a fast
// path for access log lines (Request). Records through slog are written
// at once, after any access lines still pending.
type Handler struct {
	slog.Handler
	out  *Output
	json bool
}

// New returns the handler for format ("json", or "text") at level,
// writing to out.
func New(format string, level slog.Leveler, out *Output) *Handler {
	opts := &slog.HandlerOptions{Level: level}
	h := &Handler{out: out, json: format != "text"}
	if h.json {
		h.Handler = slog.NewJSONHandler(out, opts)
	} else {
		h.Handler = slog.NewTextHandler(out, opts)
	}
	return h
}

// Output returns where the handler writes.
func (h *Handler) Output() *Output { return h.out }

// Request is one access log line: the fields of a "request" record.
type Request struct {
	// The request's ID is IDPrefix-IDNumber.
	IDPrefix  string
	IDNumber  uint64
	Operation string
	Method    string
	Route     string
	Status    int
	Errcode   string
	Duration  time.Duration
}

// linePool holds the buffers lines are formatted in.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 320); return &b }}

// LogRequest writes r as a "request" record at level, stamped now, to
// be written with the next batch. It reports false, writing nothing,
// when a field would need escaping: the caller then logs it through
// slog, which escapes it the same way the handler always does.
func (h *Handler) LogRequest(level slog.Level, now time.Time, r Request) bool {
	if !h.Enabled(context.Background(), level) {
		return true
	}
	for _, s := range [...]string{r.IDPrefix, r.Operation, r.Method, r.Route, r.Errcode} {
		if !plain(s) {
			return false
		}
	}
	bp := linePool.Get().(*[]byte)
	b := (*bp)[:0]
	if h.json {
		b = appendJSON(b, level, now, r)
	} else {
		b = appendText(b, level, now, r)
	}
	h.out.Defer(b)
	*bp = b
	linePool.Put(bp)
	return true
}

// plain reports whether s is printable ASCII with nothing JSON or
// slog's text format would escape or quote (but emptiness).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '=' {
			return false
		}
	}
	return true
}

// appendTextTime appends t as slog's text handler does: RFC 3339 with
// milliseconds (its JSON handler writes RFC 3339 with nanoseconds).
func appendTextTime(b []byte, t time.Time) []byte {
	return t.Truncate(time.Millisecond).AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
}

func appendJSON(b []byte, level slog.Level, now time.Time, r Request) []byte {
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":"request","request_id":"`...)
	b = appendID(b, r)
	b = append(b, `","operation":"`...)
	b = append(b, r.Operation...)
	b = append(b, `","method":"`...)
	b = append(b, r.Method...)
	b = append(b, `","route":"`...)
	b = append(b, r.Route...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"errcode":"`...)
	b = append(b, r.Errcode...)
	b = append(b, `","duration":`...)
	b = strconv.AppendInt(b, int64(r.Duration), 10)
	return append(b, "}\n"...)
}

func appendText(b []byte, level slog.Level, now time.Time, r Request) []byte {
	b = append(b, "time="...)
	b = appendTextTime(b, now)
	b = append(b, " level="...)
	b = append(b, level.String()...)
	b = append(b, " msg=request request_id="...)
	b = appendID(b, r)
	b = append(b, " operation="...)
	b = appendTextString(b, r.Operation)
	b = append(b, " method="...)
	b = appendTextString(b, r.Method)
	b = append(b, " route="...)
	b = appendTextString(b, r.Route)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, " errcode="...)
	b = appendTextString(b, r.Errcode)
	b = append(b, " duration="...)
	b = append(b, r.Duration.String()...)
	return append(b, '\n')
}

func appendID(b []byte, r Request) []byte {
	b = append(b, r.IDPrefix...)
	b = append(b, '-')
	return strconv.AppendUint(b, r.IDNumber, 10)
}

// appendTextString appends a plain string as the text handler does: as
// is, but an empty one quoted.
func appendTextString(b []byte, s string) []byte {
	if s == "" {
		return append(b, `""`...)
	}
	return append(b, s...)
}

// WithAttrs returns slog's handler with attrs: its records have fields
// LogRequest does not write, so it has no fast path.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler { return h.Handler.WithAttrs(attrs) }

// WithGroup returns slog's handler with the group, without a fast path.
func (h *Handler) WithGroup(name string) slog.Handler { return h.Handler.WithGroup(name) }

// Output is where log lines go. Lines written through Write (every slog
// record) go out at once, after whatever is pending; Deferred lines (the
// access log) are held until the pending bytes reach a limit, until
// delay passes or until the next immediate line, so that a busy server
// writes its access log in a few large writes instead of one per
// request.
type Output struct {
	mu      sync.Mutex
	w       io.Writer
	pending []byte
	delay   time.Duration
	timer   *time.Timer
	armed   bool
}

// pendingLimit is how many bytes of deferred lines wait at most.
const pendingLimit = 32 << 10

// NewOutput returns an Output writing to w, holding deferred lines at
// most delay (a delay of 0 writes every line at once).
func NewOutput(w io.Writer, delay time.Duration) *Output {
	o := &Output{w: w, delay: delay}
	if delay > 0 {
		o.pending = make([]byte, 0, pendingLimit+1024)
		o.timer = time.AfterFunc(time.Hour, func() { _ = o.Flush() })
		o.timer.Stop()
	}
	return o
}

// Write writes what is pending, then p, at once.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.pending) > 0 {
		o.pending = append(o.pending, p...)
		err := o.flushLocked()
		return len(p), err
	}
	return o.w.Write(p)
}

// Defer queues p (copied) for a later write.
func (o *Output) Defer(p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.delay <= 0 {
		_, _ = o.w.Write(p)
		return
	}
	o.pending = append(o.pending, p...)
	switch {
	case len(o.pending) >= pendingLimit:
		_ = o.flushLocked()
	case !o.armed:
		o.armed = true
		o.timer.Reset(o.delay)
	}
}

// Flush writes what is pending.
func (o *Output) Flush() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.flushLocked()
}

func (o *Output) flushLocked() error {
	if o.armed {
		o.armed = false
		o.timer.Stop()
	}
	if len(o.pending) == 0 {
		return nil
	}
	_, err := o.w.Write(o.pending)
	o.pending = o.pending[:0]
	return err
}
