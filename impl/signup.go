package impl

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"registrar/api"
	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/canonical"
	"registrar/impl/matrix"
	"registrar/impl/oauth"
	"registrar/impl/secrets"
	"registrar/impl/threepid"
	"registrar/impl/uia"
	"registrar/impl/web"
)

// The sign-up page is a client of /register's registration policy: it
// drives the same function (s.register) through the same UIA session,
// one stage at a time, as a Matrix client would; nothing it checks is its
// own but that the two passwords typed match.

var _ = web.Register(`
{{define "signup"}}{{template "head" .}}
{{with .Client}}{{template "_client" .}}{{end}}
<p class="muted" id="intro">{{if .Client}}{{t "signup_intro_client" "Client" .Client.Name "Server" .Site.ServerName}}{{else}}{{t "signup_intro" "Server" .Site.ServerName}}{{end}}</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="grant" value="{{.Grant}}">
<input type="hidden" name="step" value="form">
<div class="field"><label for="username">{{t "field_username"}}</label>
{{template "_input" (.Input "username" "text" "username" .Username "username-hint")}}
<p class="hint" id="username-hint">{{t "signup_username_hint" "Server" .Site.ServerName}}</p>{{template "_error" (.ErrorOf "username")}}</div>
<div class="field"><label for="password">{{t "field_password"}}</label>
{{template "_input" (.Input "password" "password" "new-password" "" "password-hint")}}
<p class="hint" id="password-hint">{{.PasswordRules}}</p>{{template "_error" (.ErrorOf "password")}}</div>
<div class="field"><label for="password_confirm">{{t "field_password_again"}}</label>
{{template "_input" (.Input "password_confirm" "password" "new-password" "")}}{{template "_error" (.ErrorOf "password_confirm")}}</div>
{{if .NeedToken}}<div class="field"><label for="registration_token">{{t "field_registration_token"}}</label>
{{template "_input" (.Input "registration_token" "text" "off" .Token "registration_token-hint")}}
<p class="hint" id="registration_token-hint">{{t "signup_token_hint"}}</p>{{template "_error" (.ErrorOf "registration_token")}}</div>{{end}}
{{if .NeedEmail}}<div class="field"><label for="email">{{t "field_email"}}</label>
{{template "_input" (.Input "email" "email" "email" .Email "email-hint")}}
<p class="hint" id="email-hint">{{t "signup_email_hint"}}</p>{{template "_error" (.ErrorOf "email")}}</div>{{end}}
{{if .Terms}}<fieldset><legend>{{t "signup_terms"}}</legend><ul>{{range .Terms}}<li><a href="{{.URL}}" rel="noopener noreferrer">{{.Name}}</a> ({{t "terms_version" "Version" .Version}})</li>{{end}}</ul>
<label class="checkbox"><input type="checkbox" name="accept_terms" id="accept_terms" value="yes" required{{if .Invalid "accept_terms"}} aria-invalid="true" aria-describedby="accept_terms-error"{{end}}{{if .Focus "accept_terms"}} autofocus{{end}}> {{t "terms_agree"}}</label>
{{template "_error" (.ErrorOf "accept_terms")}}</fieldset>{{end}}
{{if .Captcha}}<div class="{{.SitekeyClass}}" data-sitekey="{{.PublicKey}}"></div>{{end}}
<div class="actions"><button type="submit" id="submit">{{t "signup_submit"}}</button></div>
</form>{{template "_providers" .Providers}}
<p class="muted">{{t "signup_have_account"}} <a href="{{.SignIn}}" id="signin">{{t "signin_title"}}</a></p>{{template "foot" .}}{{end}}

{{define "signup-code"}}{{template "head" .}}
<p id="sent">{{t "signup_code_sent" "Address" .Email}}</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="grant" value="{{.Grant}}">
<input type="hidden" name="step" value="code"><input type="hidden" name="session" value="{{.Session}}">
<input type="hidden" name="sid" value="{{.Sid}}"><input type="hidden" name="client_secret" value="{{.ClientSecret}}">
<input type="hidden" name="email" value="{{.Email}}">
<div class="field"><label for="code">{{t "field_code"}}</label>
{{template "_input" (.Input "code" "text" "one-time-code" "")}}{{template "_error" (.ErrorOf "code")}}</div>
<div class="actions"><button type="submit" id="submit">{{t "continue"}}</button></div>
</form>{{template "foot" .}}{{end}}
`)

// signUpView is what the sign-up templates show.
type signUpView struct {
	web.Frame
	Action, CSRF, Grant, SignIn   string
	Username, Token, Email        string
	PasswordRules                 string
	NeedToken, NeedEmail, Captcha bool
	SitekeyClass, PublicKey       string
	Terms                         []fallbackPolicy
	Session, Sid, ClientSecret    string
	// Client is the app the account is made for (prompt=create).
	Client *oauth.ClientView
	// Providers are the upstream identity providers' buttons.
	Providers []web.ProviderLink
}

// fields are the form's inputs by the roles the API's errors concern.
func (v *signUpView) fields() map[string]string {
	f := map[string]string{roleUsername: "username", rolePassword: "password"}
	if v.NeedToken {
		f[roleToken] = "registration_token"
	}
	if v.NeedEmail {
		f[roleEmail] = "email"
	}
	return f
}

// signUpStages are the stages the page can complete.
var signUpStages = []string{uia.TypeDummy, uia.TypeRegistrationToken, uia.TypeRecaptcha, uia.TypeTerms, uia.TypeEmail}

// signUpFlow is the /register flow the page completes: the first whose
// stages it can all do, preferring one without an email step.
func (s *Server) signUpFlow() ([]string, bool) {
	var chosen []string
	for _, f := range s.registrationFlows() {
		if !allIn(f, signUpStages) {
			continue
		}
		if !slices.Contains(f, uia.TypeEmail) {
			return f, true
		}
		if chosen == nil {
			chosen = f
		}
	}
	return chosen, chosen != nil
}

func allIn(stages, supported []string) bool {
	for _, st := range stages {
		if !slices.Contains(supported, st) {
			return false
		}
	}
	return true
}

// signUpForm is the sign-up page's form.
type signUpForm struct {
	step, grant, session, username, password, passwordConfirm, token string
	acceptTerms, captcha, email, sid, clientSecret, code, csrf       string
}

func (s *Server) signUpBase(ctx context.Context, b oauth.Browser, grant string) (*signUpView, []*http.Cookie) {
	token, set := s.oauth.CSRF(b)
	flow, _ := s.signUpFlow()
	lang := web.Lang(ctx)
	v := &signUpView{Frame: web.Frame{Title: web.T(lang, "signup_title"), Autofocus: "username", Here: oauth.PathSignUp},
		Action: oauth.PathSignUp, CSRF: token, SignIn: oauth.PathLogin,
		NeedToken: slices.Contains(flow, uia.TypeRegistrationToken), NeedEmail: slices.Contains(flow, uia.TypeEmail),
		Captcha: slices.Contains(flow, uia.TypeRecaptcha), PasswordRules: s.passwordRules(lang)}
	if grant != "" && s.oauth.PendingGrant(ctx, grant) {
		v.Grant = grant
		v.SignIn = oauth.PathLogin + "?next=" + url.QueryEscape(oauth.PathConsent+grant)
		v.Here = oauth.PathSignUp + "?grant=" + url.QueryEscape(grant)
		v.Client = s.oauth.GrantClient(ctx, grant)
	}
	next := ""
	if v.Grant != "" {
		next = oauth.PathConsent + v.Grant
	}
	v.Providers = s.providerLinks(next)
	if v.Captcha {
		c := s.cfg.Captcha
		v.SitekeyClass, v.PublicKey, v.ScriptURLs = c.RecaptchaSitekeyClass, c.RecaptchaPublicKey, []string{c.RecaptchaAPIJSURL}
	}
	if slices.Contains(flow, uia.TypeTerms) {
		v.Terms = s.termsPolicies()
	}
	return v, oauth.Cookies(set)
}

// passwordRules says the password policy in words, in lang.
func (s *Server) passwordRules(lang string) string {
	p := s.cfg.PasswordConfig.Policy
	if !p.Enabled {
		return web.T(lang, "password_rules_none")
	}
	var rules []string
	if p.MinimumLength > 0 {
		rules = append(rules, web.T(lang, "password_rule_length", "Count", p.MinimumLength))
	}
	for _, r := range []struct {
		on bool
		id string
	}{{p.RequireDigit, "password_rule_digit"}, {p.RequireSymbol, "password_rule_symbol"}, {p.RequireLowercase, "password_rule_lowercase"},
		{p.RequireUppercase, "password_rule_uppercase"}} {
		if r.on {
			rules = append(rules, web.T(lang, r.id))
		}
	}
	if len(rules) == 0 {
		return web.T(lang, "password_rules_none")
	}
	return web.T(lang, "password_rules", "Rules", strings.Join(rules, ", "))
}

func (s *Server) renderSignUp(ctx context.Context, status int, name string, v *signUpView, cookies []*http.Cookie) oauth.Page {
	p := s.renderPage(ctx, status, name, v, cookies)
	p.Policy = s.signUpPolicy(v)
	return p
}

// signUpPolicy allows the captcha provider's scripts and frames, and the
// client's redirect origin as where the form may end.
func (s *Server) signUpPolicy(v *signUpView) web.Policy {
	var p web.Policy
	if v.Captcha {
		p.ScriptOrigins, p.FrameOrigins = captchaOrigins(s.cfg.Captcha.RecaptchaAPIJSURL)
	}
	return p
}

// SignUpPage is GET /_registrar/signup (prompt=create, Matrix v1.15).
func (s *Server) SignUpPage(ctx context.Context, req api.SignUpPageRequestObject) (api.SignUpPageResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	if page, closed := s.signUpClosed(ctx); closed {
		return pageResponse{page}, nil
	}
	v, cookies := s.signUpBase(ctx, browser(ctx), deref(req.Params.Grant))
	v.Token = deref(req.Params.RegistrationToken)
	p := s.renderSignUp(ctx, http.StatusOK, "signup", v, cookies)
	p.Policy.FormAction = s.oauth.GrantFormAction(ctx, v.Grant)
	return pageResponse{p}, nil
}

// signUpClosed is the page of a server that takes no sign-ups here.
func (s *Server) signUpClosed(ctx context.Context) (oauth.Page, bool) {
	if !s.cfg.EnableRegistration {
		return s.message(ctx, http.StatusForbidden, "signup_closed_title", "signup_closed_text", oauth.PathLogin), true
	}
	if _, ok := s.signUpFlow(); !ok {
		return s.message(ctx, http.StatusForbidden, "signup_needs_app_title", "signup_needs_app_text", oauth.PathLogin), true
	}
	return oauth.Page{}, false
}

// SignUpSubmit is POST /_registrar/signup: the form (username, password
// and the flow's stages), then the emailed code when the flow has one.
func (s *Server) SignUpSubmit(ctx context.Context, req api.SignUpSubmitRequestObject) (api.SignUpSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := browser(ctx)
	body := req.Body
	f := signUpForm{step: deref(body.Step), grant: deref(body.Grant), session: deref(body.Session), username: deref(body.Username),
		password: deref(body.Password), passwordConfirm: deref(body.PasswordConfirm), token: deref(body.RegistrationToken),
		acceptTerms: deref(body.AcceptTerms), email: deref(body.Email), sid: deref(body.Sid), clientSecret: deref(body.ClientSecret),
		code: deref(body.Code), csrf: deref(body.Csrf),
		captcha: firstNonEmpty(body.GRecaptchaResponse, body.HCaptchaResponse, body.CfTurnstileResponse)}
	if !s.oauth.CheckCSRF(b, f.csrf) {
		return pageResponse{s.oauth.CSRFFailed(ctx)}, nil
	}
	if page, closed := s.signUpClosed(ctx); closed {
		return pageResponse{page}, nil
	}
	v, cookies := s.signUpBase(ctx, b, f.grant)
	v.Username, v.Token, v.Email = f.username, f.token, f.email
	var done registered
	var err error
	if f.step == "code" {
		done, err = s.signUpCode(ctx, f, v)
	} else {
		done, err = s.signUpForm(ctx, f, v)
	}
	var next *signUpNext
	if errors.As(err, &next) {
		return pageResponse{s.renderSignUp(ctx, http.StatusOK, next.template, v, cookies)}, nil
	}
	if err != nil {
		template, fields := "signup", v.fields()
		if f.step == "code" && v.Session != "" {
			template, fields = "signup-code", map[string]string{roleCode: "code"}
		}
		s.pageFailure(ctx, &v.Frame, err, fields)
		p := s.renderSignUp(ctx, pageStatus(err), template, v, cookies)
		p.Policy.FormAction = s.oauth.GrantFormAction(ctx, v.Grant)
		return pageResponse{p}, nil
	}
	return pageResponse{s.signedUp(ctx, done, v.Grant)}, nil
}

// signUpNext is the page's next step (not an error): render template.
type signUpNext struct{ template string }

func (n *signUpNext) Error() string { return "sign-up continues at " + n.template }

// signUpForm runs the form step: registration's own checks, then each
// stage of the flow the form answered, then the email code or the end.
func (s *Server) signUpForm(ctx context.Context, f signUpForm, v *signUpView) (registered, error) {
	if err := s.accounts.CheckRegistration(addressKey(ctx)); err != nil {
		return registered{}, err
	}
	if f.password != f.passwordConfirm {
		return registered{}, fieldError("password_confirm", "error_passwords_differ")
	}
	inhibit := true
	params, err := s.registerParamsOf(ctx, &api.RegisterJSONRequestBody{Username: &f.username, Password: &f.password,
		InhibitLogin: &inhibit})
	if err != nil {
		return registered{}, err
	}
	flow, _ := s.signUpFlow()
	// The first request starts the session (and checks the username and
	// password, as /register does).
	session, done, err := s.signUpStep(ctx, params, nil, "")
	if err != nil || done != nil {
		return deref2(done), err
	}
	for _, stage := range flow {
		var auth *api.AuthData
		switch stage {
		case uia.TypeRegistrationToken:
			auth = &api.AuthData{Token: &f.token}
		case uia.TypeRecaptcha:
			if f.captcha == "" {
				return registered{}, &formError{status: http.StatusBadRequest, code: matrix.CodeCaptchaNeeded, key: "error_captcha_needed"}
			}
			auth = &api.AuthData{Response: &f.captcha}
		case uia.TypeTerms:
			if f.acceptTerms == "" {
				return registered{}, fieldError("accept_terms", "error_accept_terms")
			}
			auth = &api.AuthData{}
		default:
			continue // dummy last; email by code
		}
		auth.Type = &stage
		if session, done, err = s.signUpStep(ctx, registerParams{}, auth, session); err != nil || done != nil {
			return deref2(done), stageRefusal(stage, err)
		}
	}
	if slices.Contains(flow, uia.TypeEmail) {
		return registered{}, s.sendSignUpCode(ctx, f, session, v)
	}
	dummy := uia.TypeDummy
	_, done, err = s.signUpStep(ctx, registerParams{}, &api.AuthData{Type: &dummy}, session)
	if err == nil && done == nil {
		err = matrix.Internal(errors.New("sign-up flow incomplete after its last stage"))
	}
	return deref2(done), err
}

// stageRefusal is a stage's refusal as the page says it: the stages share
// M_UNAUTHORIZED, and the page knows which stage it submitted.
func stageRefusal(stage string, err error) error {
	merr, ok := matrix.As(err)
	if !ok || merr.Code != matrix.CodeUnauthorized {
		return err
	}
	switch stage {
	case uia.TypeRegistrationToken:
		return &formError{status: merr.Status, code: merr.Code, field: "registration_token", key: "error_registration_token"}
	case uia.TypeRecaptcha:
		return &formError{status: merr.Status, code: merr.Code, key: "error_captcha_invalid"}
	}
	return err
}

func deref2(r *registered) registered {
	if r == nil {
		return registered{}
	}
	return *r
}

// signUpStep submits one stage (or none) of the session to the
// registration policy: the account when the flow completes, else the
// session to continue; a stage's failure is its error.
func (s *Server) signUpStep(ctx context.Context, params registerParams, auth *api.AuthData, session string) (string, *registered, error) {
	if auth != nil && session != "" {
		auth.Session = &session
	}
	done, err := s.register(ctx, registration{params: params, auth: auth, source: accounts.SourceSignUp})
	var challenge *matrix.Challenge
	if !errors.As(err, &challenge) {
		if err != nil {
			return "", nil, err
		}
		return session, &done, nil
	}
	body, _ := challenge.Body.(api.AuthResponse)
	if body.Errcode != nil && *body.Errcode != "" {
		return "", nil, matrix.BadRequest(*body.Errcode, deref(body.Error))
	}
	if body.Session == nil {
		return "", nil, matrix.Internal(errors.New("a challenge without a session"))
	}
	return *body.Session, nil, nil
}

// sendSignUpCode sends the email code (the same requestToken as the API,
// with a short code) and moves the page to the code step.
func (s *Server) sendSignUpCode(ctx context.Context, f signUpForm, session string, v *signUpView) error {
	secret := secrets.RandomString(24)
	address := canonical.Email(f.email)
	resp, err := s.threepids.RequestToken(ctx, threepid.Request{Medium: db.MediumEmail, Address: address, ClientSecret: secret,
		SendAttempt: 1, Purpose: threepid.PurposeRegistration, ClientKey: addressKey(ctx), ShortCode: true})
	if merr, ok := matrix.As(err); ok && merr.Code == matrix.CodeInvalidParam {
		return fieldError("email", "error_address_invalid")
	}
	if err != nil {
		return err
	}
	v.Title, v.Email, v.Session, v.Sid, v.ClientSecret = web.T(web.Lang(ctx), "signup_code_title"), address, session, resp.Sid, secret
	v.Autofocus = "code"
	return &signUpNext{template: "signup-code"}
}

// signUpCode validates the emailed code, then completes the email stage.
func (s *Server) signUpCode(ctx context.Context, f signUpForm, v *signUpView) (registered, error) {
	v.Title, v.Session, v.Sid, v.ClientSecret = web.T(web.Lang(ctx), "signup_code_title"), f.session, f.sid, f.clientSecret
	v.Autofocus = "code"
	limiter := s.threepids.Limiter()
	if err := limiter.Check(addressKey(ctx), s.now()); err != nil {
		return registered{}, err
	}
	if _, err := s.threepids.Submit(ctx, db.MediumEmail, f.sid, f.clientSecret, threepid.NormalizeCode(f.code)); err != nil {
		_ = limiter.Take(addressKey(ctx), s.now())
		return registered{}, err
	}
	stage := uia.TypeEmail
	_, done, err := s.signUpStep(ctx, registerParams{}, &api.AuthData{Type: &stage,
		ThreepidCreds: &api.ThreepidCredentials{Sid: &f.sid, ClientSecret: &f.clientSecret}}, f.session)
	if err != nil || done != nil {
		return deref2(done), err
	}
	dummy := uia.TypeDummy
	flow, _ := s.signUpFlow()
	if !slices.Contains(flow, dummy) {
		return registered{}, matrix.Internal(errors.New("sign-up flow incomplete after the email stage"))
	}
	_, done, err = s.signUpStep(ctx, registerParams{}, &api.AuthData{Type: &dummy}, f.session)
	return deref2(done), err
}

// signedUp signs the new account in and goes on to the authorisation it
// was made for, or the account page; an account awaiting approval gets a
// page saying so.
func (s *Server) signedUp(ctx context.Context, done registered, grant string) oauth.Page {
	if done.AwaitingApproval {
		return s.message(ctx, http.StatusOK, "signup_awaiting_title", "signup_awaiting_text", "", "User", done.UserID)
	}
	cookie, err := s.oauth.StartSession(ctx, browser(ctx), done.UserID)
	if err != nil {
		s.log.ErrorContext(ctx, "starting a browser session failed", "error", err)
		return s.message(ctx, http.StatusOK, "signup_created_title", "signup_created_text", oauth.PathLogin, "User", done.UserID)
	}
	if grant != "" {
		return oauth.Redirect(oauth.PathConsent+grant, cookie)
	}
	return oauth.Redirect(oauth.PathAccount, cookie)
}

// termsPolicies lists the configured terms, for a page, by name.
func (s *Server) termsPolicies() []fallbackPolicy {
	var policies []fallbackPolicy
	for _, p := range s.cfg.RegistrationTerms {
		doc, ok := p.Translations["en"]
		if !ok {
			for _, d := range p.Translations {
				doc = d
				break
			}
		}
		policies = append(policies, fallbackPolicy{Name: doc.Name, URL: doc.URL, Version: p.Version})
	}
	sort.Slice(policies, func(i, j int) bool { return policies[i].Name < policies[j].Name })
	return policies
}
