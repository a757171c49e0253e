// Package web is what registrar's server-rendered pages share: the style
// sheet, the security headers every page sends, and a Content-Security-
// Policy that allows the pages' own inline style and scripts by hash
// (never 'unsafe-inline'). It knows nothing of the server.
package web

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// Style is the style sheet of every page, inlined in a <style> element.
const Style = `body{font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em;line-height:1.4}` +
	`.error{color:#b00}button{font-size:1em;padding:.4em 1.2em}label{display:block;margin:.6em 0 .2em}` +
	`input[type=text],input[type=password],input[type=email]{font-size:1em;padding:.3em;width:100%;box-sizing:border-box}` +
	`.hint{color:#555;font-size:.9em}`

// StyleCSS is Style for a template (trusted, not escaped).
var StyleCSS = template.CSS(Style)

// Hash is the CSP source of an inline element's exact text.
func Hash(inline string) string {
	sum := sha256.Sum256([]byte(inline))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// Policy is a page's Content-Security-Policy: nothing but its own inline
// style and the inline scripts given, forms posting to this server, no
// framing; scriptOrigins and frameOrigins add third parties (a captcha
// provider).
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
	b.WriteString("default-src 'none'; style-src " + Hash(Style) + "; img-src 'self' data:")
	scripts := p.ScriptOrigins
	for _, s := range p.Scripts {
		scripts = append(scripts, Hash(s))
	}
	if len(scripts) > 0 {
		b.WriteString("; script-src " + strings.Join(scripts, " "))
	}
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

// layout is the frame of every registrar page: head (title, style, the
// heading, an error) and foot.
const layout = `{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} - {{.ServerName}}</title><style>{{.Style}}</style>{{range .ScriptURLs}}<script src="{{.}}" async defer></script>{{end}}</head><body><main>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="error" role="alert" id="error"{{if .ErrorCode}} data-errcode="{{.ErrorCode}}"{{end}}>{{.Error}}</p>{{end}}{{if .Notice}}<p role="status" id="notice">{{.Notice}}</p>{{end}}{{end}}
{{define "foot"}}</main></body></html>{{end}}
{{define "message"}}{{template "head" .}}<p id="message">{{.Message}}</p>{{template "foot"}}{{end}}
`

// Frame is what the layout shows: set Title and ServerName (Style is
// filled in), and Error or Notice for a line above the page's content;
// ScriptURLs load third-party scripts (a captcha widget).
type Frame struct {
	Title, ServerName, Error, Notice, Message string
	// ErrorCode is the Matrix errcode behind Error, if any (for scripts).
	ErrorCode  string
	ScriptURLs []string
	Style      template.CSS
}

// Templates parses page templates that use the layout ("head", "foot",
// and "message" for a one-paragraph page).
func Templates(defs string) *template.Template {
	return template.Must(template.Must(template.New("").Parse(layout)).Parse(defs))
}
