package impl

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
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

var signUpTemplates = web.Templates(`
{{define "signup"}}{{template "head" .}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="grant" value="{{.Grant}}">
<input type="hidden" name="step" value="form">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" autocapitalize="none"
 aria-describedby="username-hint" required autofocus>
<p class="hint" id="username-hint">Your user ID will be @<em>username</em>:{{.ServerName}}: lower-case letters, digits and . _ = - / + only.</p>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="new-password" aria-describedby="password-hint" required>
<p class="hint" id="password-hint">{{.PasswordRules}}</p>
<label for="password_confirm">Password again</label>
<input type="password" id="password_confirm" name="password_confirm" autocomplete="new-password" required>
{{if .NeedToken}}<label for="registration_token">Registration token</label>
<input type="text" id="registration_token" name="registration_token" value="{{.Token}}" autocomplete="off" required>{{end}}
{{if .NeedEmail}}<label for="email">Email address</label>
<input type="email" id="email" name="email" value="{{.Email}}" autocomplete="email" aria-describedby="email-hint" required>
<p class="hint" id="email-hint">We will send a code to this address.</p>{{end}}
{{if .Terms}}<fieldset><legend>Terms</legend><ul>{{range .Terms}}<li><a href="{{.URL}}" rel="noopener noreferrer">{{.Name}}</a> (version {{.Version}})</li>{{end}}</ul>
<label><input type="checkbox" name="accept_terms" id="accept_terms" value="yes" required> I have read and agree to these documents</label></fieldset>{{end}}
{{if .Captcha}}<div class="{{.SitekeyClass}}" data-sitekey="{{.PublicKey}}"></div>{{end}}
<p><button type="submit" id="submit">Create account</button></p>
</form>
<p>Have an account? <a href="{{.SignIn}}" id="signin">Sign in</a></p>{{template "foot"}}{{end}}

{{define "signup-code"}}{{template "head" .}}
<p>We sent a code to <strong id="address">{{.Email}}</strong>. Enter it here, or open the link in the email.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="grant" value="{{.Grant}}">
<input type="hidden" name="step" value="code"><input type="hidden" name="session" value="{{.Session}}">
<input type="hidden" name="sid" value="{{.Sid}}"><input type="hidden" name="client_secret" value="{{.ClientSecret}}">
<input type="hidden" name="email" value="{{.Email}}">
<label for="code">Code</label>
<input type="text" id="code" name="code" autocomplete="one-time-code" autocapitalize="characters" required autofocus>
<p><button type="submit" id="submit">Continue</button></p>
</form>{{template "foot"}}{{end}}
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

func (s *Server) signUpBase(ctx context.Context, b oauth.Browser, grant string) (signUpView, []*http.Cookie) {
	token, set := s.oauth.CSRF(b)
	flow, _ := s.signUpFlow()
	v := signUpView{Frame: web.Frame{Title: "Create an account", ServerName: s.cfg.ServerName, Style: web.StyleCSS},
		Action: oauth.PathSignUp, CSRF: token, SignIn: oauth.PathLogin,
		NeedToken: slices.Contains(flow, uia.TypeRegistrationToken), NeedEmail: slices.Contains(flow, uia.TypeEmail),
		Captcha: slices.Contains(flow, uia.TypeRecaptcha), PasswordRules: s.passwordRules()}
	if grant != "" && s.oauth.PendingGrant(ctx, grant) {
		v.Grant = grant
		v.SignIn = oauth.PathLogin + "?next=" + url.QueryEscape(oauth.PathConsent+grant)
	}
	if v.Captcha {
		c := s.cfg.Captcha
		v.SitekeyClass, v.PublicKey, v.ScriptURLs = c.RecaptchaSitekeyClass, c.RecaptchaPublicKey, []string{c.RecaptchaAPIJSURL}
	}
	if slices.Contains(flow, uia.TypeTerms) {
		v.Terms = s.termsPolicies()
	}
	return v, oauth.Cookies(set)
}

// passwordRules says the password policy in words.
func (s *Server) passwordRules() string {
	p := s.cfg.PasswordConfig.Policy
	if !p.Enabled {
		return "Choose a password you do not use elsewhere."
	}
	var rules []string
	if p.MinimumLength > 0 {
		rules = append(rules, "at least "+strconv.Itoa(p.MinimumLength)+" characters")
	}
	for _, r := range []struct {
		on   bool
		what string
	}{{p.RequireDigit, "a digit"}, {p.RequireSymbol, "a symbol"}, {p.RequireLowercase, "a lower-case letter"},
		{p.RequireUppercase, "an upper-case letter"}} {
		if r.on {
			rules = append(rules, r.what)
		}
	}
	if len(rules) == 0 {
		return "Choose a password you do not use elsewhere."
	}
	return "The password needs " + strings.Join(rules, ", ") + "."
}

func (s *Server) renderSignUp(status int, name string, v signUpView, cookies []*http.Cookie) oauth.Page {
	var buf bytes.Buffer
	if err := signUpTemplates.ExecuteTemplate(&buf, name, v); err != nil {
		s.log.Error("rendering the sign-up page failed", "error", err)
		return s.oauth.Message(http.StatusInternalServerError, "Something went wrong", "Something went wrong; try again.")
	}
	p := oauth.Page{Status: status, HTML: buf.Bytes(), Cookies: cookies}
	p.Policy = s.signUpPolicy(v)
	return p
}

// signUpPolicy allows the captcha provider's scripts and frames, and the
// client's redirect origin as where the form may end.
func (s *Server) signUpPolicy(v signUpView) web.Policy {
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
	if page, closed := s.signUpClosed(); closed {
		return pageResponse{page}, nil
	}
	v, cookies := s.signUpBase(ctx, browser(ctx), deref(req.Params.Grant))
	v.Token = deref(req.Params.RegistrationToken)
	p := s.renderSignUp(http.StatusOK, "signup", v, cookies)
	p.Policy.FormAction = s.oauth.GrantFormAction(ctx, v.Grant)
	return pageResponse{p}, nil
}

// signUpClosed is the page of a server that takes no sign-ups here.
func (s *Server) signUpClosed() (oauth.Page, bool) {
	if !s.cfg.EnableRegistration {
		return s.oauth.Message(http.StatusForbidden, "Registration is closed", "This server does not take new accounts."), true
	}
	if _, ok := s.signUpFlow(); !ok {
		return s.oauth.Message(http.StatusForbidden, "Registration needs an app",
			"Creating an account here needs a step this page cannot do; use a Matrix app."), true
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
		return pageResponse{s.oauth.CSRFFailed()}, nil
	}
	if page, closed := s.signUpClosed(); closed {
		return pageResponse{page}, nil
	}
	v, cookies := s.signUpBase(ctx, b, f.grant)
	v.Username, v.Token, v.Email = f.username, f.token, f.email
	var done registered
	var err error
	if f.step == "code" {
		done, err = s.signUpCode(ctx, f, &v)
	} else {
		done, err = s.signUpForm(ctx, f, &v)
	}
	var next *signUpNext
	if errors.As(err, &next) {
		return pageResponse{s.renderSignUp(http.StatusOK, next.template, v, cookies)}, nil
	}
	if err != nil {
		v.Error, v.ErrorCode = signUpMessage(err)
		template := "signup"
		if f.step == "code" && v.Session != "" {
			template = "signup-code"
		}
		p := s.renderSignUp(signUpStatus(err), template, v, cookies)
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
		return registered{}, matrix.BadRequest(matrix.CodeInvalidParam, "The two passwords are not the same.")
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
				return registered{}, matrix.BadRequest(matrix.CodeCaptchaNeeded, "Complete the captcha.")
			}
			auth = &api.AuthData{Response: &f.captcha}
		case uia.TypeTerms:
			if f.acceptTerms == "" {
				return registered{}, matrix.BadRequest(matrix.CodeInvalidParam, "Accept the terms to create an account.")
			}
			auth = &api.AuthData{}
		default:
			continue // dummy last; email by code
		}
		auth.Type = &stage
		if session, done, err = s.signUpStep(ctx, registerParams{}, auth, session); err != nil || done != nil {
			return deref2(done), err
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
	if err != nil {
		return err
	}
	v.Title, v.Email, v.Session, v.Sid, v.ClientSecret = "Check your email", address, session, resp.Sid, secret
	return &signUpNext{template: "signup-code"}
}

// signUpCode validates the emailed code, then completes the email stage.
func (s *Server) signUpCode(ctx context.Context, f signUpForm, v *signUpView) (registered, error) {
	v.Title, v.Session, v.Sid, v.ClientSecret = "Check your email", f.session, f.sid, f.clientSecret
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
		return s.oauth.Message(http.StatusOK, "Almost there",
			"Your account "+done.UserID+" was created and awaits a server administrator's approval. You can sign in once it is approved.")
	}
	cookie, err := s.oauth.StartSession(ctx, done.UserID)
	if err != nil {
		s.log.ErrorContext(ctx, "starting a browser session failed", "error", err)
		return s.oauth.Message(http.StatusOK, "Account created", "Your account "+done.UserID+" was created; sign in to continue.")
	}
	if grant != "" {
		return oauth.Redirect(oauth.PathConsent+grant, cookie)
	}
	return oauth.Redirect(oauth.PathAccount, cookie)
}

// signUpMessage is a refusal as the page says it, with its errcode.
func signUpMessage(err error) (string, string) {
	merr, ok := matrix.As(err)
	if !ok || merr.Status >= 500 {
		return "Something went wrong; try again.", ""
	}
	switch merr.Code {
	case matrix.CodeUserInUse:
		return "That username is taken; choose another.", merr.Code
	case matrix.CodeLimitExceeded:
		return "Too many attempts. Wait a little and try again.", merr.Code
	case matrix.CodeTokenIncorrect:
		return "That code is wrong or has expired.", merr.Code
	}
	return merr.Message, merr.Code
}

func signUpStatus(err error) int {
	if merr, ok := matrix.As(err); ok {
		return merr.Status
	}
	return http.StatusInternalServerError
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
