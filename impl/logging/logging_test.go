package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRequestLinesAreWhatSlogWrites compares each fast line with the
// line slog's own handler writes for the same record.
func TestRequestLinesAreWhatSlogWrites(t *testing.T) {
	stamps := []time.Time{
		time.Date(2026, 12, 2, 16, 39, 3, 0, time.UTC),
		time.Date(2026, 12, 2, 16, 39, 3, 999_999_999, time.FixedZone("", 5*3600+1800)),
		time.Date(2026, 1, 2, 3, 4, 5, 120_000_000, time.FixedZone("", -7*3600)),
	}
	requests := []Request{
		{IDPrefix: "a1B2c3", IDNumber: 1, Operation: "getVersions", Method: "GET", Route: "/_matrix/client/versions", Status: 200, Duration: 812345},
		{IDPrefix: "a1B2c3", IDNumber: 18446744073709551615, Operation: "register", Method: "POST", Route: "/_matrix/client/v3/register",
			Status: 401, Errcode: "", Duration: 3 * time.Second},
		{IDPrefix: "x", IDNumber: 7, Method: "PATCH", Route: "", Status: 404, Errcode: "M_UNRECOGNIZED", Duration: 12},
	}
	for _, format := range []string{"json", "text"} {
		for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
			for _, now := range stamps {
				for _, r := range requests {
					var fast, slow bytes.Buffer
					h := New(format, slog.LevelDebug, NewOutput(&fast, 0))
					if !h.LogRequest(level, now, r) {
						t.Fatalf("%s: refused %+v", format, r)
					}
					ref := New(format, slog.LevelDebug, NewOutput(&slow, 0))
					rec := slog.NewRecord(now, level, "request", 0)
					rec.AddAttrs(slog.String("request_id", r.IDPrefix+"-"+uintString(r.IDNumber)),
						slog.String("operation", r.Operation), slog.String("method", r.Method), slog.String("route", r.Route),
						slog.Int("status", r.Status), slog.String("errcode", r.Errcode), slog.Duration("duration", r.Duration))
					if err := ref.Handle(context.Background(), rec); err != nil {
						t.Fatal(err)
					}
					if fast.String() != slow.String() {
						t.Errorf("%s line differs:\nfast %s\nslog %s", format, fast.String(), slow.String())
					}
				}
			}
		}
	}
}

func uintString(n uint64) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		if n /= 10; n == 0 {
			return string(b)
		}
	}
}

// TestFieldsThatNeedEscapingAreLeftToSlog checks that a line whose
// fields would be escaped or quoted is refused, unwritten.
func TestFieldsThatNeedEscapingAreLeftToSlog(t *testing.T) {
	for _, r := range []Request{
		{IDPrefix: "p", Method: `GE"T`},
		{IDPrefix: "p", Route: `/a\b`},
		{IDPrefix: "p", Operation: "op=x"},
		{IDPrefix: "p", Errcode: "M_ÜNKNOWN"},
		{IDPrefix: "p", Method: "GET\n"},
		{IDPrefix: "p q"},
	} {
		var out bytes.Buffer
		h := New("json", slog.LevelInfo, NewOutput(&out, 0))
		if h.LogRequest(slog.LevelInfo, time.Now(), r) {
			t.Errorf("%+v: accepted", r)
		}
		if out.Len() != 0 {
			t.Errorf("%+v: wrote %q", r, out.String())
		}
	}
}

// TestRequestLinesFollowTheLevel checks that a line below the
// handler's level is dropped (and counts as written).
func TestRequestLinesFollowTheLevel(t *testing.T) {
	var out bytes.Buffer
	h := New("text", slog.LevelInfo, NewOutput(&out, 0))
	if !h.LogRequest(slog.LevelDebug, time.Now(), Request{IDPrefix: "p", IDNumber: 1}) || out.Len() != 0 {
		t.Errorf("a debug line at info level: %q", out.String())
	}
	if !h.LogRequest(slog.LevelWarn, time.Now(), Request{IDPrefix: "p", IDNumber: 2}) || !strings.Contains(out.String(), "level=WARN") {
		t.Errorf("a warning at info level: %q", out.String())
	}
}

// TestAttributesTakeTheSlowPath checks that a handler with attributes
// or a group is slog's own, so that access lines keep them.
func TestAttributesTakeTheSlowPath(t *testing.T) {
	h := New("json", slog.LevelInfo, NewOutput(&bytes.Buffer{}, 0))
	if _, ok := h.WithAttrs([]slog.Attr{slog.String("k", "v")}).(*Handler); ok {
		t.Error("WithAttrs kept the fast path")
	}
	if _, ok := h.WithGroup("g").(*Handler); ok {
		t.Error("WithGroup kept the fast path")
	}
}

// syncBuffer is a bytes.Buffer safe to read while the output's timer
// writes to it, counting writes.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *syncBuffer) read() (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.writes
}

// TestDeferredLinesAreBatched checks when access lines reach the
// writer: in one write after the delay, before any immediate line (in
// order), at the size limit, and on Flush.
func TestDeferredLinesAreBatched(t *testing.T) {
	t.Run("after the delay, in one write", func(t *testing.T) {
		var w syncBuffer
		o := NewOutput(&w, 20*time.Millisecond)
		o.Defer([]byte("a\n"))
		o.Defer([]byte("b\n"))
		if got, _ := w.read(); got != "" {
			t.Fatalf("written before the delay: %q", got)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, writes := w.read()
			if got == "a\nb\n" && writes == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the delay: %q in %d writes", got, writes)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	t.Run("before an immediate line", func(t *testing.T) {
		var w syncBuffer
		o := NewOutput(&w, time.Hour)
		o.Defer([]byte("access\n"))
		if _, err := o.Write([]byte("warning\n")); err != nil {
			t.Fatal(err)
		}
		if got, writes := w.read(); got != "access\nwarning\n" || writes != 1 {
			t.Errorf("got %q in %d writes", got, writes)
		}
	})
	t.Run("at the size limit", func(t *testing.T) {
		var w syncBuffer
		o := NewOutput(&w, time.Hour)
		line := bytes.Repeat([]byte("x"), 1023)
		line = append(line, '\n')
		for i := 0; i < pendingLimit/len(line); i++ {
			o.Defer(line)
		}
		if got, writes := w.read(); len(got) != pendingLimit || writes != 1 {
			t.Errorf("%d bytes in %d writes at the limit", len(got), writes)
		}
	})
	t.Run("on flush", func(t *testing.T) {
		var w syncBuffer
		o := NewOutput(&w, time.Hour)
		o.Defer([]byte("last\n"))
		if err := o.Flush(); err != nil {
			t.Fatal(err)
		}
		if got, _ := w.read(); got != "last\n" {
			t.Errorf("after Flush: %q", got)
		}
	})
}

// TestSlogRecordsFollowPendingLines checks, through a handler, that a
// record written by slog comes after the access lines before it.
func TestSlogRecordsFollowPendingLines(t *testing.T) {
	var w syncBuffer
	h := New("json", slog.LevelInfo, NewOutput(&w, time.Hour))
	h.LogRequest(slog.LevelInfo, time.Now(), Request{IDPrefix: "p", IDNumber: 1, Status: 200})
	slog.New(h).Warn("after")
	got, _ := w.read()
	if i, j := strings.Index(got, `"msg":"request"`), strings.Index(got, `"msg":"after"`); i < 0 || j < i {
		t.Errorf("order: %q", got)
	}
}

// BenchmarkLogRequest is the cost of one access line, JSON.
func BenchmarkLogRequest(b *testing.B) {
	h := New("json", slog.LevelInfo, NewOutput(discard{}, time.Hour))
	r := Request{IDPrefix: "a1B2c3", IDNumber: 1234, Operation: "getVersions", Method: "GET", Route: "/_matrix/client/versions", Status: 200, Duration: 812345}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.LogRequest(slog.LevelInfo, time.Now(), r)
	}
}

// BenchmarkSlogRequest is the same line through slog.
func BenchmarkSlogRequest(b *testing.B) {
	log := slog.New(slog.NewJSONHandler(discard{}, nil))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		log.LogAttrs(context.Background(), slog.LevelInfo, "request", slog.String("request_id", "a1B2c3-1234"),
			slog.String("operation", "getVersions"), slog.String("method", "GET"), slog.String("route", "/_matrix/client/versions"),
			slog.Int("status", 200), slog.String("errcode", ""), slog.Duration("duration", 812345))
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestConcurrentLinesStayWhole: access lines and slog records written
// from many goroutines while the timer flushes all arrive, each whole on
// its own line.
func TestConcurrentLinesStayWhole(t *testing.T) {
	var w syncBuffer
	out := NewOutput(&w, time.Millisecond)
	h := New("json", slog.LevelInfo, out)
	log := slog.New(h)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 500; i++ {
				h.LogRequest(slog.LevelInfo, time.Now(), Request{IDPrefix: "p", IDNumber: uint64(g*1000 + i), Status: 200})
				if i%50 == 0 {
					log.Warn("interleaved", "g", g)
				}
			}
		})
	}
	wg.Wait()
	if err := out.Flush(); err != nil {
		t.Fatal(err)
	}
	got, _ := w.read()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	requests := 0
	for _, line := range lines {
		if !strings.HasPrefix(line, `{"time":"`) || !strings.HasSuffix(line, "}") {
			t.Fatalf("a broken line: %q", line)
		}
		if strings.Contains(line, `"msg":"request"`) {
			requests++
		}
	}
	if requests != 8*500 || len(lines) != 8*500+8*10 {
		t.Errorf("%d request lines of %d lines, want 4000 of 4080", requests, len(lines))
	}
}
