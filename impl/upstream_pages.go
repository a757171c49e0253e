package impl

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"registrar/api"
	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/matrix"
	"registrar/impl/oauth"
	"registrar/impl/secrets"
	"registrar/impl/uia"
	"registrar/impl/upstream"
	"registrar/impl/web"
)

// Signing in with an upstream identity provider: the browser is sent to
// the provider with a state (the stored sign-in's ID), a nonce and a PKCE
// verifier registrar keeps, bound by a cookie to the browser that
// started; the provider sends it back to the callback, which spends the
// state once, has the relying party verify the answer, and goes on by the
// sign-in's purpose: the pages' sign-in (or sign-up, through the same
// registration policy as every way in), linking an identity to the
// signed-in account, the legacy API's m.login.sso, or a UIA stage.

const (
	// upstreamCookie binds a sign-in at a provider to the browser that
	// started it.
	upstreamCookie = "registrar_upstream"
	// upstreamLifetime is how long a person has at the provider (and to
	// pick a username after).
	upstreamLifetime = 15 * time.Minute
	// upstreamCallbackPath is the redirect URI registered with providers.
	upstreamCallbackPath = "/_registrar/upstream/callback"
	// ssoLoginTokenLifetime is how long a legacy client has to spend the
	// login token it is handed (Synapse: two minutes).
	ssoLoginTokenLifetime = 2 * time.Minute
)

var _ = web.Register(`
{{define "upstream-register"}}{{template "head" .}}
<p id="intro">{{t "upstream_register_intro" "Provider" .Provider "Server" .Site.ServerName}}</p>
<form method="post" action="/_registrar/upstream/register">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="session" value="{{.Session}}">
<div class="field"><label for="username">{{t "field_username"}}</label>
{{template "_input" (.Input "username" "text" "username" .Username "username-hint")}}
<p class="hint" id="username-hint">{{t "signup_username_hint" "Server" .Site.ServerName}}</p>{{template "_error" (.ErrorOf "username")}}</div>
{{if .DisplayName}}<dl class="facts"><dt>{{t "field_display_name"}}</dt><dd id="display-name">{{.DisplayName}}</dd>
{{if .Email}}<dt>{{t "field_email"}}</dt><dd id="email">{{.Email}}</dd>{{end}}</dl>{{end}}
{{if .Terms}}<fieldset><legend>{{t "signup_terms"}}</legend><ul>{{range .Terms}}<li><a href="{{.URL}}" rel="noopener noreferrer">{{.Name}}</a> ({{t "terms_version" "Version" .Version}})</li>{{end}}</ul>
<label class="checkbox"><input type="checkbox" name="accept_terms" id="accept_terms" value="yes" required{{if .Invalid "accept_terms"}} aria-invalid="true" aria-describedby="accept_terms-error"{{end}}{{if .Focus "accept_terms"}} autofocus{{end}}> {{t "terms_agree"}}</label>
{{template "_error" (.ErrorOf "accept_terms")}}</fieldset>{{end}}
<div class="actions"><button type="submit" id="submit">{{t "signup_submit"}}</button></div></form>{{template "foot" .}}{{end}}

{{define "sso-choose"}}{{template "head" .}}<p id="intro">{{t "sso_choose_intro" "Server" .Site.ServerName}}</p>
<div class="providers" id="providers">{{range .Providers}}<a class="button secondary provider" href="{{.URL}}" id="provider-{{.ID}}">{{t "providers_continue_with" "Provider" .Name}}</a>{{end}}</div>
{{template "foot" .}}{{end}}

{{define "sso-confirm"}}{{template "head" .}}
<p id="confirm-text">{{t "sso_confirm_text" "User" .User "Host" .Host}}</p>
<p class="muted">{{t "sso_confirm_warning"}}</p>
<div class="actions"><a class="button" href="{{.Continue}}" id="continue">{{t "sso_confirm_continue" "Host" .Host}}</a></div>{{template "foot" .}}{{end}}
`)

// upstreamView is what the upstream pages show.
type upstreamView struct {
	web.Frame
	CSRF, Session, Provider string
	Username, DisplayName   string
	Email                   string
	Terms                   []fallbackPolicy
	Providers               []web.ProviderLink
	User, Host, Continue    string
}

// mappedIdentity is what a provider said of a person, kept with the
// sign-in while they pick a username.
type mappedIdentity struct {
	Localpart   string `json:"localpart,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	Email       string `json:"email,omitempty"`
}

// providerLinks are the buttons of the providers for a page that goes on
// to next.
func (s *Server) providerLinks(next string) []web.ProviderLink {
	var out []web.ProviderLink
	for _, p := range s.upstream.Infos() {
		u := "/_registrar/upstream/" + url.PathEscape(p.ID) + "/authorize"
		if next != "" {
			u += "?next=" + url.QueryEscape(next)
		}
		out = append(out, web.ProviderLink{ID: p.ID, Name: p.Name, URL: u})
	}
	return out
}

// upstreamBinding is the browser's binding cookie value, and the cookie to
// set when it has none yet.
func (s *Server) upstreamBinding(b oauth.Browser) (string, *http.Cookie) {
	for _, c := range b.Cookies {
		if c.Name == upstreamCookie && c.Value != "" {
			return c.Value, nil
		}
	}
	value := secrets.RandomString(32)
	return value, &http.Cookie{Name: upstreamCookie, Value: value, Path: "/_registrar/upstream/", MaxAge: int(time.Hour.Seconds()),
		HttpOnly: true, Secure: strings.HasPrefix(s.cfg.PublicBaseURL, "https://"), SameSite: http.SameSiteLaxMode}
}

// boundTo reports whether the browser is the one that started the sign-in.
func (s *Server) boundTo(b oauth.Browser, u db.UpstreamSession) bool {
	for _, c := range b.Cookies {
		if c.Name == upstreamCookie {
			return subtle.ConstantTimeCompare([]byte(secrets.HashToken(c.Value)), []byte(u.BindingHash)) == 1
		}
	}
	return false
}

// startUpstream stores a sign-in and sends the browser to the provider
// (status is 303 for the pages, 302 for the legacy API).
func (s *Server) startUpstream(ctx context.Context, idpID string, u db.UpstreamSession, status int) oauth.Page {
	p, ok := s.upstream.Provider(idpID)
	if !ok {
		return s.message(ctx, http.StatusNotFound, "upstream_unknown_title", "upstream_unknown_text", oauth.PathLogin)
	}
	binding, set := s.upstreamBinding(browser(ctx))
	u.ID, u.BindingHash, u.IdpID = secrets.RandomString(32), secrets.HashToken(binding), idpID
	u.Nonce, u.CodeVerifier, u.Status = secrets.RandomString(32), secrets.RandomString(64), db.UpstreamStarted
	u.ExpiresAt = s.now().Add(upstreamLifetime).UnixMilli()
	target, err := p.AuthURL(ctx, u.ID, u.Nonce, u.CodeVerifier)
	if err != nil {
		s.log.WarnContext(ctx, "an identity provider is unavailable", "idp", idpID, "error", err)
		s.metrics.UpstreamSignIn(idpID, "unavailable")
		return s.message(ctx, http.StatusServiceUnavailable, "upstream_down_title", "upstream_down_text", oauth.PathLogin, "Provider", p.Info().Name)
	}
	if err := s.store.CreateUpstreamSession(ctx, u); err != nil {
		s.log.ErrorContext(ctx, "storing an upstream sign-in failed", "error", err)
		return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", oauth.PathLogin)
	}
	page := oauth.Page{Status: status, Location: target, Cookies: oauth.Cookies(set)}
	page.Policy.FormAction = []string{web.Origin(target)}
	return page
}

// UpstreamAuthorize is GET /_registrar/upstream/{idp_id}/authorize: sign
// in (or up) with a provider, then on to next or the authorisation.
func (s *Server) UpstreamAuthorize(ctx context.Context, req api.UpstreamAuthorizeRequestObject) (api.UpstreamAuthorizeResponseObject, error) {
	if id := deref(req.Params.UiaSession); id != "" {
		// The m.login.sso stage's fallback page: sign in again as the
		// session's user.
		sess, err := s.uia.LoadAny(ctx, id)
		if err != nil || sess.Requester == "" {
			return pageResponse{s.message(ctx, http.StatusNotFound, "expired_title", "upstream_expired_text", "")}, nil
		}
		return pageResponse{s.startUpstream(ctx, req.IdpId, db.UpstreamSession{Purpose: db.UpstreamUIA, UserID: sess.Requester,
			UIASession: id}, http.StatusSeeOther)}, nil
	}
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	next := oauth.LocalNext(deref(req.Params.Next))
	if g := deref(req.Params.Grant); g != "" && next == "" {
		next = oauth.PathConsent + g
	}
	return pageResponse{s.startUpstream(ctx, req.IdpId, db.UpstreamSession{Purpose: db.UpstreamSignIn, Next: next}, http.StatusSeeOther)}, nil
}

// UpstreamLink is POST /_registrar/upstream/{idp_id}/link: link an
// identity at the provider to the signed-in account.
func (s *Server) UpstreamLink(ctx context.Context, req api.UpstreamLinkRequestObject) (api.UpstreamLinkResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	acct, _, stop := s.accountForm(ctx, req.Body.Csrf, viewURL(viewProfile))
	if stop != nil {
		return *stop, nil
	}
	return pageResponse{s.startUpstream(ctx, req.IdpId, db.UpstreamSession{Purpose: db.UpstreamLink, UserID: acct.UserID,
		Next: viewURL(viewProfile)}, http.StatusSeeOther)}, nil
}

// UpstreamCallback is GET /_registrar/upstream/callback: the provider's
// answer, checked and spent once, then the sign-in's purpose.
func (s *Server) UpstreamCallback(ctx context.Context, req api.UpstreamCallbackRequestObject) (api.UpstreamCallbackResponseObject, error) {
	q := req.Params
	b := browser(ctx)
	u, err := s.store.UpstreamSessionByID(ctx, deref(q.State))
	if err != nil || u.Status != db.UpstreamStarted {
		return pageResponse{s.message(ctx, http.StatusNotFound, "expired_title", "upstream_expired_text", oauth.PathLogin)}, nil
	}
	if !s.boundTo(b, u) {
		s.log.WarnContext(ctx, "an upstream sign-in came back to another browser", "idp", u.IdpID)
		return pageResponse{s.message(ctx, http.StatusForbidden, "upstream_other_browser_title", "upstream_other_browser_text", oauth.PathLogin)}, nil
	}
	p, ok := s.upstream.Provider(u.IdpID)
	if !ok {
		return pageResponse{s.message(ctx, http.StatusNotFound, "upstream_unknown_title", "upstream_unknown_text", oauth.PathLogin)}, nil
	}
	name := p.Info().Name
	fail := func(status int, outcome, text string) (api.UpstreamCallbackResponseObject, error) {
		_, _ = s.store.EndUpstreamSession(ctx, u.ID)
		s.metrics.UpstreamSignIn(u.IdpID, outcome)
		return pageResponse{s.message(ctx, status, "upstream_failed_title", text, s.upstreamRetry(u), "Provider", name)}, nil
	}
	if e := deref(q.Error); e != "" {
		s.log.InfoContext(ctx, "the identity provider did not sign the person in", "idp", u.IdpID, "error", e,
			"description", deref(q.ErrorDescription))
		return fail(http.StatusForbidden, "refused", "upstream_refused_text")
	}
	id, err := p.Exchange(ctx, deref(q.Code), u.Nonce, u.CodeVerifier)
	switch {
	case errors.Is(err, upstream.ErrUnavailable):
		s.log.WarnContext(ctx, "an identity provider is unavailable", "idp", u.IdpID, "error", err)
		return fail(http.StatusServiceUnavailable, "unavailable", "upstream_down_text")
	case errors.Is(err, upstream.ErrRequirements):
		s.log.InfoContext(ctx, "a person does not meet a provider's attribute requirements", "idp", u.IdpID, "error", err)
		return fail(http.StatusForbidden, "requirements", "upstream_requirements_text")
	case err != nil:
		s.log.WarnContext(ctx, "an upstream sign-in did not verify", "idp", u.IdpID, "error", err)
		return fail(http.StatusForbidden, "refused", "upstream_refused_text")
	}
	claims, _ := json.Marshal(mappedIdentity{Localpart: id.Localpart, DisplayName: id.DisplayName, Email: id.Email})
	if err := s.store.ReturnUpstreamSession(ctx, u.ID, id.Subject, id.SID, string(claims)); err != nil {
		// Spent by a concurrent callback.
		return pageResponse{s.message(ctx, http.StatusNotFound, "expired_title", "upstream_expired_text", oauth.PathLogin)}, nil
	}
	u.Subject, u.UpstreamSID, u.Claims, u.Status = id.Subject, id.SID, string(claims), db.UpstreamReturned
	return pageResponse{s.upstreamReturned(ctx, p, u, id)}, nil
}

// upstreamRetry is where a failed sign-in's page leads back to.
func (s *Server) upstreamRetry(u db.UpstreamSession) string {
	switch u.Purpose {
	case db.UpstreamLink:
		return viewURL(viewProfile)
	case db.UpstreamSignIn:
		return oauth.PathLogin + "?" + url.Values{"next": {u.Next}}.Encode()
	}
	return ""
}

// upstreamReturned goes on with a verified identity by the sign-in's
// purpose.
func (s *Server) upstreamReturned(ctx context.Context, p *upstream.Provider, u db.UpstreamSession, id upstream.Identity) oauth.Page {
	cfg := p.Config()
	owner, err := s.store.ExternalIDOwner(ctx, u.IdpID, u.Subject)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		s.log.ErrorContext(ctx, "reading an external ID failed", "error", err)
		return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
	}
	switch u.Purpose {
	case db.UpstreamLink:
		return s.upstreamLinked(ctx, p, u, owner)
	case db.UpstreamUIA:
		return s.upstreamUIA(ctx, p, u, owner)
	}
	if owner == "" && cfg.AllowExistingUsers && id.Localpart != "" {
		// An existing account of the mapped name takes the identity.
		if acct, err := s.store.Account(ctx, id.Localpart); err == nil && acct.Kind == db.KindUser && !acct.Deactivated() {
			if err := s.store.LinkExternalID(ctx, db.ExternalID{AuthProvider: u.IdpID, ExternalID: u.Subject, UserID: acct.UserID}); err != nil {
				s.log.ErrorContext(ctx, "linking an external ID failed", "error", err)
				return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
			}
			s.log.InfoContext(ctx, "an upstream identity was linked to the existing account of its name", "user_id", acct.UserID, "idp", u.IdpID)
			owner = acct.UserID
		}
	}
	if owner != "" {
		return s.upstreamSignedIn(ctx, u, owner)
	}
	if !cfg.RegistrationEnabled() {
		_, _ = s.store.EndUpstreamSession(ctx, u.ID)
		s.metrics.UpstreamSignIn(u.IdpID, "no_account")
		return s.message(ctx, http.StatusForbidden, "upstream_failed_title", "upstream_no_account_text", s.upstreamRetry(u),
			"Provider", p.Info().Name)
	}
	// A first sign-in: the account is made at once when the mapped name is
	// free and there is nothing to ask; otherwise the person picks.
	if id.Localpart != "" && !cfg.UserMappingProvider.Config.ConfirmLocalpart && len(s.cfg.RegistrationTerms) == 0 {
		if err := s.accounts.CheckUsername(ctx, id.Localpart, false); err == nil {
			if page, err := s.upstreamCreate(ctx, u, id.Localpart, ""); err == nil {
				return page
			}
		}
	}
	return oauth.Redirect("/_registrar/upstream/register?session=" + url.QueryEscape(u.ID))
}

// upstreamUIA completes the m.login.sso stage of the session when the
// person signed in again as the session's user.
func (s *Server) upstreamUIA(ctx context.Context, p *upstream.Provider, u db.UpstreamSession, owner string) oauth.Page {
	_, _ = s.store.EndUpstreamSession(ctx, u.ID)
	if owner == "" || owner != u.UserID {
		s.metrics.UpstreamSignIn(u.IdpID, "other_account")
		return s.message(ctx, http.StatusForbidden, "upstream_failed_title", "upstream_uia_other_account", "", "Provider", p.Info().Name)
	}
	sess, err := s.uia.LoadAny(ctx, u.UIASession)
	if err != nil || sess.Requester != owner {
		return s.message(ctx, http.StatusNotFound, "expired_title", "upstream_expired_text", "")
	}
	if err := s.uia.Complete(ctx, sess, uia.TypeSSO, owner); err != nil {
		s.log.ErrorContext(ctx, "completing m.login.sso failed", "error", err)
		return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
	}
	s.metrics.UpstreamSignIn(u.IdpID, "reauthenticated")
	v := &fallbackView{Frame: web.Frame{Title: web.T(web.Lang(ctx), "fallback_done_title"), InlineScript: fallbackDoneScript}}
	return s.renderPage(ctx, http.StatusOK, "fallback-done", v, nil)
}

// upstreamLinked links the identity to the account that asked.
func (s *Server) upstreamLinked(ctx context.Context, p *upstream.Provider, u db.UpstreamSession, owner string) oauth.Page {
	_, _ = s.store.EndUpstreamSession(ctx, u.ID)
	acct, ok := s.oauth.SignedIn(ctx, browser(ctx))
	if !ok || acct.UserID != u.UserID {
		return s.message(ctx, http.StatusForbidden, "upstream_failed_title", "upstream_link_signed_out_text", oauth.PathLogin,
			"Provider", p.Info().Name)
	}
	if owner != "" && owner != acct.UserID {
		s.metrics.UpstreamSignIn(u.IdpID, "linked_elsewhere")
		return s.account(ctx, browser(ctx), acct, accountState{action: viewProfile,
			failure: &formError{status: http.StatusConflict, code: matrix.CodeUserInUse, key: "upstream_linked_elsewhere"}}).Page
	}
	if err := s.store.LinkExternalID(ctx, db.ExternalID{AuthProvider: u.IdpID, ExternalID: u.Subject, UserID: acct.UserID}); err != nil {
		if errors.Is(err, db.ErrExternalIDTaken) {
			return s.account(ctx, browser(ctx), acct, accountState{action: viewProfile,
				failure: &formError{status: http.StatusConflict, code: matrix.CodeUserInUse, key: "upstream_linked_elsewhere"}}).Page
		}
		s.log.ErrorContext(ctx, "linking an external ID failed", "error", err)
		return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
	}
	s.metrics.UpstreamSignIn(u.IdpID, "linked")
	s.log.InfoContext(ctx, "an upstream identity was linked on the account page", "user_id", acct.UserID, "idp", u.IdpID)
	return s.account(ctx, browser(ctx), acct, accountState{action: viewProfile, notice: "upstream_linked"}).Page
}

// upstreamSignedIn finishes a sign-in as the account linked to the
// identity: a browser session for the pages, a login token for a legacy
// client.
func (s *Server) upstreamSignedIn(ctx context.Context, u db.UpstreamSession, userID string) oauth.Page {
	if ended, err := s.store.EndUpstreamSession(ctx, u.ID); err != nil || !ended {
		return s.message(ctx, http.StatusNotFound, "expired_title", "upstream_expired_text", oauth.PathLogin)
	}
	acct, err := s.store.AccountByUserID(ctx, userID)
	if err != nil {
		return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
	}
	key := ""
	switch {
	case acct.Deactivated():
		key = "error_deactivated"
	case acct.Locked:
		key = "error_locked"
	case acct.ApprovalPending:
		key = "error_awaiting_approval"
	}
	if key != "" {
		s.metrics.UpstreamSignIn(u.IdpID, "refused_account")
		return s.message(ctx, http.StatusForbidden, "upstream_failed_title", key, "")
	}
	s.metrics.UpstreamSignIn(u.IdpID, "success")
	login := db.UpstreamLogin{IdpID: u.IdpID, Subject: u.Subject, SID: u.UpstreamSID, UserID: userID}
	if u.Purpose == db.UpstreamSSO {
		token, _, err := s.accounts.NewLoginToken(ctx, userID, ssoLoginTokenLifetime)
		if err != nil {
			return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
		}
		login.LoginToken = secrets.HashToken(token)
		if err := s.store.RecordUpstreamLogin(ctx, login); err != nil {
			s.log.WarnContext(ctx, "recording an upstream login failed", "error", err)
		}
		s.log.InfoContext(ctx, "signed in with an identity provider for a legacy client", "user_id", userID, "idp", u.IdpID)
		return s.ssoBackToClient(ctx, u.Next, userID, token)
	}
	cookie, err := s.oauth.StartSession(ctx, browser(ctx), userID)
	if err != nil {
		s.log.ErrorContext(ctx, "starting a browser session failed", "error", err)
		return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
	}
	login.BrowserSession = secrets.HashToken(cookie.Value)
	if err := s.store.RecordUpstreamLogin(ctx, login); err != nil {
		s.log.WarnContext(ctx, "recording an upstream login failed", "error", err)
	}
	s.log.InfoContext(ctx, "signed in with an identity provider", "user_id", userID, "idp", u.IdpID)
	next := oauth.LocalNext(u.Next)
	if next == "" {
		next = oauth.PathAccount
	}
	return oauth.Redirect(next, cookie)
}

// upstreamCreate makes the account of a first sign-in with the registration
// policy of every way in (the username rules, the limits, the approval
// queue), linked to the identity, with the provider's name and address,
// then signs it in; an error is the policy's refusal (nothing is made).
func (s *Server) upstreamCreate(ctx context.Context, u db.UpstreamSession, localpart, consent string) (oauth.Page, error) {
	var mapped mappedIdentity
	_ = json.Unmarshal([]byte(u.Claims), &mapped)
	created, err := s.accounts.Create(ctx, accounts.NewAccount{Source: accounts.SourceSSO, Localpart: localpart, DisplayName: mapped.DisplayName,
		ConsentVersion: consent, ClientKey: addressKey(ctx), ExternalIDs: []db.ExternalID{{AuthProvider: u.IdpID, ExternalID: u.Subject}},
		Threepids: s.accounts.VouchedEmail(ctx, mapped.Email)})
	if err != nil {
		return oauth.Page{}, err
	}
	if created.AwaitingApproval {
		_, _ = s.store.EndUpstreamSession(ctx, u.ID)
		s.metrics.UpstreamSignIn(u.IdpID, "awaiting_approval")
		return s.message(ctx, http.StatusOK, "signup_awaiting_title", "signup_awaiting_text", "", "User", created.UserID), nil
	}
	return s.upstreamSignedIn(ctx, u, created.UserID), nil
}

// upstreamPending is the returned sign-in a username page is for, in this
// browser.
func (s *Server) upstreamPending(ctx context.Context, id string) (db.UpstreamSession, *oauth.Page) {
	u, err := s.store.UpstreamSessionByID(ctx, id)
	if err != nil || u.Status != db.UpstreamReturned {
		p := s.message(ctx, http.StatusNotFound, "expired_title", "upstream_expired_text", oauth.PathLogin)
		return u, &p
	}
	if !s.boundTo(browser(ctx), u) {
		p := s.message(ctx, http.StatusForbidden, "upstream_other_browser_title", "upstream_other_browser_text", oauth.PathLogin)
		return u, &p
	}
	return u, nil
}

func (s *Server) upstreamRegisterView(ctx context.Context, u db.UpstreamSession, username string) (*upstreamView, []*http.Cookie) {
	var mapped mappedIdentity
	_ = json.Unmarshal([]byte(u.Claims), &mapped)
	token, set := s.oauth.CSRF(browser(ctx))
	name := u.IdpID
	if p, ok := s.upstream.Provider(u.IdpID); ok {
		name = p.Info().Name
	}
	if username == "" {
		username = mapped.Localpart
	}
	v := &upstreamView{Frame: web.Frame{Title: web.T(web.Lang(ctx), "upstream_register_title"), Autofocus: "username"},
		CSRF: token, Session: u.ID, Provider: name, Username: username, DisplayName: mapped.DisplayName, Email: mapped.Email}
	if len(s.cfg.RegistrationTerms) > 0 {
		v.Terms = s.termsPolicies()
	}
	return v, oauth.Cookies(set)
}

// UpstreamRegisterPage is GET /_registrar/upstream/register: a first
// sign-in picks its username (and accepts the terms).
func (s *Server) UpstreamRegisterPage(ctx context.Context, req api.UpstreamRegisterPageRequestObject) (api.UpstreamRegisterPageResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	u, stop := s.upstreamPending(ctx, deref(req.Params.Session))
	if stop != nil {
		return pageResponse{*stop}, nil
	}
	v, cookies := s.upstreamRegisterView(ctx, u, "")
	if v.Username != "" {
		// The provider's name for the person is taken or not a username:
		// say so beside it.
		if err := s.accounts.CheckUsername(ctx, v.Username, false); err != nil {
			s.pageFailure(ctx, &v.Frame, err, map[string]string{roleUsername: "username"})
		}
	}
	return pageResponse{s.renderPage(ctx, http.StatusOK, "upstream-register", v, cookies)}, nil
}

// UpstreamRegisterSubmit is POST /_registrar/upstream/register.
func (s *Server) UpstreamRegisterSubmit(ctx context.Context, req api.UpstreamRegisterSubmitRequestObject) (api.UpstreamRegisterSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	f := req.Body
	if !s.oauth.CheckCSRF(browser(ctx), deref(f.Csrf)) {
		return pageResponse{s.oauth.CSRFFailed(ctx)}, nil
	}
	u, stop := s.upstreamPending(ctx, deref(f.Session))
	if stop != nil {
		return pageResponse{*stop}, nil
	}
	localpart := strings.ToLower(strings.TrimSpace(deref(f.Username)))
	retry := func(err error) (api.UpstreamRegisterSubmitResponseObject, error) {
		v, cookies := s.upstreamRegisterView(ctx, u, localpart)
		s.pageFailure(ctx, &v.Frame, err, map[string]string{roleUsername: "username"})
		return pageResponse{s.renderPage(ctx, pageStatus(err), "upstream-register", v, cookies)}, nil
	}
	consent := ""
	if len(s.cfg.RegistrationTerms) > 0 {
		if deref(f.AcceptTerms) == "" {
			return retry(fieldError("accept_terms", "error_accept_terms"))
		}
		consent = s.terms.Accepted()
	}
	if err := s.accounts.CheckUsername(ctx, localpart, false); err != nil {
		return retry(err)
	}
	page, err := s.upstreamCreate(ctx, u, localpart, consent)
	if err != nil {
		return retry(err)
	}
	return pageResponse{page}, nil
}

// AccountUpstreamUnlinkSubmit is POST /_registrar/account/upstream/unlink.
func (s *Server) AccountUpstreamUnlinkSubmit(ctx context.Context, req api.AccountUpstreamUnlinkSubmitRequestObject) (api.AccountUpstreamUnlinkSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	acct, br, stop := s.accountForm(ctx, b.Csrf, viewURL(viewProfile))
	if stop != nil {
		return *stop, nil
	}
	err := s.store.UnlinkExternalID(ctx, acct.UserID, deref(b.IdpId), deref(b.Subject))
	switch {
	case errors.Is(err, db.ErrLastWayIn):
		return s.account(ctx, br, acct, accountState{action: viewProfile,
			failure: &formError{status: http.StatusConflict, code: matrix.CodeForbidden, key: "upstream_last_way_in"}}), nil
	case errors.Is(err, db.ErrNotFound):
		return s.account(ctx, br, acct, accountState{action: viewProfile}), nil
	case err != nil:
		return nil, matrix.Internal(err)
	}
	s.log.InfoContext(ctx, "an upstream identity was unlinked on the account page", "user_id", acct.UserID, "idp", deref(b.IdpId))
	return s.account(ctx, br, acct, accountState{action: viewProfile, notice: "upstream_unlinked"}), nil
}

// backchannelAnswer is the empty 200 of a back-channel logout.
type backchannelAnswer struct{}

// VisitUpstreamBackchannelLogoutResponse implements api.UpstreamBackchannelLogoutResponseObject.
func (backchannelAnswer) VisitUpstreamBackchannelLogoutResponse(w http.ResponseWriter) error {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

// UpstreamBackchannelLogout is POST
// /_registrar/upstream/{idp_id}/backchannel_logout: a verified logout
// token ends the browser sessions and devices its provider session made.
func (s *Server) UpstreamBackchannelLogout(ctx context.Context, req api.UpstreamBackchannelLogoutRequestObject) (api.UpstreamBackchannelLogoutResponseObject, error) {
	p, ok := s.upstream.Provider(req.IdpId)
	if !ok || !p.Config().BackchannelLogoutEnabled {
		return nil, &oauth.Error{Status: http.StatusNotFound, Code: oauth.CodeInvalidRequest,
			Description: "no such provider, or its back-channel logout is not enabled"}
	}
	subject, sid, err := p.VerifyLogoutToken(ctx, deref(req.Body.LogoutToken))
	switch {
	case errors.Is(err, upstream.ErrUnavailable):
		s.log.WarnContext(ctx, "a back-channel logout could not be verified: the provider is unavailable", "idp", req.IdpId, "error", err)
		return nil, &oauth.Error{Status: http.StatusServiceUnavailable, Code: oauth.CodeTemporarilyUnavailble,
			Description: "the provider's keys could not be fetched"}
	case err != nil:
		s.log.WarnContext(ctx, "a back-channel logout token was refused", "idp", req.IdpId, "error", err)
		return nil, &oauth.Error{Status: http.StatusBadRequest, Code: oauth.CodeInvalidRequest, Description: "the logout token is not valid"}
	}
	users, err := s.revoking.EndUpstreamSessions(ctx, req.IdpId, subject, sid, p.Config().BackchannelLogoutIgnoreSub)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	s.log.InfoContext(ctx, "a provider ended its sessions (back-channel logout)", "idp", req.IdpId, "users", len(users))
	return backchannelAnswer{}, nil
}

// RedirectToSSO is GET /_matrix/client/v3/login/sso/redirect: the only
// provider, or a page to choose one.
func (s *Server) RedirectToSSO(ctx context.Context, req api.RedirectToSSORequestObject) (api.RedirectToSSOResponseObject, error) {
	infos := s.upstream.Infos()
	// Registrar's own pages (password and second factor) are a way too.
	own := ""
	if s.ownSSO() {
		own = "/_registrar/login?" + url.Values{"next": {"/_registrar/sso/complete?" +
			url.Values{"redirectUrl": {req.Params.RedirectUrl}}.Encode()}}.Encode()
	}
	switch {
	case len(infos) == 0 && own == "":
		return pageResponse{s.message(ctx, http.StatusNotFound, "upstream_unknown_title", "upstream_none_text", "")}, nil
	case len(infos) == 0:
		return pageResponse{oauth.Page{Status: http.StatusFound, Location: own}}, nil
	case len(infos) == 1 && own == "":
		return pageResponse{s.ssoStart(ctx, infos[0].ID, req.Params.RedirectUrl)}, nil
	}
	v := &upstreamView{Frame: web.Frame{Title: web.T(web.Lang(ctx), "sso_choose_title")}}
	if own != "" {
		v.Providers = append(v.Providers, web.ProviderLink{ID: "registrar", Name: s.site.Name(), URL: own})
	}
	for _, p := range infos {
		v.Providers = append(v.Providers, web.ProviderLink{ID: p.ID, Name: p.Name,
			URL: "/_matrix/client/v3/login/sso/redirect/" + url.PathEscape(p.ID) + "?" + url.Values{"redirectUrl": {req.Params.RedirectUrl}}.Encode()})
	}
	return pageResponse{s.renderPage(ctx, http.StatusOK, "sso-choose", v, nil)}, nil
}

// RedirectToIdP is GET /_matrix/client/v3/login/sso/redirect/{idpId}.
func (s *Server) RedirectToIdP(ctx context.Context, req api.RedirectToIdPRequestObject) (api.RedirectToIdPResponseObject, error) {
	return pageResponse{s.ssoStart(ctx, req.IdpId, req.Params.RedirectUrl)}, nil
}

// ssoStart sends a legacy client's browser to a provider; the client's
// redirectUrl is where it comes back with a login token.
func (s *Server) ssoStart(ctx context.Context, idpID, redirectURL string) oauth.Page {
	u, err := url.Parse(redirectURL)
	if err != nil || u.Scheme == "" || len(redirectURL) > 2048 || u.Scheme == "javascript" || u.Scheme == "data" {
		return s.message(ctx, http.StatusBadRequest, "error_title", "sso_bad_redirect_text", "")
	}
	return s.startUpstream(ctx, idpID, db.UpstreamSession{Purpose: db.UpstreamSSO, Next: redirectURL}, http.StatusFound)
}

// ssoBackToClient hands a legacy client its login token on its
// redirectUrl: at once when the URL is in sso.client_whitelist, else
// after the person confirms on a page naming the site (a phishing page
// could otherwise collect tokens).
func (s *Server) ssoBackToClient(ctx context.Context, redirectURL, userID, token string) oauth.Page {
	u, _ := url.Parse(redirectURL)
	q := u.Query()
	q.Set("loginToken", token)
	u.RawQuery = q.Encode()
	target := u.String()
	for _, prefix := range s.cfg.SSO.ClientWhitelist {
		if strings.HasPrefix(redirectURL, prefix) {
			return oauth.Page{Status: http.StatusFound, Location: target}
		}
	}
	host := u.Host
	if host == "" {
		host = u.Scheme + ":"
	}
	v := &upstreamView{Frame: web.Frame{Title: web.T(web.Lang(ctx), "sso_confirm_title")}, User: userID, Host: host, Continue: target}
	return s.renderPage(ctx, http.StatusOK, "sso-confirm", v, nil)
}
