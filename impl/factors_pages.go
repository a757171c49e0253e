package impl

import (
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"registrar/api"
	"registrar/db"
	"registrar/impl/factors"
	"registrar/impl/matrix"
	"registrar/impl/oauth"
	"registrar/impl/secrets"
	"registrar/impl/uia"
	"registrar/impl/web"
)

// Second factors on the pages: a sign-in whose password is right waits,
// under a cookie, for the account's second factor (a code, or a passkey
// through the pages' script); a passkey alone signs in without a
// username; sensitive account actions ask for a fresh factor (step-up);
// the legacy API refuses a password login of an account with a factor
// and sends clients to these pages instead (m.login.sso, then
// m.login.token).

const (
	// factorCookie names the browser's challenge.
	factorCookie = "registrar_factor"
	// factorLifetime is how long a sign-in waits for its second factor.
	factorLifetime = 10 * time.Minute
	// stepUpWindow is how long a proved factor counts for sensitive
	// actions.
	stepUpWindow = 10 * time.Minute
	// Challenge purposes.
	challengeSignIn   = "signin"
	challengeStepUp   = "stepup"
	challengePasskey  = "passkey"
	challengeRegister = "register"
	challengeUIA      = "uia"
	// viewSecurity is the account's second factors.
	viewSecurity = "security"
)

// errSecondFactorRequired answers a legacy password login of an account
// with a second factor: no token; the client signs in through the pages
// (m.login.sso offered by GET /login, then m.login.token).
var errSecondFactorRequired = &matrix.Error{Status: http.StatusForbidden, Code: CodeSecondFactorRequired,
	Message: "This account has a second factor: sign in through the browser (single sign-on) instead"}

// CodeSecondFactorRequired is that refusal's errcode (registrar's own).
const CodeSecondFactorRequired = "ORG.REGISTRAR.SECOND_FACTOR_REQUIRED"

var _ = web.Register(`
{{define "factor"}}{{template "head" .}}
<p id="intro">{{if .StepUp}}{{t "factor_stepup_intro"}}{{else}}{{t "factor_intro"}}{{end}}</p>
<form method="post" action="/_registrar/login/factor"><input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="field"><label for="code">{{t "factor_code"}}</label>
{{template "_input" (.Input "code" "text" "one-time-code" "" "code-hint")}}
<p class="hint" id="code-hint">{{t "factor_code_hint"}}</p>{{template "_error" (.ErrorOf "code")}}</div>
<div class="actions"><button type="submit" id="submit">{{t "continue"}}</button></div></form>
{{if .WebAuthn}}<div class="providers"><p class="divider"><span>{{t "providers_or"}}</span></p>
<button type="button" class="secondary" id="use-key" data-webauthn="factor" data-csrf="{{.CSRF}}" hidden>{{t "factor_use_key"}}</button>
<p class="field-error" id="passkey-error" role="alert" hidden></p></div>{{end}}
{{template "foot" .}}{{end}}

{{define "security"}}{{template "head" .}}{{template "_nav" .}}
{{if .Required}}<p class="alert notice" id="required">{{t "security_required"}}</p>{{end}}
<section aria-labelledby="factors-heading"><h2 id="factors-heading">{{t "security_factors"}}</h2>
{{if .Factors}}<ul class="sessions" id="factors">{{range .Factors}}<li class="session" id="factor-{{.ID}}"><div class="what"><div class="name">{{.Name}}</div>
<div class="meta">{{.Kind}} · {{t "security_added" "When" .Added}}{{if .LastUsed}} · {{t "security_last_used" "When" .LastUsed}}{{end}}</div></div>
<form method="post" action="/_registrar/account/factors/remove"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="id" value="{{.ID}}">
<button type="submit" class="secondary" id="remove-{{.ID}}" aria-label="{{t "security_remove_named" "Name" .Name}}">{{t "remove"}}</button></form></li>{{end}}</ul>
{{else}}<p id="factors">{{t "security_none"}}</p>{{end}}
<div class="actions">{{if .TOTPOn}}<form method="post" action="/_registrar/account/factors/totp"><input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" id="add-totp">{{t "security_add_totp"}}</button></form>{{end}}
{{if .WebAuthnOn}}<button type="button" class="secondary" id="add-passkey" data-webauthn="register" data-csrf="{{.CSRF}}" data-name="{{t "security_passkey_name"}}" hidden>{{t "security_add_passkey"}}</button>{{end}}</div>
<p class="field-error" id="passkey-error" role="alert" hidden></p></section>
{{if .Factors}}<section aria-labelledby="recovery-heading"><h2 id="recovery-heading">{{t "security_recovery"}}</h2>
<p id="recovery-left">{{t "security_recovery_left" "Count" .RecoveryLeft}}</p>
<form method="post" action="/_registrar/account/factors/recovery"><input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="actions"><button type="submit" class="secondary" id="new-recovery">{{t "security_recovery_new"}}</button></div></form></section>{{end}}
{{template "foot" .}}{{end}}

{{define "security-totp"}}{{template "head" .}}{{template "_nav" .}}
<p>{{t "totp_scan"}}</p>
<p><img src="{{.QR}}" alt="{{t "totp_qr_alt"}}" width="240" height="240" id="totp-qr"></p>
<p>{{t "totp_type"}} <code id="totp-secret">{{.TOTP.Secret}}</code></p>
<form method="post" action="/_registrar/account/factors/totp/confirm"><input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="id" value="{{.TOTP.ID}}">
<div class="field"><label for="code">{{t "factor_code"}}</label>{{template "_input" (.Input "code" "text" "one-time-code" "")}}{{template "_error" (.ErrorOf "code")}}</div>
<div class="field"><label for="name">{{t "totp_name"}}</label><input type="text" id="name" name="name" value="{{t "totp_default_name"}}" autocomplete="off" maxlength="64"></div>
<div class="actions"><button type="submit" id="confirm-totp">{{t "totp_confirm"}}</button></div></form>{{template "foot" .}}{{end}}

{{define "security-recovery"}}{{template "head" .}}{{template "_nav" .}}
<p>{{t "recovery_intro"}}</p>
<ul class="codes" id="recovery-codes">{{range .RecoveryCodes}}<li><code>{{.}}</code></li>{{end}}</ul>
<p class="actions"><a class="button" href="/_registrar/account?action=security" id="done">{{t "recovery_done"}}</a></p>{{template "foot" .}}{{end}}

{{define "fallback-factor"}}{{template "head" .}}<p id="intro">{{t "factor_stepup_intro"}}</p>
<form method="post" action=""><div class="field"><label for="code">{{t "factor_code"}}</label>
{{template "_input" (.Input "code" "text" "one-time-code" "")}}{{template "_error" (.ErrorOf "code")}}</div>
<div class="actions"><button type="submit" id="submit">{{t "continue"}}</button></div></form>
{{if .WebAuthn}}<button type="button" class="secondary" id="use-key" data-webauthn="uia" data-session="{{.Session}}" hidden>{{t "factor_use_key"}}</button>
<p class="field-error" id="passkey-error" role="alert" hidden></p>{{end}}{{template "foot" .}}{{end}}
`)

// factorView is what the second factor pages show.
type factorView struct {
	web.Frame
	CSRF     string
	StepUp   bool
	WebAuthn bool
	Session  string
}

// factorRow is a factor as the security page lists it.
type factorRow struct{ ID, Kind, Name, Added, LastUsed string }

// challengeOf is the browser's challenge, if one is live.
func (s *Server) challengeOf(ctx context.Context, b oauth.Browser) (db.FactorChallenge, bool) {
	for _, c := range b.Cookies {
		if c.Name == factorCookie && c.Value != "" {
			ch, err := s.store.FactorChallengeByID(ctx, secrets.HashToken(c.Value))
			return ch, err == nil
		}
	}
	return db.FactorChallenge{}, false
}

// newChallenge stores a challenge and returns its cookie.
func (s *Server) newChallenge(ctx context.Context, c db.FactorChallenge) (*http.Cookie, error) {
	value := secrets.RandomString(32)
	c.IDHash, c.ExpiresAt = secrets.HashToken(value), s.now().Add(factorLifetime).UnixMilli()
	if err := s.store.SaveFactorChallenge(ctx, c); err != nil {
		return nil, matrix.Internal(err)
	}
	return &http.Cookie{Name: factorCookie, Value: value, Path: "/_registrar/", MaxAge: int(factorLifetime.Seconds()), HttpOnly: true,
		Secure: strings.HasPrefix(s.cfg.PublicBaseURL, "https://"), SameSite: http.SameSiteLaxMode}, nil
}

// clearChallenge is the cookie that forgets the browser's challenge.
func (s *Server) clearChallenge() *http.Cookie {
	return &http.Cookie{Name: factorCookie, Value: "", Path: "/_registrar/", MaxAge: -1, HttpOnly: true,
		Secure: strings.HasPrefix(s.cfg.PublicBaseURL, "https://"), SameSite: http.SameSiteLaxMode}
}

// required reports whether the account must have a second factor.
func (s *Server) required(acct db.Account) bool {
	return s.cfg.SecondFactors.Required(acct.UserID, acct.Admin)
}

// afterPassword is the sign-in page's step after a right password: the
// second factor when the account has one; a required one to enrol.
func (s *Server) afterPassword(ctx context.Context, b oauth.Browser, acct db.Account, next string) *oauth.Page {
	sum, err := s.factors.Of(ctx, acct.UserID)
	if err != nil {
		p := s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
		return &p
	}
	if !sum.Enrolled() {
		if !s.required(acct) {
			return nil
		}
		// Signed in, but first to the security page to enrol.
		cookie, err := s.oauth.StartSession(ctx, b, acct.UserID)
		if err != nil {
			p := s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
			return &p
		}
		p := oauth.Redirect(viewURL(viewSecurity), cookie)
		return &p
	}
	cookie, err := s.newChallenge(ctx, db.FactorChallenge{UserID: acct.UserID, Purpose: challengeSignIn, Next: next})
	if err != nil {
		p := s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
		return &p
	}
	p := oauth.Redirect("/_registrar/login/factor", cookie)
	return &p
}

// factorGate sends an account that must enrol a second factor, and has
// none, to the security page before it authorises anything.
func (s *Server) factorGate(ctx context.Context, acct db.Account) string {
	if !s.required(acct) {
		return ""
	}
	if sum, err := s.factors.Of(ctx, acct.UserID); err == nil && sum.Enrolled() {
		return ""
	}
	return viewURL(viewSecurity)
}

// needsStepUp is the redirect to prove a factor again before a sensitive
// action (returnTo afterwards), or nil when the browser proved one within
// the window or the account has none.
func (s *Server) needsStepUp(ctx context.Context, b oauth.Browser, acct db.Account, returnTo string) *oauth.Page {
	if s.factors == nil {
		return nil
	}
	sum, err := s.factors.Of(ctx, acct.UserID)
	if err != nil || !sum.Enrolled() {
		return nil
	}
	if at, err := s.store.BrowserFactorAt(ctx, s.oauth.CurrentSession(b)); err == nil && at != nil &&
		s.now().Sub(time.UnixMilli(*at)) < stepUpWindow {
		return nil
	}
	cookie, err := s.newChallenge(ctx, db.FactorChallenge{UserID: acct.UserID, Purpose: challengeStepUp, Next: returnTo})
	if err != nil {
		p := s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
		return &p
	}
	p := oauth.Redirect("/_registrar/login/factor", cookie)
	return &p
}

// FactorPage is GET /_registrar/login/factor.
func (s *Server) FactorPage(ctx context.Context, _ api.FactorPageRequestObject) (api.FactorPageResponseObject, error) {
	if err := s.factorsOn(); err != nil {
		return nil, err
	}
	c, ok := s.challengeOf(ctx, browser(ctx))
	if !ok || (c.Purpose != challengeSignIn && c.Purpose != challengeStepUp) {
		return pageResponse{s.message(ctx, http.StatusNotFound, "expired_title", "factor_expired_text", oauth.PathLogin)}, nil
	}
	return pageResponse{s.factorPage(ctx, c, nil)}, nil
}

func (s *Server) factorPage(ctx context.Context, c db.FactorChallenge, failure error) oauth.Page {
	token, set := s.oauth.CSRF(browser(ctx))
	lang := web.Lang(ctx)
	v := &factorView{Frame: web.Frame{Title: web.T(lang, "factor_title"), Autofocus: "code"}, CSRF: token, StepUp: c.Purpose == challengeStepUp}
	if sum, err := s.factors.Of(ctx, c.UserID); err == nil {
		v.WebAuthn = sum.WebAuthn() && s.factors.WebAuthnAvailable()
	}
	status := http.StatusOK
	if failure != nil {
		s.pageFailure(ctx, &v.Frame, failure, map[string]string{roleCode: "code"})
		status = pageStatus(failure)
	}
	return s.renderPage(ctx, status, "factor", v, oauth.Cookies(set))
}

// FactorSubmit is POST /_registrar/login/factor: a code of the account's
// authenticator app, or a recovery code.
func (s *Server) FactorSubmit(ctx context.Context, req api.FactorSubmitRequestObject) (api.FactorSubmitResponseObject, error) {
	if err := s.factorsOn(); err != nil {
		return nil, err
	}
	b := browser(ctx)
	if !s.oauth.CheckCSRF(b, deref(req.Body.Csrf)) {
		return pageResponse{s.oauth.CSRFFailed(ctx)}, nil
	}
	c, ok := s.challengeOf(ctx, b)
	if !ok || (c.Purpose != challengeSignIn && c.Purpose != challengeStepUp) {
		return pageResponse{s.message(ctx, http.StatusNotFound, "expired_title", "factor_expired_text", oauth.PathLogin)}, nil
	}
	if err := s.checkCode(ctx, c.UserID, deref(req.Body.Code)); err != nil {
		return pageResponse{s.factorPage(ctx, c, err)}, nil
	}
	return pageResponse{s.passChallenge(ctx, b, c)}, nil
}

// checkCode checks a typed second factor with the account's failure
// limit.
func (s *Server) checkCode(ctx context.Context, userID, code string) error {
	if err := s.accounts.CheckFactorAttempts(userID); err != nil {
		return err
	}
	kind, err := s.factors.VerifyCode(ctx, userID, code)
	if err != nil {
		s.accounts.FailedFactor(userID)
		s.metrics.LoginOutcome("second_factor", matrix.From(err).Code)
		return fieldError("code", "error_factor_code")
	}
	s.metrics.LoginOutcome("second_factor", "success")
	if kind == db.FactorRecovery {
		s.log.InfoContext(ctx, "a recovery code was used", "user_id", userID)
	}
	return nil
}

// passChallenge finishes a passed challenge: a sign-in's session starts
// (its factor proved), a step-up marks the browser's session; then on.
func (s *Server) passChallenge(ctx context.Context, b oauth.Browser, c db.FactorChallenge) oauth.Page {
	if ended, err := s.store.EndFactorChallenge(ctx, c.IDHash); err != nil || !ended {
		return s.message(ctx, http.StatusNotFound, "expired_title", "factor_expired_text", oauth.PathLogin)
	}
	next := oauth.LocalNext(c.Next)
	if c.Purpose == challengeStepUp {
		if err := s.store.MarkFactorProved(ctx, s.oauth.CurrentSession(b)); err != nil {
			return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
		}
		if next == "" {
			next = oauth.PathAccount
		}
		return oauth.Redirect(next, s.clearChallenge())
	}
	acct, err := s.store.AccountByUserID(ctx, c.UserID)
	switch {
	case err != nil:
		return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
	case acct.Deactivated():
		return s.message(ctx, http.StatusForbidden, "error_title", "error_deactivated", oauth.PathLogin)
	case acct.Locked:
		return s.message(ctx, http.StatusForbidden, "error_title", "error_locked", oauth.PathLogin)
	case acct.ApprovalPending:
		return s.message(ctx, http.StatusForbidden, "error_title", "error_awaiting_approval", oauth.PathLogin)
	}
	cookie, err := s.oauth.StartSession(ctx, b, c.UserID)
	if err != nil {
		return s.message(ctx, http.StatusInternalServerError, "error_title", "error_internal", "")
	}
	if err := s.store.MarkFactorProved(ctx, secrets.HashToken(cookie.Value)); err != nil {
		s.log.WarnContext(ctx, "marking a proved factor failed", "error", err)
	}
	s.log.InfoContext(ctx, "signed in with a second factor", "user_id", c.UserID)
	if next == "" {
		next = oauth.PathAccount
	}
	return oauth.Redirect(next, cookie, s.clearChallenge())
}

// factorsOn answers 404 where second factors are off.
func (s *Server) factorsOn() error {
	if s.factors == nil || s.oauth == nil {
		return matrix.NotFound("Second factors are not enabled on this server")
	}
	return nil
}

// securityView fills the security page.
func (s *Server) securityView(ctx context.Context, acct db.Account, v *accountView) {
	lang := web.Lang(ctx)
	sum, err := s.factors.Of(ctx, acct.UserID)
	if err != nil {
		s.log.ErrorContext(ctx, "reading second factors failed", "error", err)
	}
	kinds := map[string]string{db.FactorTOTP: web.T(lang, "factor_kind_totp"), db.FactorWebAuthn: web.T(lang, "factor_kind_webauthn")}
	for _, f := range sum.Factors {
		row := factorRow{ID: f.ID, Kind: kinds[f.Kind], Name: f.Name, Added: web.FormatTime(lang, time.UnixMilli(f.CreatedAt))}
		if f.LastUsedAt != nil {
			row.LastUsed = web.Ago(lang, time.UnixMilli(*f.LastUsedAt), s.now())
		}
		v.Factors = append(v.Factors, row)
	}
	v.RecoveryLeft = sum.RecoveryLeft
	v.TOTPOn, v.WebAuthnOn = s.cfg.SecondFactors.TOTPEnabled(), s.factors.WebAuthnAvailable()
	v.Required = s.required(acct) && !sum.Enrolled()
}

// factorAudit is the audit entry of a person's own change of factors.
func factorAudit(ctx context.Context, userID, action string, detail map[string]any) context.Context {
	return db.WithAudit(ctx, db.AuditEntry{Actor: userID, Action: action, Target: userID, Detail: detail})
}

// notifyFactors mails the account's verified addresses that its factors
// changed.
func (s *Server) notifyFactors(ctx context.Context, userID, event string) {
	tps, err := s.store.Threepids(ctx, userID)
	if err != nil {
		return
	}
	var to []string
	for _, tp := range tps {
		if tp.Medium == db.MediumEmail {
			to = append(to, tp.Address)
		}
	}
	if len(to) > 0 {
		go s.threepids.NotifySecurity(context.WithoutCancel(ctx), userID, to, event)
	}
}

// factorForm checks a security form: CSRF, the signed-in browser, and a
// fresh factor.
func (s *Server) factorForm(ctx context.Context, csrf *string) (db.Account, oauth.Browser, *pageResponse) {
	if err := s.factorsOn(); err != nil {
		p := pageResponse{s.message(ctx, http.StatusNotFound, "error_title", "error_not_found", "")}
		return db.Account{}, oauth.Browser{}, &p
	}
	acct, b, stop := s.accountForm(ctx, csrf, viewURL(viewSecurity))
	if stop != nil {
		return acct, b, stop
	}
	if p := s.needsStepUp(ctx, b, acct, viewURL(viewSecurity)); p != nil {
		return acct, b, &pageResponse{*p}
	}
	return acct, b, nil
}

// AccountTotpStart is POST /_registrar/account/factors/totp.
func (s *Server) AccountTotpStart(ctx context.Context, req api.AccountTotpStartRequestObject) (api.AccountTotpStartResponseObject, error) {
	acct, b, stop := s.factorForm(ctx, req.Body.Csrf)
	if stop != nil {
		return *stop, nil
	}
	enrol, err := s.factors.StartTOTP(ctx, acct.UserID)
	if err != nil {
		return nil, err
	}
	return s.totpPage(ctx, b, acct, enrol, nil), nil
}

func (s *Server) totpPage(ctx context.Context, b oauth.Browser, acct db.Account, enrol factors.TOTPEnrolment, failure error) pageResponse {
	v, cookies := s.accountBase(ctx, b, acct, web.T(web.Lang(ctx), "totp_title"), viewSecurity)
	v.TOTP, v.Autofocus, v.Here = &enrol, "code", viewURL(viewSecurity)
	if strings.HasPrefix(enrol.QR, "data:image/png;base64,") {
		v.QR = template.URL(enrol.QR) // a PNG made here
	}
	status := http.StatusOK
	if failure != nil {
		s.pageFailure(ctx, &v.Frame, failure, map[string]string{roleCode: "code"})
		status = pageStatus(failure)
	}
	return s.renderAccount(ctx, status, "security-totp", v, cookies)
}

// AccountTotpConfirm is POST /_registrar/account/factors/totp/confirm: the
// first code proves the app; a first factor comes with recovery codes.
func (s *Server) AccountTotpConfirm(ctx context.Context, req api.AccountTotpConfirmRequestObject) (api.AccountTotpConfirmResponseObject, error) {
	acct, b, stop := s.factorForm(ctx, req.Body.Csrf)
	if stop != nil {
		return *stop, nil
	}
	id, name := deref(req.Body.Id), strings.TrimSpace(deref(req.Body.Name))
	if len(name) > 64 {
		name = name[:64]
	}
	if err := s.accounts.CheckFactorAttempts(acct.UserID); err != nil {
		return s.account(ctx, b, acct, accountState{action: viewSecurity, failure: err}), nil
	}
	before, _ := s.factors.Of(ctx, acct.UserID)
	err := s.factors.ConfirmTOTP(factorAudit(ctx, acct.UserID, "second_factor_add", map[string]any{"kind": db.FactorTOTP}), acct.UserID, id,
		deref(req.Body.Code), name)
	if err != nil {
		s.accounts.FailedFactor(acct.UserID)
		enrol, perr := s.factors.PendingTOTP(ctx, acct.UserID, id)
		if perr != nil {
			return s.account(ctx, b, acct, accountState{action: viewSecurity}), nil
		}
		return s.totpPage(ctx, b, acct, enrol, fieldError("code", "error_factor_code")), nil
	}
	if err := s.store.MarkFactorProved(ctx, s.oauth.CurrentSession(b)); err != nil {
		s.log.WarnContext(ctx, "marking a proved factor failed", "error", err)
	}
	s.log.InfoContext(ctx, "an authenticator app was added", "user_id", acct.UserID)
	s.notifyFactors(ctx, acct.UserID, "an authenticator app was added")
	if !before.Enrolled() {
		return s.recoveryPage(ctx, b, acct)
	}
	return s.account(ctx, b, acct, accountState{action: viewSecurity, notice: "security_added_notice"}), nil
}

// recoveryPage makes a new set of recovery codes and shows them once.
func (s *Server) recoveryPage(ctx context.Context, b oauth.Browser, acct db.Account) (pageResponse, error) {
	codes, err := s.factors.NewRecoveryCodes(factorAudit(ctx, acct.UserID, "recovery_codes", map[string]any{}), acct.UserID)
	if err != nil {
		return pageResponse{}, err
	}
	v, cookies := s.accountBase(ctx, b, acct, web.T(web.Lang(ctx), "recovery_title"), viewSecurity)
	v.RecoveryCodes, v.Here = codes, viewURL(viewSecurity)
	return s.renderAccount(ctx, http.StatusOK, "security-recovery", v, cookies), nil
}

// AccountRecoveryCodes is POST /_registrar/account/factors/recovery.
func (s *Server) AccountRecoveryCodes(ctx context.Context, req api.AccountRecoveryCodesRequestObject) (api.AccountRecoveryCodesResponseObject, error) {
	acct, b, stop := s.factorForm(ctx, req.Body.Csrf)
	if stop != nil {
		return *stop, nil
	}
	sum, err := s.factors.Of(ctx, acct.UserID)
	if err != nil || !sum.Enrolled() {
		return s.account(ctx, b, acct, accountState{action: viewSecurity}), nil
	}
	s.notifyFactors(ctx, acct.UserID, "new recovery codes were made")
	return s.recoveryPage(ctx, b, acct)
}

// AccountFactorRemove is POST /_registrar/account/factors/remove.
func (s *Server) AccountFactorRemove(ctx context.Context, req api.AccountFactorRemoveRequestObject) (api.AccountFactorRemoveResponseObject, error) {
	acct, b, stop := s.factorForm(ctx, req.Body.Csrf)
	if stop != nil {
		return *stop, nil
	}
	id := deref(req.Body.Id)
	if err := s.factors.Remove(factorAudit(ctx, acct.UserID, "second_factor_remove", map[string]any{"id": id}), acct.UserID, id); err != nil {
		return s.account(ctx, b, acct, accountState{action: viewSecurity, failure: err}), nil
	}
	s.log.InfoContext(ctx, "a second factor was removed", "user_id", acct.UserID)
	s.notifyFactors(ctx, acct.UserID, "a second factor was removed")
	return s.account(ctx, b, acct, accountState{action: viewSecurity, notice: "security_removed_notice"}), nil
}

// SsoComplete is GET /_registrar/sso/complete: the legacy m.login.sso flow
// through registrar's own pages (password and second factor) hands the
// client a login token.
func (s *Server) SsoComplete(ctx context.Context, req api.SsoCompleteRequestObject) (api.SsoCompleteResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	redirectURL := req.Params.RedirectUrl
	u, err := url.Parse(redirectURL)
	if err != nil || u.Scheme == "" || u.Scheme == "javascript" || u.Scheme == "data" || len(redirectURL) > 2048 {
		return pageResponse{s.message(ctx, http.StatusBadRequest, "error_title", "sso_bad_redirect_text", "")}, nil
	}
	self := "/_registrar/sso/complete?" + url.Values{"redirectUrl": {redirectURL}}.Encode()
	acct, _, signIn := s.accountSession(ctx, self)
	if signIn != nil {
		return pageResponse{*signIn}, nil
	}
	token, _, err := s.accounts.NewLoginToken(ctx, acct.UserID, ssoLoginTokenLifetime)
	if err != nil {
		return nil, err
	}
	return pageResponse{s.ssoBackToClient(ctx, redirectURL, acct.UserID, token)}, nil
}

// webauthnResponse is a WebAuthn ceremony's JSON answer, with the
// challenge's cookie.
type webauthnResponse struct {
	body    any
	cookies []*http.Cookie
}

func (r webauthnResponse) write(w http.ResponseWriter) error {
	for _, c := range r.cookies {
		w.Header().Add("Set-Cookie", c.String())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(r.body)
}

// VisitWebauthnRegisterBeginResponse implements api.WebauthnRegisterBeginResponseObject.
func (r webauthnResponse) VisitWebauthnRegisterBeginResponse(w http.ResponseWriter) error {
	return r.write(w)
}

// VisitWebauthnRegisterFinishResponse implements api.WebauthnRegisterFinishResponseObject.
func (r webauthnResponse) VisitWebauthnRegisterFinishResponse(w http.ResponseWriter) error {
	return r.write(w)
}

// VisitWebauthnLoginBeginResponse implements api.WebauthnLoginBeginResponseObject.
func (r webauthnResponse) VisitWebauthnLoginBeginResponse(w http.ResponseWriter) error {
	return r.write(w)
}

// VisitWebauthnLoginFinishResponse implements api.WebauthnLoginFinishResponseObject.
func (r webauthnResponse) VisitWebauthnLoginFinishResponse(w http.ResponseWriter) error {
	return r.write(w)
}

var (
	errNoCeremony = matrix.Forbidden("No ceremony in progress; start again")
	errBadCSRF    = matrix.Forbidden("The form has expired; reload the page")
)

// options turns a ceremony's options into the JSON body.
func options(raw []byte) (any, error) {
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, matrix.Internal(err)
	}
	return out, nil
}

// WebauthnRegisterBegin is POST /_registrar/webauthn/register/begin.
func (s *Server) WebauthnRegisterBegin(ctx context.Context, req api.WebauthnRegisterBeginRequestObject) (api.WebauthnRegisterBeginResponseObject, error) {
	acct, b, err := s.webauthnAccount(ctx, req.Body.Csrf)
	if err != nil {
		return nil, err
	}
	if p := s.needsStepUp(ctx, b, acct, viewURL(viewSecurity)); p != nil {
		return webauthnResponse{body: map[string]any{"location": p.Location}, cookies: p.Cookies}, nil
	}
	opts, ceremony, err := s.factors.BeginRegistration(ctx, acct.UserID, acct.DisplayName)
	if err != nil {
		return nil, err
	}
	cookie, err := s.newChallenge(ctx, db.FactorChallenge{UserID: acct.UserID, Purpose: challengeRegister, Ceremony: ceremony})
	if err != nil {
		return nil, err
	}
	body, err := options(opts)
	if err != nil {
		return nil, err
	}
	return webauthnResponse{body: body, cookies: []*http.Cookie{cookie}}, nil
}

// webauthnAccount is the signed-in account of a WebAuthn request with its
// CSRF token.
func (s *Server) webauthnAccount(ctx context.Context, csrf *string) (db.Account, oauth.Browser, error) {
	if err := s.factorsOn(); err != nil || !s.factors.WebAuthnAvailable() {
		return db.Account{}, oauth.Browser{}, matrix.NotFound("Passkeys are not enabled on this server")
	}
	b := browser(ctx)
	if !s.oauth.CheckCSRF(b, deref(csrf)) {
		return db.Account{}, b, errBadCSRF
	}
	acct, ok := s.oauth.SignedIn(ctx, b)
	if !ok {
		return db.Account{}, b, matrix.Forbidden("Sign in first")
	}
	return acct, b, nil
}

// credentialJSON is the authenticator's answer as the library reads it.
func credentialJSON(c *map[string]any) ([]byte, error) {
	if c == nil {
		return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing credential")
	}
	return json.Marshal(*c)
}

// WebauthnRegisterFinish is POST /_registrar/webauthn/register/finish.
func (s *Server) WebauthnRegisterFinish(ctx context.Context, req api.WebauthnRegisterFinishRequestObject) (api.WebauthnRegisterFinishResponseObject, error) {
	acct, b, err := s.webauthnAccount(ctx, req.Body.Csrf)
	if err != nil {
		return nil, err
	}
	c, ok := s.challengeOf(ctx, b)
	if !ok || c.Purpose != challengeRegister || c.UserID != acct.UserID {
		return nil, errNoCeremony
	}
	if ended, _ := s.store.EndFactorChallenge(ctx, c.IDHash); !ended {
		return nil, errNoCeremony
	}
	raw, err := credentialJSON(req.Body.Credential)
	if err != nil {
		return nil, err
	}
	before, _ := s.factors.Of(ctx, acct.UserID)
	name := strings.TrimSpace(deref(req.Body.Name))
	if len(name) > 64 {
		name = name[:64]
	}
	if err := s.factors.FinishRegistration(factorAudit(ctx, acct.UserID, "second_factor_add", map[string]any{"kind": db.FactorWebAuthn}),
		acct.UserID, c.Ceremony, raw, name); err != nil {
		return nil, err
	}
	if err := s.store.MarkFactorProved(ctx, s.oauth.CurrentSession(b)); err != nil {
		s.log.WarnContext(ctx, "marking a proved factor failed", "error", err)
	}
	s.log.InfoContext(ctx, "a passkey was added", "user_id", acct.UserID)
	s.notifyFactors(ctx, acct.UserID, "a passkey or security key was added")
	location := viewURL(viewSecurity)
	if !before.Enrolled() {
		// A first factor: the page asks for recovery codes next.
		location += "&first=1"
	}
	return webauthnResponse{body: map[string]any{"location": location}, cookies: []*http.Cookie{s.clearChallenge()}}, nil
}

// WebauthnLoginBegin is POST /_registrar/webauthn/login/begin: a passkey
// sign-in (no username), the second factor of a sign-in or step-up, or a
// UIA stage's.
func (s *Server) WebauthnLoginBegin(ctx context.Context, req api.WebauthnLoginBeginRequestObject) (api.WebauthnLoginBeginResponseObject, error) {
	if err := s.factorsOn(); err != nil || !s.factors.WebAuthnAvailable() {
		return nil, matrix.NotFound("Passkeys are not enabled on this server")
	}
	b := browser(ctx)
	body := req.Body
	var userID string
	var c db.FactorChallenge
	switch deref(body.Purpose) {
	case challengePasskey:
		if !s.oauth.CheckCSRF(b, deref(body.Csrf)) {
			return nil, errBadCSRF
		}
		c = db.FactorChallenge{Purpose: challengePasskey, Next: oauth.LocalNext(deref(body.Next))}
	case "factor":
		if !s.oauth.CheckCSRF(b, deref(body.Csrf)) {
			return nil, errBadCSRF
		}
		var ok bool
		if c, ok = s.challengeOf(ctx, b); !ok || (c.Purpose != challengeSignIn && c.Purpose != challengeStepUp) {
			return nil, errNoCeremony
		}
		userID = c.UserID
	case challengeUIA:
		sess, err := s.uia.LoadAny(ctx, deref(body.Session))
		if err != nil || sess.Requester == "" {
			return nil, errNoCeremony
		}
		userID = sess.Requester
		c = db.FactorChallenge{UserID: userID, Purpose: challengeUIA, Next: deref(body.Session)}
	default:
		return nil, matrix.BadRequest(matrix.CodeInvalidParam, "purpose must be passkey, factor or uia")
	}
	opts, ceremony, err := s.factors.BeginLogin(ctx, userID)
	if err != nil {
		return nil, err
	}
	c.Ceremony = ceremony
	var cookies []*http.Cookie
	if c.IDHash != "" {
		c.ExpiresAt = s.now().Add(factorLifetime).UnixMilli()
		if err := s.store.SaveFactorChallenge(ctx, c); err != nil {
			return nil, matrix.Internal(err)
		}
	} else {
		cookie, err := s.newChallenge(ctx, c)
		if err != nil {
			return nil, err
		}
		cookies = append(cookies, cookie)
	}
	out, err := options(opts)
	if err != nil {
		return nil, err
	}
	return webauthnResponse{body: out, cookies: cookies}, nil
}

// WebauthnLoginFinish is POST /_registrar/webauthn/login/finish.
func (s *Server) WebauthnLoginFinish(ctx context.Context, req api.WebauthnLoginFinishRequestObject) (api.WebauthnLoginFinishResponseObject, error) {
	if err := s.factorsOn(); err != nil || !s.factors.WebAuthnAvailable() {
		return nil, matrix.NotFound("Passkeys are not enabled on this server")
	}
	b := browser(ctx)
	c, ok := s.challengeOf(ctx, b)
	if !ok || c.Ceremony == "" {
		return nil, errNoCeremony
	}
	if c.Purpose != challengeUIA && !s.oauth.CheckCSRF(b, deref(req.Body.Csrf)) {
		return nil, errBadCSRF
	}
	if c.UserID != "" {
		if err := s.accounts.CheckFactorAttempts(c.UserID); err != nil {
			return nil, err
		}
	}
	raw, err := credentialJSON(req.Body.Credential)
	if err != nil {
		return nil, err
	}
	userID, err := s.factors.FinishLogin(ctx, c.UserID, c.Ceremony, raw)
	if err != nil {
		if c.UserID != "" {
			s.accounts.FailedFactor(c.UserID)
		}
		s.metrics.LoginOutcome("webauthn", matrix.CodeForbidden)
		return nil, err
	}
	s.metrics.LoginOutcome("webauthn", "success")
	if c.Purpose == challengeUIA {
		if ended, _ := s.store.EndFactorChallenge(ctx, c.IDHash); !ended {
			return nil, errNoCeremony
		}
		sess, err := s.uia.LoadAny(ctx, c.Next)
		if err != nil || sess.Requester != userID {
			return nil, errNoCeremony
		}
		if err := s.uia.Complete(ctx, sess, uia.TypeSecondFactor, userID); err != nil {
			return nil, matrix.Internal(err)
		}
		return webauthnResponse{body: map[string]any{"done": true}, cookies: []*http.Cookie{s.clearChallenge()}}, nil
	}
	if c.UserID == "" {
		c.UserID = userID // a passkey names its account
	}
	page := s.passChallenge(ctx, b, c)
	if page.Location == "" {
		return nil, matrix.Forbidden("This account may not sign in")
	}
	return webauthnResponse{body: map[string]any{"location": page.Location}, cookies: page.Cookies}, nil
}

// AdminSecondFactors is GET /_registrar/admin/v1/users/{userId}/second_factors.
func (s *Server) AdminSecondFactors(ctx context.Context, req api.AdminSecondFactorsRequestObject) (api.AdminSecondFactorsResponseObject, error) {
	if _, err := adminActor(ctx); err != nil {
		return nil, err
	}
	all, err := s.users.SecondFactors(ctx, req.UserId)
	if err != nil {
		return nil, err
	}
	out := api.AdminSecondFactors200JSONResponse{}
	for _, f := range all {
		if f.Kind == db.FactorRecovery {
			out.RecoveryCodesLeft++
			continue
		}
		if !f.Confirmed {
			continue
		}
		out.Factors = append(out.Factors, struct {
			CreatedTs  int64  `json:"created_ts"`
			Id         string `json:"id"`
			Kind       string `json:"kind"`
			LastUsedTs *int64 `json:"last_used_ts,omitempty"`
			Name       string `json:"name"`
		}{CreatedTs: f.CreatedAt, Id: f.ID, Kind: f.Kind, LastUsedTs: f.LastUsedAt, Name: f.Name})
	}
	if out.Factors == nil {
		out.Factors = []struct {
			CreatedTs  int64  `json:"created_ts"`
			Id         string `json:"id"`
			Kind       string `json:"kind"`
			LastUsedTs *int64 `json:"last_used_ts,omitempty"`
			Name       string `json:"name"`
		}{}
	}
	return out, nil
}

// AdminResetSecondFactors is DELETE
// /_registrar/admin/v1/users/{userId}/second_factors (audited).
func (s *Server) AdminResetSecondFactors(ctx context.Context, req api.AdminResetSecondFactorsRequestObject) (api.AdminResetSecondFactorsResponseObject, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	n, err := s.users.ResetSecondFactors(ctx, actor, req.UserId)
	if err != nil {
		return nil, err
	}
	return api.AdminResetSecondFactors200JSONResponse{Removed: int(n)}, nil
}
