package oauth

import (
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

// Browser is what a page request brings: its cookies, the rate-limit key
// of its address, and the browser and address (noted for the sessions
// page).
type Browser struct {
	Cookies       []*http.Cookie
	ClientKey     string
	UserAgent, IP string
}

func (b Browser) cookie(name string) string {
	for _, c := range b.Cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

var _ = web.Register(`
{{define "_client"}}<div class="client" id="client-card">{{if .LogoURL}}<img src="{{.LogoURL}}" alt="" width="48" height="48">{{end}}
<div><div class="name" id="client">{{.Name}}</div>{{if .Host}}<a href="{{.URI}}" rel="noopener noreferrer" id="client-uri">{{.Host}}</a>{{end}}</div></div>{{end}}

{{define "signin"}}{{template "head" .}}
{{with .Client}}{{template "_client" .}}{{end}}
<p class="muted" id="intro">{{if .Client}}{{t "signin_intro_client" "Client" .Client.Name "Server" .Site.ServerName}}{{else}}{{t "signin_intro" "Server" .Site.ServerName}}{{end}}</p>
{{if .Passwords}}<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="next" value="{{.Next}}">
<div class="field"><label for="username">{{t "field_username"}}</label>
{{template "_input" (.Input "username" "text" "username" .Username)}}{{template "_error" (.ErrorOf "username")}}</div>
<div class="field"><label for="password">{{t "field_password"}}</label>
{{template "_input" (.Input "password" "password" "current-password" "")}}{{template "_error" (.ErrorOf "password")}}</div>
<div class="actions"><button type="submit" id="submit">{{t "signin_submit"}}</button></div>
</form>{{if .Passkeys}}<div class="providers"><p class="divider"><span>{{t "providers_or"}}</span></p>
<button type="button" class="secondary" id="passkey-signin" data-webauthn="passkey" data-csrf="{{.CSRF}}" data-next="{{.Next}}" hidden>{{t "passkey_signin"}}</button>
<p class="field-error" id="passkey-error" role="alert" hidden></p></div>{{end}}{{template "_providers" .Providers}}{{else}}<div class="providers" id="providers">{{range .Providers}}<a class="button provider" href="{{.URL}}" id="provider-{{.ID}}">{{t "providers_continue_with" "Provider" .Name}}</a>{{end}}</div>{{end}}{{if .SignUp}}<p class="muted">{{t "signin_new_here"}} <a href="{{.SignUp}}" id="signup">{{t "signin_create_account"}}</a></p>{{end}}{{template "foot" .}}{{end}}

{{define "consent"}}{{template "head" .}}
{{template "_client" .Client}}
{{if .Remembered}}<p id="confirm">{{t "consent_remembered" "Client" .Client.Name}}</p>
<dl class="facts"><dt>{{t "consent_account"}}</dt><dd id="user">{{.User}}</dd><dt>{{t "consent_new_session"}}</dt><dd id="device">{{.DeviceID}}</dd></dl>
{{else}}<p>{{if .Device}}{{t "consent_device_wants" "Client" .Client.Name}}{{else}}{{t "consent_wants" "Client" .Client.Name}}{{end}}</p>
<ul class="scopes" id="scopes">{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
<dl class="facts"><dt>{{t "consent_account"}}</dt><dd id="user">{{.User}}</dd><dt>{{t "consent_new_session"}}</dt><dd id="device">{{.DeviceID}}</dd></dl>
{{with .Client}}{{if or .TOS .Policy}}<p class="muted" id="client-documents">{{t "consent_client_documents"}}
{{if .TOS}}<a href="{{.TOS}}" rel="noopener noreferrer" id="client-tos">{{t "consent_client_terms"}}</a>{{end}}
{{- if and .TOS .Policy}} · {{end}}{{if .Policy}}<a href="{{.Policy}}" rel="noopener noreferrer" id="client-policy">{{t "consent_client_policy"}}</a>{{end}}</p>{{end}}{{end}}
<p class="muted">{{t "consent_trust"}}</p>{{end}}
<form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="actions"><button type="submit" name="action" value="allow" id="allow">{{if .Remembered}}{{t "consent_continue"}}{{else}}{{t "consent_allow"}}{{end}}</button>
<button type="submit" name="action" value="deny" id="deny" class="secondary">{{if .Remembered}}{{t "consent_cancel"}}{{else}}{{t "consent_deny"}}{{end}}</button></div></form>
<form method="post" action="{{.Logout}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<p class="muted">{{t "consent_not_you"}} <button type="submit" id="signout" class="link">{{t "signout"}}</button></p></form>{{template "foot" .}}{{end}}

{{define "device"}}{{template "head" .}}
<p id="intro">{{t "device_intro"}}</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="field"><label for="user_code">{{t "device_code"}}</label>
{{template "_input" (.Input "user_code" "text" "one-time-code" .UserCode)}}{{template "_error" (.ErrorOf "user_code")}}</div>
<div class="actions"><button type="submit" id="submit">{{t "continue"}}</button></div></form>{{template "foot" .}}{{end}}
`)

// ClientView is the client asking, as the pages show it.
type ClientView struct {
	ID, Name, URI, Host string
	// LogoURL is registrar's copy of the client's logo, "" when it has
	// none or it could not be fetched.
	LogoURL     string
	TOS, Policy string
}

// view is what the templates render.
type view struct {
	web.Frame
	Action, CSRF, Next, Logout, SignUp string
	Username, User, UserCode           string
	Client                             *ClientView
	Scopes                             []string
	// Providers are the upstream identity providers' buttons; Passwords:
	// the sign-in form takes a password.
	Providers []web.ProviderLink
	Passwords bool
	// Passkeys shows the passkey sign-in button (its script unhides it).
	Passkeys bool
	// Remembered: the user allowed this client the scope before; the page
	// only confirms the new session (DeviceID).
	Remembered bool
	// Device: a device authorisation (RFC 8628).
	Device   bool
	DeviceID string
}

func (s *Service) render(ctx context.Context, status int, name string, v *view, cookies ...*http.Cookie) Page {
	v.Logout = PathLogout
	if name == "signin" && s.cfg.EnableRegistration {
		v.SignUp = PathSignUp
		if grant := grantOfNext(v.Next); grant != "" {
			v.SignUp += "?grant=" + url.QueryEscape(grant)
		}
	}
	return s.page(ctx, status, name, v, cookies...)
}

// page renders any registered template into a Page.
func (s *Service) page(ctx context.Context, status int, name string, v web.Framed, cookies ...*http.Cookie) Page {
	html, err := s.site.Render(ctx, name, v)
	if err != nil {
		s.log.ErrorContext(ctx, "rendering a page failed", "page", name, "error", err)
		return Page{Status: http.StatusInternalServerError, HTML: []byte("Internal server error")}
	}
	return Page{Status: status, HTML: html, Cookies: cookies}
}

// message is a one-paragraph page: title and text are message IDs (the
// text's placeholders filled from args), with a link back to back when
// set.
func (s *Service) message(ctx context.Context, status int, title, text string, back string, args ...any) Page {
	lang := web.Lang(ctx)
	v := &view{Frame: web.Frame{Title: web.T(lang, title), Message: web.T(lang, text, args...)}}
	if back != "" {
		v.BackURL, v.BackLabel = back, web.T(lang, "back")
	}
	return s.page(ctx, status, "message", v)
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

func (s *Service) csrfFailed(ctx context.Context) Page {
	return s.message(ctx, http.StatusForbidden, "csrf_title", "csrf_text", PathAccount)
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
	live, err := s.store.BrowserSession(ctx, secrets.HashToken(token))
	if err != nil {
		return db.Account{}, false
	}
	acct, err := s.store.AccountByUserID(ctx, live.UserID)
	if err != nil || acct.Deactivated() || acct.Locked || acct.ApprovalPending {
		return db.Account{}, false
	}
	// The sessions page shows the last use to the minute: a page view
	// writes only when that (or the browser or address) changed.
	now := s.now().UnixMilli()
	if live.LastActiveAt == nil || now-*live.LastActiveAt >= time.Minute.Milliseconds() || live.UserAgent != b.UserAgent || live.IP != b.IP {
		if err := s.store.TouchBrowserSession(ctx, secrets.HashToken(token), b.UserAgent, b.IP); err != nil {
			s.log.WarnContext(ctx, "noting a browser session's use failed", "error", err)
		}
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
	v := s.signInView(ctx, token, next, "")
	p := s.render(ctx, http.StatusOK, "signin", v, nonNilCookies(set)...)
	p.Policy.FormAction = s.nextFormAction(ctx, next)
	return p
}

// signInView is the sign-in form, naming the client a sign-in continues
// to.
func (s *Service) signInView(ctx context.Context, csrf, next, username string) *view {
	v := &view{Frame: web.Frame{Title: web.T(web.Lang(ctx), "signin_title"), Autofocus: "username",
		Here: PathLogin + "?" + url.Values{"next": {localNext(next)}}.Encode()},
		Action: PathLogin, CSRF: csrf, Next: localNext(next), Username: username}
	if username != "" {
		v.Autofocus = "password"
	}
	if s.providers != nil {
		v.Providers = s.providers(localNext(next))
	}
	pc := s.cfg.PasswordConfig
	v.Passwords = pc.Enabled && (pc.LocalDB() || s.cfg.LDAP() != nil) || len(v.Providers) == 0
	v.Passkeys = s.passkeys
	if grant := grantOfNext(next); grant != "" {
		if t, err := s.loadConsentTarget(ctx, grant); err == nil {
			v.Client = s.clientView(ctx, t.client)
		}
	}
	return v
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
		return s.csrfFailed(ctx)
	}
	outcome := metrics.Success
	defer func() { s.metrics.LoginOutcome("oauth", outcome) }()
	token, _ := s.csrf(b)
	lang := web.Lang(ctx)
	// retry shows the form again with the message beside field, or above
	// the form when field is "".
	retry := func(status int, field, msg string) Page {
		v := s.signInView(ctx, token, f.Next, f.Username)
		if field == "" {
			v.Error = web.T(lang, msg)
		} else {
			v.FieldError(field, web.T(lang, msg))
		}
		p := s.render(ctx, status, "signin", v)
		p.Policy.FormAction = s.nextFormAction(ctx, f.Next)
		return p
	}
	if err := s.accounts.LoginLimits(b.ClientKey); err != nil {
		outcome = matrix.CodeLimitExceeded
		return retry(http.StatusTooManyRequests, "", "error_too_many_attempts")
	}
	acct, err := s.accounts.CheckCredentials(ctx, strings.TrimSpace(f.Username), f.Password, "")
	if err != nil {
		outcome = metrics.OutcomeOf(err)
		field, msg := signInMessage(err)
		return retry(signInStatus(err), field, msg)
	}
	if err := s.accounts.SuccessfulLoginLimit(acct.UserID); err != nil {
		outcome = matrix.CodeLimitExceeded
		return retry(http.StatusTooManyRequests, "", "error_too_many_signins")
	}
	switch {
	case acct.ApprovalPending:
		outcome = matrix.CodeUserAwaitingApproval
		return retry(http.StatusForbidden, "", "error_awaiting_approval")
	case acct.Locked:
		outcome = matrix.CodeUserLocked
		return retry(http.StatusForbidden, "", "error_locked")
	}
	if s.afterPassword != nil {
		if p := s.afterPassword(ctx, b, acct, localNext(f.Next)); p != nil {
			return *p
		}
	}
	cookie, err := s.startSession(ctx, b, acct.UserID, acct.PasswordHash)
	switch {
	case errors.Is(err, db.ErrCredentialsChanged):
		outcome = matrix.CodeForbidden
		return retry(http.StatusForbidden, "password", "error_password_changed_meanwhile")
	case errors.Is(err, db.ErrAccountLocked):
		outcome = matrix.CodeUserLocked
		return retry(http.StatusForbidden, "", "error_locked")
	case errors.Is(err, db.ErrDeactivated):
		outcome = matrix.CodeUserDeactivated
		return retry(http.StatusForbidden, "", "error_deactivated")
	case err != nil:
		s.log.ErrorContext(ctx, "storing a browser session failed", "error", err)
		outcome = matrix.CodeUnknown
		return retry(http.StatusInternalServerError, "", "error_internal")
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

// signInMessage is a refused sign-in as the page says it: the field it
// concerns ("" for the form) and the message's ID. A wrong username or
// password is said beside the password (the username is kept), never
// telling which was wrong.
func signInMessage(err error) (string, string) {
	var failure *uia.Failure
	if errors.As(err, &failure) {
		return "password", "error_wrong_credentials"
	}
	merr, _ := matrix.As(err)
	switch {
	case merr == nil || merr.Status >= 500:
		return "", "error_internal"
	case merr.Code == matrix.CodeLimitExceeded:
		return "", "error_too_many_attempts"
	case merr.Code == matrix.CodeUserDeactivated:
		return "", "error_deactivated"
	}
	return "password", "error_wrong_credentials"
}

// SignOut ends the browser's session.
func (s *Service) SignOut(ctx context.Context, b Browser, csrf string) Page {
	if !s.checkCSRF(b, csrf) {
		return s.csrfFailed(ctx)
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
	t, err := s.loadConsentTarget(ctx, grantID)
	switch {
	case errors.Is(err, errGrantGone):
		p := s.expired(ctx)
		return consentTarget{}, &p
	case err != nil:
		s.log.ErrorContext(ctx, "reading a client failed", "grant", grantID, "error", err)
		p := s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
		return consentTarget{}, &p
	}
	return t, nil
}

var errGrantGone = errors.New("oauth: the grant is not pending")

// loadConsentTarget is a pending grant with its client's metadata.
func (s *Service) loadConsentTarget(ctx context.Context, grantID string) (consentTarget, error) {
	g, err := s.store.OAuthGrant(ctx, grantID)
	if err != nil || g.Status != db.GrantPending {
		return consentTarget{}, errGrantGone
	}
	meta, err := s.clientMetadata(ctx, g.ClientID)
	if err != nil {
		return consentTarget{}, err
	}
	return consentTarget{grant: g, client: meta}, nil
}

// clientMetadata is a registered client's metadata.
func (s *Service) clientMetadata(ctx context.Context, clientID string) (ClientMetadata, error) {
	row, err := s.store.OAuthClient(ctx, clientID)
	var meta ClientMetadata
	if err == nil {
		err = json.Unmarshal([]byte(row.Metadata), &meta)
	}
	meta.ClientID = row.ClientID
	return meta, err
}

// expired is the page of a sign-in request that is gone.
func (s *Service) expired(ctx context.Context) Page {
	return s.message(ctx, http.StatusNotFound, "expired_title", "expired_text", "")
}

// clientView is a client as the pages show it: its name (in the page's
// language where it registered one), host, documents and logo.
func (s *Service) clientView(ctx context.Context, m ClientMetadata) *ClientView {
	lang := web.Lang(ctx)
	localized := func(field, fallback string) string {
		if v := m.Localized[field+"#"+lang]; v != "" {
			return v
		}
		return fallback
	}
	c := &ClientView{ID: m.ClientID, Name: localized("client_name", m.ClientName), URI: m.ClientURI, TOS: localized("tos_uri", m.TOSURI),
		Policy: localized("policy_uri", m.PolicyURI)}
	if u, err := url.Parse(m.ClientURI); err == nil {
		c.Host = u.Host
	}
	if c.Name == "" {
		c.Name = c.Host
	}
	if logo := localized("logo_uri", m.LogoURI); logo != "" && s.images != nil && s.images.Ready(ctx, logo) {
		c.LogoURL = ClientLogoPath(m.ClientID)
		if logo != m.LogoURI {
			c.LogoURL += "?lang=" + lang
		}
	}
	return c
}

// ClientLogoPath is where registrar serves a client's logo.
func ClientLogoPath(clientID string) string {
	return "/_registrar/clients/" + url.PathEscape(clientID) + "/logo"
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
	if s.gate != nil {
		if to := s.gate(ctx, acct); to != "" {
			return redirect(to)
		}
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
	lang := web.Lang(ctx)
	client := s.clientView(ctx, t.client)
	title := web.T(lang, "consent_title")
	remembered := s.rememberedConsent(ctx, t, acct)
	switch {
	case t.grant.Kind == db.GrantDevice:
		title = web.T(lang, "consent_device_title")
	case remembered:
		title = web.T(lang, "consent_remembered_title", "Client", client.Name)
	}
	v := &view{Frame: web.Frame{Title: title, Error: errMsg, Here: PathConsent + t.grant.ID}, Action: PathConsent + t.grant.ID, CSRF: csrf,
		User: acct.UserID, Client: client, Scopes: describeScope(lang, t.grant), Remembered: remembered,
		Device: t.grant.Kind == db.GrantDevice, DeviceID: t.grant.DeviceID}
	p := s.render(ctx, http.StatusOK, "consent", v, cookies...)
	if t.grant.RedirectURI != "" {
		p.Policy.FormAction = []string{formSource(t.grant.RedirectURI)}
	}
	return p
}

// describeScope says in words what a grant allows.
func describeScope(lang string, g db.OAuthGrant) []string {
	out := []string{web.T(lang, "scope_full_access")}
	if scope, _ := ParseScope(strings.Fields(g.Scope)); scope.OpenID {
		out = append(out, web.T(lang, "scope_openid"))
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
		return s.csrfFailed(ctx)
	}
	t, fail := s.consentTarget(ctx, grantID)
	if fail != nil {
		return *fail
	}
	acct, ok := s.signedIn(ctx, b)
	if !ok {
		return redirect(PathLogin + "?next=" + url.QueryEscape(PathConsent+grantID))
	}
	if s.gate != nil {
		if to := s.gate(ctx, acct); to != "" {
			return redirect(to)
		}
	}
	switch action {
	case "allow":
		return s.decide(ctx, t, acct, true, s.CurrentSession(b))
	case "deny":
		return s.decide(ctx, t, acct, false, "")
	}
	token, _ := s.csrf(b)
	return s.consentView(ctx, t, acct, token, web.T(web.Lang(ctx), "consent_choose"))
}

// decide approves or denies a grant and answers: back to the client for
// a code grant, a page for a device grant.
func (s *Service) decide(ctx context.Context, t consentTarget, acct db.Account, approve bool, browserSession string) Page {
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
			return s.message(ctx, http.StatusBadRequest, "device_taken_title", "device_taken_text", "")
		}
		return s.backToClient(ctx, g, &oidc.Error{ErrorType: oidc.InvalidScope, Description: "the device ID is in use by another account", State: g.State})
	}
	if err != nil {
		return s.expired(ctx)
	}
	s.log.InfoContext(ctx, "oauth grant decided", "user_id", acct.UserID, "client_id", g.ClientID, "device_id", g.DeviceID, "approved", approve,
		"kind", g.Kind)
	if approve && browserSession != "" {
		// A browser an identity provider signed in hands its session's end
		// down to the device it allowed (back-channel logout).
		if err := s.store.InheritUpstreamLogin(ctx, browserSession, acct.UserID, g.DeviceID); err != nil {
			s.log.WarnContext(ctx, "recording an upstream login's device failed", "error", err)
		}
	}
	if g.Kind == db.GrantDevice {
		if approve {
			return s.message(ctx, http.StatusOK, "device_allowed_title", "device_allowed_text", "")
		}
		return s.message(ctx, http.StatusOK, "device_denied_title", "device_denied_text", "")
	}
	if !approve {
		return s.backToClient(ctx, g, &oidc.Error{ErrorType: oidc.AccessDenied, Description: "the user denied the request", State: g.State})
	}
	if err := s.store.SaveOAuthConsent(ctx, acct.UserID, g.ClientID, g.Scope); err != nil {
		s.log.WarnContext(ctx, "remembering a consent failed", "error", err)
	}
	return s.backToClient(ctx, g, &codeResponse{Code: code, State: g.State})
}

// codeResponse is the authorisation response (RFC 6749 §4.1.2).
type codeResponse struct {
	Code  string `schema:"code"`
	State string `schema:"state,omitempty"`
}

// backToClient redirects to the grant's redirect URI with the response in
// its response mode.
func (s *Service) backToClient(ctx context.Context, g db.OAuthGrant, response any) Page {
	location, err := op.AuthResponseURL(g.RedirectURI, oidc.ResponseTypeCode, oidc.ResponseMode(g.ResponseMode), response, oidc.NewEncoder())
	if err != nil {
		s.log.ErrorContext(ctx, "building the redirect failed", "error", err)
		return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
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
	return s.render(ctx, http.StatusOK, "device", s.deviceView(ctx, token, userCode), nonNilCookies(set)...)
}

func (s *Service) deviceView(ctx context.Context, csrf, userCode string) *view {
	return &view{Frame: web.Frame{Title: web.T(web.Lang(ctx), "device_title"), Autofocus: "user_code", Here: PathDevice},
		Action: PathDevice, CSRF: csrf, UserCode: userCode}
}

// DeviceSubmit finds the device authorisation of a code and goes on to
// its consent page; wrong codes are rate limited.
func (s *Service) DeviceSubmit(ctx context.Context, b Browser, userCode, csrf string) Page {
	if !s.checkCSRF(b, csrf) {
		return s.csrfFailed(ctx)
	}
	token, _ := s.csrf(b)
	retry := func(status int, msg string) Page {
		v := s.deviceView(ctx, token, userCode)
		v.FieldError("user_code", web.T(web.Lang(ctx), msg))
		return s.render(ctx, status, "device", v)
	}
	if err := s.limits.userCode.Check(b.ClientKey, s.now()); err != nil {
		return retry(http.StatusTooManyRequests, "error_too_many_codes")
	}
	g, err := s.store.PendingDeviceGrant(ctx, normalizeUserCode(userCode))
	if err != nil {
		_ = s.limits.userCode.Take(b.ClientKey, s.now())
		return retry(http.StatusBadRequest, "error_device_code")
	}
	return redirect(PathConsent + g.ID)
}
