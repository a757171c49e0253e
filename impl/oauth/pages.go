package oauth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/metrics"
	"registrar/impl/secrets"
	"registrar/impl/uia"
	"registrar/impl/web"
)

// Cookie names.
const (
	sessionCookie = "registrar_session"
	csrfCookie    = "registrar_csrf"
)

// Page is a page to answer: HTML with a status, or a 303 redirect; with
// the cookies to set and its Content-Security-Policy (whose FormAction
// names where a form of the page may end up after redirects, the
// client's redirect URI).
type Page struct {
	Status   int
	HTML     []byte
	Location string
	Cookies  []*http.Cookie
	Policy   web.Policy
}

// Browser is what a page request brings: its cookies and the rate-limit
// key of its address.
type Browser struct {
	Cookies   []*http.Cookie
	ClientKey string
}

func (b Browser) cookie(name string) string {
	for _, c := range b.Cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

var pageTemplates = web.Templates(`
{{define "signin"}}{{template "head" .}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="next" value="{{.Next}}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" autocapitalize="none" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<p><button type="submit" id="submit">Sign in</button></p>
</form>{{if .SignUp}}<p>New here? <a href="{{.SignUp}}" id="signup">Create an account</a></p>{{end}}{{template "foot"}}{{end}}

{{define "consent"}}{{template "head" .}}
{{if .Remembered}}<p id="confirm">Continue as <strong id="user">{{.User}}</strong> to <strong id="client">{{.ClientName}}</strong> (<a href="{{.ClientURI}}" rel="noopener noreferrer">{{.ClientHost}}</a>)?</p>
<p>This signs in a new session, <strong id="device">{{.DeviceID}}</strong>, with the access you allowed this app before.</p>
{{else}}<p><strong id="client">{{.ClientName}}</strong> (<a href="{{.ClientURI}}" rel="noopener noreferrer">{{.ClientHost}}</a>) wants to:</p>
<ul id="scopes">{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
{{if or .TOS .Policy}}<p class="hint">Read its {{if .TOS}}<a href="{{.TOS}}" rel="noopener noreferrer">terms of service</a>{{end}}{{if and .TOS .Policy}} and {{end}}{{if .Policy}}<a href="{{.Policy}}" rel="noopener noreferrer">privacy policy</a>{{end}}.</p>{{end}}
<p>You are signed in as <strong id="user">{{.User}}</strong>.</p>{{end}}
<form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<p><button type="submit" name="action" value="allow" id="allow">{{if .Remembered}}Continue{{else}}Allow{{end}}</button>
<button type="submit" name="action" value="deny" id="deny">{{if .Remembered}}Cancel{{else}}Deny{{end}}</button></p></form>
<form method="post" action="{{.Logout}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<p class="hint">Not you? <button type="submit" id="signout">Sign out</button></p></form>{{template "foot"}}{{end}}

{{define "device"}}{{template "head" .}}
<p>Enter the code shown on the device you are signing in to.</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="user_code">Code</label>
<input type="text" id="user_code" name="user_code" value="{{.UserCode}}" autocomplete="off" autocapitalize="characters" required autofocus>
<p><button type="submit" id="submit">Continue</button></p></form>{{template "foot"}}{{end}}

`)

// view is what the templates render.
type view struct {
	web.Frame
	Action, CSRF, Next, Logout, SignUp string
	Username, User, UserCode           string
	ClientName, ClientURI              string
	ClientHost, TOS, Policy            string
	Scopes                             []string
	// Remembered: the user allowed this client the scope before; the page
	// only confirms the new session (DeviceID).
	Remembered bool
	DeviceID   string
}

func (s *Service) render(status int, name string, v view, cookies ...*http.Cookie) Page {
	v.Style, v.ServerName = web.StyleCSS, s.cfg.ServerName
	v.Logout = PathLogout
	if name == "signin" && s.cfg.EnableRegistration {
		v.SignUp = PathSignUp
		if grant := grantOfNext(v.Next); grant != "" {
			v.SignUp += "?grant=" + url.QueryEscape(grant)
		}
	}
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, name, v); err != nil {
		s.log.Error("rendering a page failed", "page", name, "error", err)
		return Page{Status: http.StatusInternalServerError, HTML: []byte("Internal server error")}
	}
	return Page{Status: status, HTML: buf.Bytes(), Cookies: cookies}
}

func (s *Service) message(status int, title, msg string) Page {
	return s.render(status, "message", view{Frame: web.Frame{Title: title, Message: msg}})
}

func redirect(location string, cookies ...*http.Cookie) Page {
	return Page{Status: http.StatusSeeOther, Location: location, Cookies: cookies}
}

// csrf returns the form token of the browser's CSRF cookie, making the
// cookie (returned to set) when there is none.
func (s *Service) csrf(b Browser) (string, *http.Cookie) {
	value := b.cookie(csrfCookie)
	var set *http.Cookie
	if value == "" {
		value = secrets.RandomString(32)
		set = s.cookie(csrfCookie, value, 0)
	}
	return s.csrfToken(value), set
}

func (s *Service) csrfToken(cookie string) string {
	mac := hmac.New(sha256.New, s.secret)
	mac.Write([]byte("registrar csrf\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// checkCSRF accepts a form whose token matches the browser's cookie.
func (s *Service) checkCSRF(b Browser, token string) bool {
	cookie := b.cookie(csrfCookie)
	return cookie != "" && token != "" && hmac.Equal([]byte(s.csrfToken(cookie)), []byte(token))
}

func (s *Service) csrfFailed() Page {
	return s.message(http.StatusForbidden, "Please try again",
		"This form has expired or did not come from this site. Go back, reload the page and try again.")
}

// cookie makes one of the pages' cookies: HttpOnly, SameSite=Lax, Secure
// over https; maxAge 0 is a browser-session cookie, negative deletes.
func (s *Service) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: CookiePath, HttpOnly: true, Secure: s.secureCookies(),
		SameSite: http.SameSiteLaxMode}
	switch {
	case maxAge > 0:
		c.MaxAge = int(maxAge.Seconds())
	case maxAge < 0:
		c.MaxAge = -1
	}
	return c
}

// signedIn returns the account of the browser's session, if it is one
// that may still use the server.
func (s *Service) signedIn(ctx context.Context, b Browser) (db.Account, bool) {
	token := b.cookie(sessionCookie)
	if token == "" {
		return db.Account{}, false
	}
	userID, err := s.store.BrowserSession(ctx, secrets.HashToken(token))
	if err != nil {
		return db.Account{}, false
	}
	acct, err := s.store.AccountByUserID(ctx, userID)
	if err != nil || acct.Deactivated() || acct.Locked || acct.ApprovalPending {
		return db.Account{}, false
	}
	return acct, true
}

// localNext is a page of this server to continue to after signing in,
// or "" (no open redirects: only registrar's own paths).
func localNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, CookiePath) || strings.HasPrefix(next, "//") ||
		strings.Contains(next, "\\") {
		return ""
	}
	return u.RequestURI()
}

// SignInPage is the sign-in form, or, signed in, who is.
func (s *Service) SignInPage(ctx context.Context, b Browser, next string) Page {
	token, set := s.csrf(b)
	if _, ok := s.signedIn(ctx, b); ok {
		if n := localNext(next); n != "" {
			return redirect(n, nonNilCookies(set)...)
		}
		return redirect(PathAccount, nonNilCookies(set)...)
	}
	p := s.render(http.StatusOK, "signin", view{Frame: web.Frame{Title: "Sign in"}, Action: PathLogin, CSRF: token, Next: localNext(next)},
		nonNilCookies(set)...)
	p.Policy.FormAction = s.nextFormAction(ctx, next)
	return p
}

// nextFormAction: a sign-in that continues to a consent may end, after
// redirects, at the client's redirect URI, which the page's form-action
// must allow.
func (s *Service) nextFormAction(ctx context.Context, next string) []string {
	id, ok := strings.CutPrefix(localNext(next), PathConsent)
	if !ok {
		return nil
	}
	g, err := s.store.OAuthGrant(ctx, id)
	if err != nil || g.RedirectURI == "" {
		return nil
	}
	return []string{formSource(g.RedirectURI)}
}

func nonNilCookies(cs ...*http.Cookie) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range cs {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// SignInForm is the sign-in page's form.
type SignInForm struct{ Username, Password, CSRF, Next string }

// SignIn checks the credentials with /login's rules (rate limits,
// lockout, approval, deactivation) and starts a browser session.
func (s *Service) SignIn(ctx context.Context, b Browser, f SignInForm) Page {
	if !s.checkCSRF(b, f.CSRF) {
		return s.csrfFailed()
	}
	outcome := metrics.Success
	defer func() { s.metrics.LoginOutcome("oauth", outcome) }()
	token, _ := s.csrf(b)
	retry := func(status int, msg string) Page {
		p := s.render(status, "signin", view{Frame: web.Frame{Title: "Sign in", Error: msg}, Action: PathLogin, CSRF: token, Next: localNext(f.Next), Username: f.Username})
		p.Policy.FormAction = s.nextFormAction(ctx, f.Next)
		return p
	}
	if err := s.accounts.LoginLimits(b.ClientKey); err != nil {
		outcome = matrix.CodeLimitExceeded
		return retry(http.StatusTooManyRequests, "Too many attempts. Wait a little and try again.")
	}
	acct, err := s.accounts.CheckCredentials(ctx, strings.TrimSpace(f.Username), f.Password, "")
	if err != nil {
		outcome = metrics.OutcomeOf(err)
		return retry(signInStatus(err), signInMessage(err))
	}
	if err := s.accounts.SuccessfulLoginLimit(acct.UserID); err != nil {
		outcome = matrix.CodeLimitExceeded
		return retry(http.StatusTooManyRequests, "Too many sign-ins to this account. Wait a little and try again.")
	}
	switch {
	case acct.ApprovalPending:
		outcome = matrix.CodeUserAwaitingApproval
		return retry(http.StatusForbidden, "This account is waiting for a server administrator's approval.")
	case acct.Locked:
		outcome = matrix.CodeUserLocked
		return retry(http.StatusForbidden, "This account has been locked.")
	}
	cookie, err := s.startSession(ctx, acct.UserID, acct.PasswordHash)
	switch {
	case errors.Is(err, db.ErrCredentialsChanged):
		outcome = matrix.CodeForbidden
		return retry(http.StatusForbidden, "The password of this account was changed meanwhile. Sign in with the new one.")
	case errors.Is(err, db.ErrAccountLocked):
		outcome = matrix.CodeUserLocked
		return retry(http.StatusForbidden, "This account has been locked.")
	case errors.Is(err, db.ErrDeactivated):
		outcome = matrix.CodeUserDeactivated
		return retry(http.StatusForbidden, "This account has been deactivated.")
	case err != nil:
		s.log.ErrorContext(ctx, "storing a browser session failed", "error", err)
		outcome = matrix.CodeUnknown
		return retry(http.StatusInternalServerError, "Something went wrong; try again.")
	}
	s.log.InfoContext(ctx, "signed in in the browser", "user_id", acct.UserID)
	next := localNext(f.Next)
	if next == "" {
		next = PathAccount
	}
	return redirect(next, cookie)
}

func signInStatus(err error) int {
	var failure *uia.Failure
	if errors.As(err, &failure) {
		return http.StatusBadRequest
	}
	if merr, ok := matrix.As(err); ok && merr.Status < 500 {
		if merr.Status == http.StatusTooManyRequests {
			return merr.Status
		}
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func signInMessage(err error) string {
	var failure *uia.Failure
	if errors.As(err, &failure) {
		return "Wrong username or password."
	}
	merr, _ := matrix.As(err)
	switch {
	case merr == nil || merr.Status >= 500:
		return "Something went wrong; try again."
	case merr.Code == matrix.CodeLimitExceeded:
		return "Too many attempts. Wait a little and try again."
	case merr.Code == matrix.CodeUserDeactivated:
		return "This account has been deactivated."
	}
	return "Wrong username or password."
}

// SignOut ends the browser's session.
func (s *Service) SignOut(ctx context.Context, b Browser, csrf string) Page {
	if !s.checkCSRF(b, csrf) {
		return s.csrfFailed()
	}
	if token := b.cookie(sessionCookie); token != "" {
		if err := s.store.DeleteBrowserSession(ctx, secrets.HashToken(token)); err != nil {
			s.log.WarnContext(ctx, "ending a browser session failed", "error", err)
		}
	}
	return redirect(PathLogin, s.cookie(sessionCookie, "", -1))
}

// consentTarget is a pending grant with its client, for the consent page.
type consentTarget struct {
	grant  db.OAuthGrant
	client ClientMetadata
}

func (s *Service) consentTarget(ctx context.Context, grantID string) (consentTarget, *Page) {
	g, err := s.store.OAuthGrant(ctx, grantID)
	if err != nil || g.Status != db.GrantPending {
		p := s.message(http.StatusNotFound, "Request expired",
			"This sign-in request has expired or was completed already. Go back to your app and start again.")
		return consentTarget{}, &p
	}
	row, err := s.store.OAuthClient(ctx, g.ClientID)
	var meta ClientMetadata
	if err == nil {
		err = json.Unmarshal([]byte(row.Metadata), &meta)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "reading a client failed", "client_id", g.ClientID, "error", err)
		p := s.message(http.StatusInternalServerError, "Something went wrong", "Something went wrong; try again.")
		return consentTarget{}, &p
	}
	meta.ClientID = row.ClientID
	return consentTarget{grant: g, client: meta}, nil
}

// ConsentPage asks the signed-in user to allow the client. Every
// authorisation creates a device, and no client's identity can be
// assured (they are public, RFC 8252 §8.6: any app may claim a custom
// scheme or a loopback port, and identical metadata shares a client_id),
// so the user always answers: a consent remembered for this client and
// scope only shortens the page to a one-click confirmation.
func (s *Service) ConsentPage(ctx context.Context, b Browser, grantID string) Page {
	t, fail := s.consentTarget(ctx, grantID)
	if fail != nil {
		return *fail
	}
	acct, ok := s.signedIn(ctx, b)
	if !ok {
		return redirect(PathLogin + "?next=" + url.QueryEscape(PathConsent+grantID))
	}
	token, set := s.csrf(b)
	return s.consentView(ctx, t, acct, token, "", nonNilCookies(set)...)
}

// rememberedConsent reports whether the user allowed the client a code
// grant of this scope before.
func (s *Service) rememberedConsent(ctx context.Context, t consentTarget, acct db.Account) bool {
	if t.grant.Kind != db.GrantCode {
		return false
	}
	remembered, err := s.store.OAuthConsent(ctx, acct.UserID, t.grant.ClientID)
	return err == nil && covers(remembered, t.grant.Scope)
}

func (s *Service) consentView(ctx context.Context, t consentTarget, acct db.Account, csrf, errMsg string, cookies ...*http.Cookie) Page {
	m := t.client
	name := m.ClientName
	if name == "" {
		name = m.ClientURI
	}
	host := m.ClientURI
	if u, err := url.Parse(m.ClientURI); err == nil {
		host = u.Host
	}
	title := "Allow access?"
	remembered := s.rememberedConsent(ctx, t, acct)
	switch {
	case t.grant.Kind == db.GrantDevice:
		title = "Allow this device?"
	case remembered:
		title = "Continue to " + name + "?"
	}
	p := s.render(http.StatusOK, "consent", view{Frame: web.Frame{Title: title, Error: errMsg}, Action: PathConsent + t.grant.ID, CSRF: csrf,
		User: acct.UserID, ClientName: name, ClientURI: m.ClientURI, ClientHost: host, TOS: m.TOSURI, Policy: m.PolicyURI,
		Scopes: describeScope(t.grant), Remembered: remembered, DeviceID: t.grant.DeviceID}, cookies...)
	if t.grant.RedirectURI != "" {
		p.Policy.FormAction = []string{formSource(t.grant.RedirectURI)}
	}
	return p
}

// describeScope says in words what a grant allows.
func describeScope(g db.OAuthGrant) []string {
	out := []string{"Use your account fully: read and send messages, and manage your account (device " + g.DeviceID + ")"}
	if scope, _ := ParseScope(strings.Fields(g.Scope)); scope.OpenID {
		out = append(out, "Know your Matrix user ID")
	}
	return out
}

// covers reports whether a remembered consent includes every scope token
// of the grant (the device token aside: each login has its own).
func covers(remembered, requested string) bool {
	have := map[string]bool{}
	for _, t := range strings.Fields(remembered) {
		have[t] = true
	}
	for _, t := range strings.Fields(requested) {
		if strings.HasPrefix(t, ScopeDevicePrefix) || strings.HasPrefix(t, scopeDeviceUnstable) {
			continue
		}
		if !have[t] {
			return false
		}
	}
	return remembered != ""
}

// Consent records the user's answer.
func (s *Service) Consent(ctx context.Context, b Browser, grantID, action, csrf string) Page {
	if !s.checkCSRF(b, csrf) {
		return s.csrfFailed()
	}
	t, fail := s.consentTarget(ctx, grantID)
	if fail != nil {
		return *fail
	}
	acct, ok := s.signedIn(ctx, b)
	if !ok {
		return redirect(PathLogin + "?next=" + url.QueryEscape(PathConsent+grantID))
	}
	switch action {
	case "allow":
		return s.decide(ctx, t, acct, true)
	case "deny":
		return s.decide(ctx, t, acct, false)
	}
	token, _ := s.csrf(b)
	return s.consentView(ctx, t, acct, token, "Choose Allow or Deny.")
}

// decide approves or denies a grant and answers: back to the client for
// a code grant, a page for a device grant.
func (s *Service) decide(ctx context.Context, t consentTarget, acct db.Account, approve bool) Page {
	g := t.grant
	var code string
	var codeHash *string
	expires := g.ExpiresAt
	if approve && g.Kind == db.GrantCode {
		code = secrets.RandomString(32)
		h := secrets.HashToken(code)
		codeHash = &h
		expires = s.now().Add(s.cfg.OAuth.CodeLifetime.Duration).UnixMilli()
	}
	err := s.store.DecideOAuthGrant(ctx, g.ID, acct.UserID, approve, codeHash, expires)
	if errors.Is(err, db.ErrDeviceTaken) {
		if g.Kind == db.GrantDevice {
			return s.message(http.StatusBadRequest, "Device not allowed",
				"The device asked for a device ID that another account uses. Start again on the device.")
		}
		return s.backToClient(g, &oidc.Error{ErrorType: oidc.InvalidScope, Description: "the device ID is in use by another account", State: g.State})
	}
	if err != nil {
		p := s.message(http.StatusNotFound, "Request expired",
			"This sign-in request has expired or was completed already. Go back to your app and start again.")
		return p
	}
	s.log.InfoContext(ctx, "oauth grant decided", "user_id", acct.UserID, "client_id", g.ClientID, "device_id", g.DeviceID, "approved", approve,
		"kind", g.Kind)
	if g.Kind == db.GrantDevice {
		if approve {
			return s.message(http.StatusOK, "Device allowed", "You can go back to your device; it is now signed in.")
		}
		return s.message(http.StatusOK, "Device denied", "The device was not allowed to sign in.")
	}
	if !approve {
		return s.backToClient(g, &oidc.Error{ErrorType: oidc.AccessDenied, Description: "the user denied the request", State: g.State})
	}
	if err := s.store.SaveOAuthConsent(ctx, acct.UserID, g.ClientID, g.Scope); err != nil {
		s.log.WarnContext(ctx, "remembering a consent failed", "error", err)
	}
	return s.backToClient(g, &codeResponse{Code: code, State: g.State})
}

// codeResponse is the authorisation response (RFC 6749 §4.1.2).
type codeResponse struct {
	Code  string `schema:"code"`
	State string `schema:"state,omitempty"`
}

// backToClient redirects to the grant's redirect URI with the response in
// its response mode.
func (s *Service) backToClient(g db.OAuthGrant, response any) Page {
	location, err := op.AuthResponseURL(g.RedirectURI, oidc.ResponseTypeCode, oidc.ResponseMode(g.ResponseMode), response, oidc.NewEncoder())
	if err != nil {
		s.log.Error("building the redirect failed", "error", err)
		return s.message(http.StatusInternalServerError, "Something went wrong", "Something went wrong; try again.")
	}
	p := redirect(location)
	p.Policy.FormAction = []string{formSource(g.RedirectURI)}
	return p
}

// formSource is the CSP source that lets a form end at a redirect URI:
// its origin, or its scheme for a private-use scheme.
func formSource(raw string) string {
	if o := web.Origin(raw); o != "" {
		return o
	}
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		return u.Scheme + ":"
	}
	return ""
}

// DevicePage asks for the code the device shows.
func (s *Service) DevicePage(ctx context.Context, b Browser, userCode string) Page {
	token, set := s.csrf(b)
	return s.render(http.StatusOK, "device", view{Frame: web.Frame{Title: "Connect a device"}, Action: PathDevice, CSRF: token, UserCode: userCode},
		nonNilCookies(set)...)
}

// DeviceSubmit finds the device authorisation of a code and goes on to
// its consent page; wrong codes are rate limited.
func (s *Service) DeviceSubmit(ctx context.Context, b Browser, userCode, csrf string) Page {
	if !s.checkCSRF(b, csrf) {
		return s.csrfFailed()
	}
	token, _ := s.csrf(b)
	retry := func(status int, msg string) Page {
		return s.render(status, "device", view{Frame: web.Frame{Title: "Connect a device", Error: msg}, Action: PathDevice, CSRF: token, UserCode: userCode})
	}
	if err := s.limits.userCode.Check(b.ClientKey, s.now()); err != nil {
		return retry(http.StatusTooManyRequests, "Too many wrong codes. Wait a little and try again.")
	}
	g, err := s.store.PendingDeviceGrant(ctx, normalizeUserCode(userCode))
	if err != nil {
		_ = s.limits.userCode.Take(b.ClientKey, s.now())
		return retry(http.StatusBadRequest, "That code is wrong or has expired. Check the code on your device.")
	}
	return redirect(PathConsent + g.ID)
}

// ErrorPage is a failure before the page's own code ran (a malformed
// form), as a page.
func (s *Service) ErrorPage(status int, msg string) Page {
	return s.message(status, "Something is wrong", msg)
}
