package images

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

var png = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0}, 64)...)

// server serves path → body with a declared type, counting requests.
func server(t *testing.T, files map[string][2]string) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", f[0])
		_, _ = io.WriteString(w, f[1])
	}))
	t.Cleanup(ts.Close)
	return ts, &hits
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestFetchesOnlyImagesWithinBounds(t *testing.T) {
	ts, hits := server(t, map[string][2]string{
		"/logo.png":  {"image/png", string(png)},
		"/logo.svg":  {"image/svg+xml", `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>`},
		"/page.html": {"image/png", "<html><script>alert(1)</script></html>"},
		"/huge.png":  {"image/png", string(png) + string(bytes.Repeat([]byte{0}, MaxBytes))},
		"/fake.svg":  {"text/html", `<svg onload="alert(1)">`},
	})
	f, err := New(DefaultBlocked, []string{"127.0.0.0/8"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for path, want := range map[string]string{"/logo.png": "image/png", "/logo.svg": "image/svg+xml", "/page.html": "", "/huge.png": "",
		"/fake.svg": "", "/missing.png": ""} {
		img, err := f.Get(ctx, ts.URL+path)
		switch {
		case want == "" && !errors.Is(err, ErrUnavailable):
			t.Errorf("%s: %v %q", path, err, img.ContentType)
		case want != "" && (err != nil || img.ContentType != want):
			t.Errorf("%s: %v %q", path, err, img.ContentType)
		}
	}
	// Kept: neither an image nor a failure is fetched again for a while.
	before := hits.Load()
	for range 3 {
		_, _ = f.Get(ctx, ts.URL+"/logo.png")
		_, _ = f.Get(ctx, ts.URL+"/missing.png")
	}
	if hits.Load() != before {
		t.Errorf("fetched %d more times", hits.Load()-before)
	}
	if _, ok := f.Cached(ts.URL + "/logo.png"); !ok {
		t.Error("the logo is not kept")
	}
}

func TestRefusesPrivateNetworksUnlessAllowed(t *testing.T) {
	ts, hits := server(t, map[string][2]string{"/logo.png": {"image/png", string(png)}})
	f, err := New(DefaultBlocked, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{ts.URL + "/logo.png", "file:///etc/passwd", "gopher://127.0.0.1/", "http://[::1]:1/x.png"} {
		if _, err := f.Get(context.Background(), u); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the loopback server was reached %d times", hits.Load())
	}
	if _, err := New([]string{"not a network"}, nil, quiet()); err == nil {
		t.Error("a bad range was accepted")
	}
}
