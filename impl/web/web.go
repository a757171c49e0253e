// Package web is what registrar's server-rendered pages share: the layout,
// style sheet and script, the message catalogue, the operator's branding
// and template overrides, the security headers every page sends and a
// Content-Security-Policy that allows nothing but registrar's own assets
// and the inline scripts a page names by hash (never 'unsafe-inline'). It
// knows nothing of the server.
package web

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// Hash is the CSP source of an inline element's exact text.
func Hash(inline string) string {
	sum := sha256.Sum256([]byte(inline))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// Policy is a page's Content-Security-Policy: registrar's own style sheet,
// script and images, the inline scripts given, forms posting to this
// server, no framing; ScriptOrigins and FrameOrigins add third parties (a
// captcha provider).
type Policy struct {
	Scripts       []string
	ScriptOrigins []string
	FrameOrigins  []string
	// FormAction are sources beyond 'self' a form may end up at after
	// redirects (an OAuth client's redirect URI).
	FormAction []string
}

// String renders the policy.
func (p Policy) String() string {
	var b strings.Builder
	b.WriteString("default-src 'none'; style-src 'self'; img-src 'self' data:; connect-src 'self'")
	scripts := append([]string{"'self'"}, p.ScriptOrigins...)
	for _, s := range p.Scripts {
		scripts = append(scripts, Hash(s))
	}
	b.WriteString("; script-src " + strings.Join(scripts, " "))
	if len(p.FrameOrigins) > 0 {
		b.WriteString("; frame-src " + strings.Join(p.FrameOrigins, " "))
	}
	b.WriteString("; form-action 'self'")
	for _, src := range p.FormAction {
		if src != "" {
			b.WriteString(" " + src)
		}
	}
	b.WriteString("; base-uri 'none'; frame-ancestors 'none'")
	return b.String()
}

// SetHeaders sets the headers every page sends: the policy, no framing,
// no referrer (links carry tokens), no sniffing, no caching.
func SetHeaders(h http.Header, p Policy) {
	h.Set("Content-Security-Policy", p.String())
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// Origin is the scheme://host of a URL, or "" when it has none.
func Origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// SafeRedirect reports whether raw may be followed: an absolute http(s)
// URL.
func SafeRedirect(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
