package impl

import (
	"bytes"
	"context"
	"errors"
	"net/http"

	"registrar/api"
	"registrar/impl/images"
	"registrar/impl/matrix"
	"registrar/impl/oauth"
	"registrar/impl/web"
)

// messageView is a one-paragraph page.
type messageView struct{ web.Frame }

// renderPage renders a registered template into a page.
func (s *Server) renderPage(ctx context.Context, status int, name string, v web.Framed, cookies []*http.Cookie) oauth.Page {
	html, err := s.site.Render(ctx, name, v)
	if err != nil {
		s.log.ErrorContext(ctx, "rendering a page failed", "page", name, "error", err)
		return oauth.Page{Status: http.StatusInternalServerError, HTML: []byte("Internal server error")}
	}
	return oauth.Page{Status: status, HTML: html, Cookies: cookies}
}

// message is a one-paragraph page: title and text are message IDs (text's
// placeholders from args), with a link to back when set.
func (s *Server) message(ctx context.Context, status int, title, text, back string, args ...any) oauth.Page {
	lang := web.Lang(ctx)
	v := &messageView{web.Frame{Title: web.T(lang, title), Message: web.T(lang, text, args...)}}
	if back != "" {
		v.BackURL, v.BackLabel = back, web.T(lang, "back")
	}
	return s.renderPage(ctx, status, "message", v, nil)
}

// errorPage is an error of a page operation as a page in the request's
// language (msg, in English, is logged, not shown: it may name internals).
func (s *Server) errorPage(ctx context.Context, status int, msg string) []byte {
	text := "error_request"
	switch {
	case status == http.StatusNotFound:
		text = "error_not_found"
	case status == http.StatusTooManyRequests:
		text = "error_too_many_attempts"
	case status >= 500:
		text = "error_internal"
	}
	if status < 500 {
		s.log.InfoContext(ctx, "a page request failed", "status", status, "reason", msg)
	}
	back := ""
	if s.oauth != nil {
		back = oauth.PathAccount
	}
	return s.message(ctx, status, "error_title", text, back).HTML
}

// assetResponse is a static asset or an image: cached by browsers (the
// pages' URLs carry the asset's version), never sniffed.
type assetResponse struct{ images.Image }

func (a assetResponse) write(w http.ResponseWriter) error {
	images.SetHeaders(w.Header(), a.Image)
	w.WriteHeader(http.StatusOK)
	_, err := bytes.NewReader(a.Body).WriteTo(w)
	return err
}

// VisitPageAssetResponse implements api.PageAssetResponseObject.
func (a assetResponse) VisitPageAssetResponse(w http.ResponseWriter) error { return a.write(w) }

// VisitClientLogoResponse implements api.ClientLogoResponseObject.
func (a assetResponse) VisitClientLogoResponse(w http.ResponseWriter) error { return a.write(w) }

// VisitAccountAvatarResponse implements api.AccountAvatarResponseObject.
func (a assetResponse) VisitAccountAvatarResponse(w http.ResponseWriter) error { return a.write(w) }

var errNoAsset = matrix.NotFound("No such file")

// PageAsset is GET /_registrar/static/{file}: the style sheet, the
// script, and the branding logo.
func (s *Server) PageAsset(ctx context.Context, req api.PageAssetRequestObject) (api.PageAssetResponseObject, error) {
	if req.File == "logo" && web.SafeRedirect(s.cfg.Branding.LogoURI) {
		img, err := s.images.Get(ctx, s.cfg.Branding.LogoURI)
		if err != nil {
			return nil, errNoAsset
		}
		return assetResponse{img}, nil
	}
	body, typ, ok := s.site.Asset(req.File)
	if !ok {
		return nil, errNoAsset
	}
	return assetResponse{images.Image{Body: body, ContentType: typ}}, nil
}

// ClientLogo is GET /_registrar/clients/{client_id}/logo: registrar's copy
// of a client's logo_uri (in the language asked, where it registered one).
func (s *Server) ClientLogo(ctx context.Context, req api.ClientLogoRequestObject) (api.ClientLogoResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	logo, err := s.oauth.ClientLogoURI(ctx, req.ClientId, deref(req.Params.Lang))
	if err != nil || logo == "" {
		return nil, matrix.NotFound("No logo")
	}
	img, err := s.images.Get(ctx, logo)
	if errors.Is(err, images.ErrUnavailable) {
		return nil, matrix.NotFound("The logo could not be fetched")
	}
	if err != nil {
		return nil, err
	}
	return assetResponse{img}, nil
}
