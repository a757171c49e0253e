package impl

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"registrar/api"
	"registrar/impl/matrix"
	"registrar/impl/uia"
	"registrar/impl/web"

	"github.com/getkin/kin-openapi/openapi3"
)

var errNoFallback = &matrix.Error{Status: http.StatusNotFound, Code: matrix.CodeUnrecognized, Message: "Unknown auth stage type"}

// The stage pages and the completion page. When the stage is done, the
// completion page calls window.onAuthDone or posts "authDone" to the
// opener, as the spec's fallback section requires.
var _ = web.Register(`
{{define "fallback-recaptcha"}}{{template "head" .}}
<form method="post" action="">
<div class="{{.SitekeyClass}}" data-sitekey="{{.PublicKey}}"></div>
<div class="actions"><button type="submit" id="submit">{{t "continue"}}</button></div>
</form>{{template "foot" .}}{{end}}

{{define "fallback-terms"}}{{template "head" .}}
<form method="post" action="">
<p>{{t "fallback_terms_read"}}</p><ul>
{{range .Policies}}<li><a href="{{.URL}}" target="_blank" rel="noopener">{{.Name}}</a> ({{t "terms_version" "Version" .Version}})</li>{{end}}
</ul>
<div class="field"><label class="checkbox"><input type="checkbox" name="accept" id="accept" value="yes" required> {{t "terms_agree"}}</label></div>
<div class="actions"><button type="submit" id="submit">{{t "fallback_terms_accept"}}</button></div>
</form>{{template "foot" .}}{{end}}

{{define "fallback-sso"}}{{template "head" .}}<p id="intro">{{t "fallback_sso_intro"}}</p>
<div class="providers" id="providers">{{range .Providers}}<a class="button secondary provider" href="{{.URL}}" id="provider-{{.ID}}">{{t "providers_continue_with" "Provider" .Name}}</a>{{end}}</div>
{{template "foot" .}}{{end}}

{{define "fallback-done"}}{{template "head" .}}<p id="done">{{t "fallback_done_text"}}</p>{{template "foot" .}}{{end}}
`)

// fallbackDoneScript tells the client the stage is done (allowed by its
// hash in the page's Content-Security-Policy).
const fallbackDoneScript = `if (window.onAuthDone) { window.onAuthDone(); }
else if (window.opener && window.opener.postMessage) { window.opener.postMessage("authDone", "*"); }`

type fallbackPolicy struct{ Name, URL, Version string }

type fallbackView struct {
	web.Frame
	SitekeyClass, PublicKey string
	Policies                []fallbackPolicy
	Providers               []web.ProviderLink
}

func (s *Server) renderFallback(ctx context.Context, name string, v *fallbackView) (*bytes.Buffer, error) {
	b, err := s.site.Render(ctx, name, v)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	return bytes.NewBuffer(b), nil
}

// fallbackStagePage renders the page of a stage, with an error (a message
// ID) if the last submission failed.
func (s *Server) fallbackStagePage(ctx context.Context, authType, errKey string) (*bytes.Buffer, error) {
	lang := web.Lang(ctx)
	v := &fallbackView{}
	if errKey != "" {
		v.Error = web.T(lang, errKey)
	}
	switch authType {
	case uia.TypeRecaptcha:
		c := s.cfg.Captcha
		v.Title, v.ScriptURLs, v.SitekeyClass, v.PublicKey = web.T(lang, "fallback_captcha_title"), []string{c.RecaptchaAPIJSURL},
			c.RecaptchaSitekeyClass, c.RecaptchaPublicKey
		return s.renderFallback(ctx, "fallback-recaptcha", v)
	case uia.TypeTerms:
		v.Title, v.Policies = web.T(lang, "fallback_terms_title"), s.termsPolicies()
		return s.renderFallback(ctx, "fallback-terms", v)
	}
	return nil, errNoFallback
}

// fallbackSession checks that the stage has a page here and the session exists.
func (s *Server) fallbackSession(ctx context.Context, authType, sessionID string) (*uia.Session, error) {
	if !s.uia.Offers(authType) || (authType != uia.TypeRecaptcha && authType != uia.TypeTerms && authType != uia.TypeSSO &&
		authType != uia.TypeSecondFactor) {
		return nil, errNoFallback
	}
	return s.uia.LoadAny(ctx, sessionID)
}

// AuthFallbackPage is GET /_matrix/client/v3/auth/{authType}/fallback/web.
func (s *Server) AuthFallbackPage(ctx context.Context, req api.AuthFallbackPageRequestObject) (api.AuthFallbackPageResponseObject, error) {
	sess, err := s.fallbackSession(ctx, req.AuthType, req.Params.Session)
	if err != nil {
		return nil, err
	}
	if req.AuthType == uia.TypeSecondFactor {
		page, err := s.factorFallbackPage(ctx, sess, req.Params.Session, nil)
		if err != nil {
			return nil, err
		}
		return api.AuthFallbackPage200TexthtmlResponse{Body: page, ContentLength: int64(page.Len())}, nil
	}
	if req.AuthType == uia.TypeSSO {
		page, err := s.ssoFallbackPage(ctx, sess, req.Params.Session)
		if err != nil {
			return nil, err
		}
		return api.AuthFallbackPage200TexthtmlResponse{Body: page, ContentLength: int64(page.Len())}, nil
	}
	page, err := s.fallbackStagePage(ctx, req.AuthType, "")
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
	case uia.TypeSecondFactor:
		if sess.Requester == "" {
			return nil, errNoFallback
		}
		if err := s.checkCode(ctx, sess.Requester, deref(req.Body.Code)); err != nil {
			page, perr := s.factorFallbackPage(ctx, sess, req.Params.Session, err)
			if perr != nil {
				return nil, perr
			}
			return api.AuthFallbackSubmit200TexthtmlResponse{Body: page, ContentLength: int64(page.Len())}, nil
		}
		result = sess.Requester
	case uia.TypeRecaptcha:
		response := firstNonEmpty(req.Body.GRecaptchaResponse, req.Body.HCaptchaResponse, req.Body.CfTurnstileResponse)
		if response == "" {
			return s.fallbackRetry(ctx, req.AuthType, "error_captcha_needed")
		}
		err = s.captcha.VerifyCaptcha(ctx, response, clientIP(ctx))
		var failure *uia.Failure
		if errors.As(err, &failure) {
			return s.fallbackRetry(ctx, req.AuthType, "error_captcha_invalid")
		}
		if err != nil {
			return nil, err
		}
		result = "true"
	case uia.TypeTerms:
		if req.Body.Accept == nil || *req.Body.Accept == "" {
			return s.fallbackRetry(ctx, req.AuthType, "error_accept_terms")
		}
		result = s.terms.Accepted()
	}
	if err := s.uia.Complete(ctx, sess, req.AuthType, result); err != nil {
		return nil, err
	}
	page, err := s.renderFallback(ctx, "fallback-done", &fallbackView{Frame: web.Frame{Title: web.T(web.Lang(ctx), "fallback_done_title"),
		InlineScript: fallbackDoneScript}})
	if err != nil {
		return nil, err
	}
	return api.AuthFallbackSubmit200TexthtmlResponse{Body: page, ContentLength: int64(page.Len())}, nil
}

// ssoFallbackPage offers the providers the session's user is linked to,
// each completing m.login.sso when the person signs in there again.
func (s *Server) ssoFallbackPage(ctx context.Context, sess *uia.Session, sessionID string) (*bytes.Buffer, error) {
	if sess.Requester == "" {
		return nil, errNoFallback
	}
	ids, err := s.store.ExternalIDs(ctx, sess.Requester)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	v := &fallbackView{Frame: web.Frame{Title: web.T(web.Lang(ctx), "fallback_sso_title")}}
	for _, e := range ids {
		if p, ok := s.upstream.Provider(e.AuthProvider); ok {
			v.Providers = append(v.Providers, web.ProviderLink{ID: e.AuthProvider, Name: p.Info().Name,
				URL: "/_registrar/upstream/" + url.PathEscape(e.AuthProvider) + "/authorize?uia_session=" + url.QueryEscape(sessionID)})
		}
	}
	return s.renderFallback(ctx, "fallback-sso", v)
}

// factorFallbackPage asks the session's user for their second factor.
func (s *Server) factorFallbackPage(ctx context.Context, sess *uia.Session, sessionID string, failure error) (*bytes.Buffer, error) {
	if sess.Requester == "" || s.factors == nil {
		return nil, errNoFallback
	}
	sum, err := s.factors.Of(ctx, sess.Requester)
	if err != nil {
		return nil, err
	}
	v := &factorView{Frame: web.Frame{Title: web.T(web.Lang(ctx), "factor_title"), Autofocus: "code"}, Session: sessionID,
		WebAuthn: sum.WebAuthn() && s.factors.WebAuthnAvailable()}
	if failure != nil {
		s.pageFailure(ctx, &v.Frame, failure, map[string]string{roleCode: "code"})
	}
	b, err := s.site.Render(ctx, "fallback-factor", v)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	return bytes.NewBuffer(b), nil
}

func (s *Server) fallbackRetry(ctx context.Context, authType, errKey string) (api.AuthFallbackSubmitResponseObject, error) {
	page, err := s.fallbackStagePage(ctx, authType, errKey)
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
	id := strings.ToLower(op.OperationID)
	if id == "upstreamcallback" {
		// The callback of a UIA stage's sign-in ends on the fallback's
		// completion page.
		return web.Policy{Scripts: []string{fallbackDoneScript}}
	}
	if !strings.HasPrefix(id, "authfallback") {
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
