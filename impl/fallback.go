package impl

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"registrar/api"
	"registrar/impl/matrix"
	"registrar/impl/uia"
	"registrar/impl/web"

	"github.com/getkin/kin-openapi/openapi3"
)

var errNoFallback = &matrix.Error{Status: http.StatusNotFound, Code: matrix.CodeUnrecognized, Message: "Unknown auth stage type"}

// fallbackTemplates render the stage pages and the completion page. When
// the stage is done, the completion page calls window.onAuthDone or posts
// "authDone" to the opener, as the spec's fallback section requires.
var fallbackTemplates = template.Must(template.New("").Parse(`
{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>{{.Style}}</style>
{{end}}
{{define "recaptcha"}}{{template "head" .}}<script src="{{.ScriptURL}}" async defer></script></head><body>
<h1>Confirm you are human</h1>
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
<form method="post" action="">
<div class="{{.SitekeyClass}}" data-sitekey="{{.PublicKey}}"></div>
<p><button type="submit">Continue</button></p>
</form></body></html>{{end}}
{{define "terms"}}{{template "head" .}}</head><body>
<h1>Terms and conditions</h1>
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
<form method="post" action="">
<p>Please read and accept:</p><ul>
{{range .Policies}}<li><a href="{{.URL}}" target="_blank" rel="noopener">{{.Name}}</a> (version {{.Version}})</li>{{end}}
</ul>
<p><label><input type="checkbox" name="accept" value="yes" required> I have read and agree to these documents</label></p>
<p><button type="submit">Accept</button></p>
</form></body></html>{{end}}
{{define "done"}}{{template "head" .}}<script>{{.DoneScript}}</script></head><body>
<p>Thank you. You may now close this window and return to the application.</p></body></html>{{end}}
`))

// fallbackDoneScript tells the client the stage is done (allowed by its
// hash in the page's Content-Security-Policy).
const fallbackDoneScript = `if (window.onAuthDone) { window.onAuthDone(); }
else if (window.opener && window.opener.postMessage) { window.opener.postMessage("authDone", "*"); }`

type fallbackPolicy struct{ Name, URL, Version string }

type fallbackPage struct {
	Style        template.CSS
	DoneScript   template.JS
	Title        string
	Error        string
	ScriptURL    string
	SitekeyClass string
	PublicKey    string
	Policies     []fallbackPolicy
}

func (s *Server) renderFallback(name string, page fallbackPage) (*bytes.Buffer, error) {
	page.Style, page.DoneScript = web.StyleCSS, fallbackDoneScript
	var buf bytes.Buffer
	if err := fallbackTemplates.ExecuteTemplate(&buf, name, page); err != nil {
		return nil, matrix.Internal(err)
	}
	return &buf, nil
}

// fallbackStagePage renders the page of a stage, with an error if the last
// submission failed.
func (s *Server) fallbackStagePage(authType, errMsg string) (*bytes.Buffer, error) {
	switch authType {
	case uia.TypeRecaptcha:
		c := s.cfg.Captcha
		return s.renderFallback("recaptcha", fallbackPage{Title: "Captcha", Error: errMsg, ScriptURL: c.RecaptchaAPIJSURL,
			SitekeyClass: c.RecaptchaSitekeyClass, PublicKey: c.RecaptchaPublicKey})
	case uia.TypeTerms:
		policies := s.termsPolicies()
		return s.renderFallback("terms", fallbackPage{Title: "Terms and conditions", Error: errMsg, Policies: policies})
	}
	return nil, errNoFallback
}

// fallbackSession checks that the stage has a page here and the session exists.
func (s *Server) fallbackSession(ctx context.Context, authType, sessionID string) (*uia.Session, error) {
	if !s.uia.Offers(authType) || (authType != uia.TypeRecaptcha && authType != uia.TypeTerms) {
		return nil, errNoFallback
	}
	return s.uia.LoadAny(ctx, sessionID)
}

// AuthFallbackPage is GET /_matrix/client/v3/auth/{authType}/fallback/web.
func (s *Server) AuthFallbackPage(ctx context.Context, req api.AuthFallbackPageRequestObject) (api.AuthFallbackPageResponseObject, error) {
	if _, err := s.fallbackSession(ctx, req.AuthType, req.Params.Session); err != nil {
		return nil, err
	}
	page, err := s.fallbackStagePage(req.AuthType, "")
	if err != nil {
		return nil, err
	}
	return api.AuthFallbackPage200TexthtmlResponse{Body: page, ContentLength: int64(page.Len())}, nil
}

// AuthFallbackSubmit is POST /_matrix/client/v3/auth/{authType}/fallback/web:
// the page's form; on success the stage is marked complete in the session
// and the completion page is served.
func (s *Server) AuthFallbackSubmit(ctx context.Context, req api.AuthFallbackSubmitRequestObject) (api.AuthFallbackSubmitResponseObject, error) {
	sess, err := s.fallbackSession(ctx, req.AuthType, req.Params.Session)
	if err != nil {
		return nil, err
	}
	var result string
	switch req.AuthType {
	case uia.TypeRecaptcha:
		response := firstNonEmpty(req.Body.GRecaptchaResponse, req.Body.HCaptchaResponse, req.Body.CfTurnstileResponse)
		if response == "" {
			return s.fallbackRetry(req.AuthType, "Please complete the captcha.")
		}
		err = s.captcha.VerifyCaptcha(ctx, response, clientIP(ctx))
		var failure *uia.Failure
		if errors.As(err, &failure) {
			return s.fallbackRetry(req.AuthType, "The captcha was not accepted; please try again.")
		}
		if err != nil {
			return nil, err
		}
		result = "true"
	case uia.TypeTerms:
		if req.Body.Accept == nil || *req.Body.Accept == "" {
			return s.fallbackRetry(req.AuthType, "Please accept the documents to continue.")
		}
		result = s.terms.Accepted()
	}
	if err := s.uia.Complete(ctx, sess, req.AuthType, result); err != nil {
		return nil, err
	}
	page, err := s.renderFallback("done", fallbackPage{Title: "Done"})
	if err != nil {
		return nil, err
	}
	return api.AuthFallbackSubmit200TexthtmlResponse{Body: page, ContentLength: int64(page.Len())}, nil
}

func (s *Server) fallbackRetry(authType, msg string) (api.AuthFallbackSubmitResponseObject, error) {
	page, err := s.fallbackStagePage(authType, msg)
	if err != nil {
		return nil, err
	}
	return api.AuthFallbackSubmit200TexthtmlResponse{Body: page, ContentLength: int64(page.Len())}, nil
}

func firstNonEmpty(values ...*string) string {
	for _, v := range values {
		if v != nil && *v != "" {
			return *v
		}
	}
	return ""
}

// pagePolicy is the Content-Security-Policy of an operation's pages: the
// fallback pages' completion script, and the captcha provider's scripts
// and frames; nothing for the others.
func (s *Server) pagePolicy(op *openapi3.Operation) web.Policy {
	if !strings.HasPrefix(strings.ToLower(op.OperationID), "authfallback") {
		return web.Policy{}
	}
	p := web.Policy{Scripts: []string{fallbackDoneScript}}
	if s.cfg.EnableRegistrationCaptcha {
		p.ScriptOrigins, p.FrameOrigins = captchaOrigins(s.cfg.Captcha.RecaptchaAPIJSURL)
	}
	return p
}

// captchaOrigins are the origins a captcha widget loads scripts and frames
// from, for the providers registrar knows, from its script's URL.
func captchaOrigins(apiJS string) (scripts, frames []string) {
	o := web.Origin(apiJS)
	switch {
	case strings.HasSuffix(o, "recaptcha.net") || strings.HasSuffix(o, "google.com"):
		return []string{o, "https://www.gstatic.com", "https://www.gstatic.cn"},
			[]string{o, "https://www.google.com", "https://www.recaptcha.net", "https://recaptcha.google.com"}
	case strings.HasSuffix(o, "hcaptcha.com"):
		return []string{o, "https://*.hcaptcha.com"}, []string{"https://*.hcaptcha.com"}
	}
	return []string{o}, []string{o}
}
