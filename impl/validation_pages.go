package impl

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/threepid"
	"registrar/impl/web"
)

// The pages of the emailed link: the GET shows a button that POSTs the
// token, so link pre-fetchers and scanners that follow links never
// consume it.
var _ = web.Register(`
{{define "email-confirm"}}{{template "head" .}}
<p id="explain">{{t "email_confirm_text"}}</p>
<form method="post" action="">
<input type="hidden" name="sid" value="{{.Sid}}"><input type="hidden" name="client_secret" value="{{.ClientSecret}}">
<input type="hidden" name="token" value="{{.Token}}">
<div class="actions"><button id="confirm" type="submit">{{t "email_confirm_submit"}}</button></div>
</form>{{template "foot" .}}{{end}}

{{define "email-result"}}{{template "head" .}}
{{if .Failed}}<p class="field-error" id="result">{{.Result}}</p>{{else}}<p id="result">{{t "email_confirmed_text"}}</p>{{end}}{{template "foot" .}}{{end}}
`)

type validationView struct {
	web.Frame
	Sid, ClientSecret, Token string
	Failed                   bool
	Result                   string
}

func (s *Server) renderValidation(ctx context.Context, name string, v *validationView) (*bytes.Reader, error) {
	b, err := s.site.Render(ctx, name, v)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	return bytes.NewReader(b), nil
}

// EmailValidationPage is GET /_matrix/client/unstable/registration/email/submit_token:
// the page the emailed link opens, which changes nothing; with
// email.validate_on_get, registration and add-3PID links validate here.
func (s *Server) EmailValidationPage(ctx context.Context, req api.EmailValidationPageRequestObject) (api.EmailValidationPageResponseObject, error) {
	p := req.Params
	if s.cfg.Email != nil && s.cfg.Email.ValidateOnGet {
		if purpose := s.threepids.Purpose(ctx, p.Sid); purpose == threepid.PurposeRegistration || purpose == threepid.PurposeAddThreepid {
			next, page, err := s.validateEmail(ctx, p.Sid, p.ClientSecret, p.Token)
			switch {
			case err != nil:
				return nil, err
			case next != "":
				return api.EmailValidationPage302Response{Headers: api.EmailValidationPage302ResponseHeaders{Location: &next}}, nil
			}
			return api.EmailValidationPage200TexthtmlResponse{Body: page, ContentLength: page.Size()}, nil
		}
	}
	page, err := s.renderValidation(ctx, "email-confirm", &validationView{Frame: web.Frame{Title: web.T(web.Lang(ctx), "email_confirm_title")},
		Sid: p.Sid, ClientSecret: p.ClientSecret, Token: p.Token})
	if err != nil {
		return nil, err
	}
	return api.EmailValidationPage200TexthtmlResponse{Body: page, ContentLength: page.Size()}, nil
}

// EmailValidationSubmit is POST /_matrix/client/unstable/registration/email/submit_token:
// validates the session, then redirects to its next_link or shows the result.
func (s *Server) EmailValidationSubmit(ctx context.Context, req api.EmailValidationSubmitRequestObject) (api.EmailValidationSubmitResponseObject, error) {
	b := req.Body
	next, page, err := s.validateEmail(ctx, b.Sid, b.ClientSecret, b.Token)
	switch {
	case err != nil:
		return nil, err
	case next != "":
		return api.EmailValidationSubmit302Response{Headers: api.EmailValidationSubmit302ResponseHeaders{Location: &next}}, nil
	}
	return api.EmailValidationSubmit200TexthtmlResponse{Body: page, ContentLength: page.Size()}, nil
}

// validateEmail submits an emailed token: the session's next_link to
// redirect to, or the result page.
func (s *Server) validateEmail(ctx context.Context, sid, clientSecret, token string) (string, *bytes.Reader, error) {
	sess, err := s.threepids.Submit(ctx, db.MediumEmail, sid, clientSecret, token)
	lang := web.Lang(ctx)
	v := &validationView{Frame: web.Frame{Title: web.T(lang, "email_confirmed_title")}}
	switch {
	case isTokenIncorrect(err):
		text := "email_failed_text"
		if errors.Is(err, threepid.ErrLinkUsed) {
			text = "email_used_text"
		}
		v.Title, v.Failed, v.Result = web.T(lang, "email_failed_title"), true, web.T(lang, text)
	case err != nil:
		return "", nil, err
	case sess.NextLink != "" && web.SafeRedirect(sess.NextLink):
		return sess.NextLink, nil, nil
	}
	page, err := s.renderValidation(ctx, "email-result", v)
	return "", page, err
}

// MsisdnValidationSubmit is POST /_matrix/client/unstable/add_threepid/msisdn/submit_token,
// the submit_url of phone number validation.
func (s *Server) MsisdnValidationSubmit(ctx context.Context, req api.MsisdnValidationSubmitRequestObject) (api.MsisdnValidationSubmitResponseObject, error) {
	b := req.Body
	if ok, handled, err := s.threepids.SubmitDelegated(ctx, b.Sid, b.ClientSecret, strings.TrimSpace(b.Token)); handled {
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, threepid.ErrBadLink
		}
		return api.MsisdnValidationSubmit200JSONResponse{Success: true}, nil
	}
	// A wrong, used or expired code is 400 M_TOKEN_INCORRECT (Matrix v1.18).
	if _, err := s.threepids.Submit(ctx, db.MediumMsisdn, b.Sid, b.ClientSecret, strings.TrimSpace(b.Token)); err != nil {
		return nil, err
	}
	return api.MsisdnValidationSubmit200JSONResponse{Success: true}, nil
}

// isTokenIncorrect tells a wrong, expired or used validation token.
func isTokenIncorrect(err error) bool {
	merr, ok := err.(*matrix.Error)
	return ok && merr.Code == matrix.CodeTokenIncorrect
}
