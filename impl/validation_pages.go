package impl

import (
	"context"
	"html/template"
	"strings"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/threepid"
	"registrar/impl/web"
)

// validationTemplates are the pages of the emailed link: the GET shows a
// button that POSTs the token, so link pre-fetchers and scanners that
// follow links never consume it.
var validationTemplates = template.Must(template.New("").Parse(`
{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>{{.Style}}</style>
</head><body>{{end}}
{{define "confirm"}}{{template "head" .}}
<h1>Confirm your email address</h1>
<p>Press the button to confirm that this email address belongs to you.</p>
<form method="post" action="">
<input type="hidden" name="sid" value="{{.Sid}}">
<input type="hidden" name="client_secret" value="{{.ClientSecret}}">
<input type="hidden" name="token" value="{{.Token}}">
<p><button id="confirm" type="submit">Confirm</button></p>
</form></body></html>{{end}}
{{define "result"}}{{template "head" .}}
{{if .Error}}<h1>Validation failed</h1><p class="error" id="result">{{.Error}}</p>
{{else}}<h1>Email address confirmed</h1><p id="result">Your email address has been validated. Return to your application to continue.</p>{{end}}
</body></html>{{end}}
`))

type validationPage struct {
	Style                    template.CSS
	Title, Error             string
	Sid, ClientSecret, Token string
}

func renderValidation(name string, p validationPage) (*strings.Builder, error) {
	p.Style = web.StyleCSS
	var b strings.Builder
	if err := validationTemplates.ExecuteTemplate(&b, name, p); err != nil {
		return nil, matrix.Internal(err)
	}
	return &b, nil
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
			return api.EmailValidationPage200TexthtmlResponse{Body: strings.NewReader(page.String()), ContentLength: int64(page.Len())}, nil
		}
	}
	page, err := renderValidation("confirm", validationPage{Title: "Confirm your email address",
		Sid: p.Sid, ClientSecret: p.ClientSecret, Token: p.Token})
	if err != nil {
		return nil, err
	}
	return api.EmailValidationPage200TexthtmlResponse{Body: strings.NewReader(page.String()), ContentLength: int64(page.Len())}, nil
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
	return api.EmailValidationSubmit200TexthtmlResponse{Body: strings.NewReader(page.String()), ContentLength: int64(page.Len())}, nil
}

// validateEmail submits an emailed token: the session's next_link to
// redirect to, or the result page.
func (s *Server) validateEmail(ctx context.Context, sid, clientSecret, token string) (string, *strings.Builder, error) {
	sess, err := s.threepids.Submit(ctx, db.MediumEmail, sid, clientSecret, token)
	msg := ""
	switch {
	case isTokenIncorrect(err):
		msg = err.(*matrix.Error).Message
	case err != nil:
		return "", nil, err
	case sess.NextLink != "" && web.SafeRedirect(sess.NextLink):
		return sess.NextLink, nil, nil
	}
	page, err := renderValidation("result", validationPage{Title: "Email validation", Error: msg})
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
