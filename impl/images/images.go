// Package images fetches the small images the pages show from elsewhere
// (an OAuth client's logo, the branding logo) and keeps them: registrar
// serves them itself, so a page loads nothing from third parties and a
// person's address reaches no one but this server. A fetch is bounded in
// size and time, refuses addresses in the blocked ranges (no requests
// into the operator's network on a client's behalf), and its outcome,
// success or failure, is kept for a while.
package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"
)

// Image is a fetched image.
type Image struct {
	Body        []byte
	ContentType string
}

// Bounds of a fetch and of what is kept.
const (
	MaxBytes    = 512 << 10
	fetchTime   = 5 * time.Second
	keepFor     = 24 * time.Hour
	failedFor   = 10 * time.Minute
	keepEntries = 512
)

// ErrUnavailable is an image that could not be fetched (or was not one).
var ErrUnavailable = errors.New("images: the image could not be fetched")

// DefaultBlocked are the ranges no fetch may reach unless allowed:
// Synapse's default ip_range_blacklist (loopback, private, link-local,
// shared, documentation, benchmarking, multicast and reserved).
var DefaultBlocked = []string{
	"0.0.0.0/8", "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "192.0.0.0/24", "169.254.0.0/16",
	"192.88.99.0/24", "198.18.0.0/15", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "fe80::/10", "fc00::/7", "2001:db8::/32", "ff00::/8", "fec0::/10", "::ffff:0:0/96", "64:ff9b::/96",
}

// Fetcher fetches and keeps images.
type Fetcher struct {
	client  *http.Client
	kept    *expirable.LRU[string, Image]
	failed  *expirable.LRU[string, bool]
	flights singleflight.Group
	log     *slog.Logger
}

// New is a fetcher refusing the blocked prefixes, except the allowed ones
// (Synapse's ip_range_blacklist and ip_range_whitelist).
func New(blocked, allowed []string, log *slog.Logger) (*Fetcher, error) {
	deny, err := prefixes(blocked)
	if err != nil {
		return nil, fmt.Errorf("ip_range_blacklist: %w", err)
	}
	allow, err := prefixes(allowed)
	if err != nil {
		return nil, fmt.Errorf("ip_range_whitelist: %w", err)
	}
	check := func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		ip := ap.Addr().Unmap()
		for _, p := range allow {
			if p.Contains(ip) {
				return nil
			}
		}
		for _, p := range deny {
			if p.Contains(ip) || p.Contains(ap.Addr()) {
				return fmt.Errorf("images: %s is in a blocked range", ip)
			}
		}
		return nil
	}
	dialer := &net.Dialer{Timeout: fetchTime, Control: check}
	transport := &http.Transport{DialContext: dialer.DialContext, Proxy: nil, MaxIdleConns: 16, IdleConnTimeout: time.Minute,
		TLSHandshakeTimeout: fetchTime, ResponseHeaderTimeout: fetchTime}
	client := &http.Client{Transport: transport, Timeout: fetchTime, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 || (req.URL.Scheme != "https" && req.URL.Scheme != "http") {
			return errors.New("images: too many or unsafe redirects")
		}
		return nil
	}}
	return &Fetcher{client: client, kept: expirable.NewLRU[string, Image](keepEntries, nil, keepFor),
		failed: expirable.NewLRU[string, bool](keepEntries, nil, failedFor), log: log}, nil
}

func prefixes(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Cached returns the image of raw when it is kept, without fetching.
func (f *Fetcher) Cached(raw string) (Image, bool) { return f.kept.Get(raw) }

// Get returns the image at raw, fetched now unless kept (or failed
// recently); ErrUnavailable when it cannot be had.
func (f *Fetcher) Get(ctx context.Context, raw string) (Image, error) {
	if img, ok := f.kept.Get(raw); ok {
		return img, nil
	}
	if _, failed := f.failed.Get(raw); failed {
		return Image{}, ErrUnavailable
	}
	v, err, _ := f.flights.Do(raw, func() (any, error) {
		// The fetch is shared by concurrent callers: no one's deadline
		// cuts it short for the others.
		img, err := f.fetch(context.WithoutCancel(ctx), raw)
		if err != nil {
			f.failed.Add(raw, true)
			f.log.WarnContext(ctx, "fetching an image failed", "url", raw, "error", err)
			return Image{}, ErrUnavailable
		}
		f.kept.Add(raw, img)
		return img, nil
	})
	if err != nil {
		return Image{}, err
	}
	return v.(Image), nil
}

// Ready reports whether the image at raw can be served, fetching it if
// need be.
func (f *Fetcher) Ready(ctx context.Context, raw string) bool {
	_, err := f.Get(ctx, raw)
	return err == nil
}

func (f *Fetcher) fetch(ctx context.Context, raw string) (Image, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Image{}, errors.New("not an http(s) URL")
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTime)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return Image{}, err
	}
	req.Header.Set("Accept", "image/png, image/jpeg, image/webp, image/gif, image/svg+xml")
	resp, err := f.client.Do(req)
	if err != nil {
		return Image{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Image{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBytes+1))
	if err != nil {
		return Image{}, err
	}
	if len(body) > MaxBytes {
		return Image{}, fmt.Errorf("larger than %d bytes", MaxBytes)
	}
	typ := Sniff(body, resp.Header.Get("Content-Type"))
	if typ == "" {
		return Image{}, errors.New("not a PNG, JPEG, WebP, GIF or SVG image")
	}
	return Image{Body: body, ContentType: typ}, nil
}

// Sniff is the media type of an image by its content (SVG by its declared
// type and root element), or "" for anything else.
func Sniff(body []byte, declared string) string {
	switch t := http.DetectContentType(body); t {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return t
	}
	if strings.HasPrefix(declared, "image/svg+xml") && bytes.Contains(body[:min(len(body), 1024)], []byte("<svg")) {
		return "image/svg+xml"
	}
	return ""
}

// SetHeaders sets the headers of a served image: cached for a day, never
// sniffed, and a policy that keeps an SVG's scripts from running if the
// image is opened as a document.
func SetHeaders(h http.Header, img Image) {
	h.Set("Content-Type", img.ContentType)
	h.Set("Cache-Control", "public, max-age=86400")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
}
