package impl

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"registrar/api"
	"registrar/db"
	"registrar/impl/canonical"
	"registrar/impl/devices"
	"registrar/impl/factors"
	"registrar/impl/homeserver"
	"registrar/impl/images"
	"registrar/impl/matrix"
	"registrar/impl/oauth"
	"registrar/impl/secrets"
	"registrar/impl/threepid"
	"registrar/impl/web"
)

// The account management pages (account_management_uri, Matrix v1.18):
// the signed-in browser's profile (addresses), sessions, password and
// deactivation, each change through the same services as the API.

// Account page views, by the action that opens them.
const (
	viewProfile    = "org.matrix.profile"
	viewDevices    = "org.matrix.devices_list"
	viewDevice     = "org.matrix.device_view"
	viewDelete     = "org.matrix.device_delete"
	viewDeactivate = "org.matrix.account_deactivate"
	viewCrossSign  = oauth.ActionCrossSigningReset
	viewPassword   = "password"
)

var _ = web.Register(`
{{define "_nav"}}<nav class="tabs" aria-label="{{t "account_nav"}}">
<a href="/_registrar/account?action=org.matrix.profile" id="nav-profile"{{if eq .Tab "profile"}} aria-current="page"{{end}}>{{t "nav_profile"}}</a>
<a href="/_registrar/account?action=org.matrix.devices_list" id="nav-sessions"{{if eq .Tab "sessions"}} aria-current="page"{{end}}>{{t "nav_sessions"}}</a>
{{- if .Security}}<a href="/_registrar/account?action=security" id="nav-security"{{if eq .Tab "security"}} aria-current="page"{{end}}>{{t "nav_security"}}</a>{{end}}
{{- if .PasswordChanges}}<a href="/_registrar/account?action=password" id="nav-password"{{if eq .Tab "password"}} aria-current="page"{{end}}>{{t "nav_password"}}</a>{{end}}
{{- if .Deactivation}}<a href="/_registrar/account?action=org.matrix.account_deactivate" id="nav-deactivate"{{if eq .Tab "deactivate"}} aria-current="page"{{end}}>{{t "nav_deactivate"}}</a>{{end}}</nav>
<form method="post" action="{{.Logout}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<p class="muted">{{t "signed_in_as"}} <strong id="user">{{.User}}</strong> <button type="submit" id="signout" class="link">{{t "signout"}}</button></p></form>{{end}}

{{define "_seen"}}{{if .SeenText}}<time datetime="{{.SeenISO}}" title="{{.SeenExact}}">{{.SeenText}}</time>{{end}}{{end}}

{{define "_icon"}}<span class="icon" aria-hidden="true">{{if .LogoURL}}<img src="{{.LogoURL}}" alt="">{{else}}{{.Initial}}{{end}}</span>{{end}}

{{define "profile"}}{{template "head" .}}{{template "_nav" .}}
<section aria-labelledby="profile-heading"><h2 id="profile-heading">{{t "profile_heading"}}</h2>
<div class="row">{{if .HasAvatar}}<img class="avatar" src="/_registrar/account/avatar" alt="" width="64" height="64">{{else}}<span class="avatar initial" aria-hidden="true">{{.Initial}}</span>{{end}}
<div><div class="name" id="display-name-shown">{{.Shown}}</div><div class="muted">{{.User}}</div></div></div>
<form method="post" action="/_registrar/account/profile"><input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="field"><label for="display_name">{{t "field_display_name"}}</label>
<input type="text" id="display_name" name="display_name" value="{{.DisplayName}}" autocomplete="nickname" maxlength="256"
{{- if .Invalid "display_name"}} aria-invalid="true"{{end}}{{with .Describedby "display_name" "display_name-hint"}} aria-describedby="{{.}}"{{end}}{{if .Focus "display_name"}} autofocus{{end}}>
<p class="hint" id="display_name-hint">{{t "profile_display_name_hint"}}</p>{{template "_error" (.ErrorOf "display_name")}}</div>
<div class="actions"><button type="submit" id="save-profile">{{t "save"}}</button></div></form></section>
<section aria-labelledby="addresses-heading"><h2 id="addresses-heading">{{t "profile_addresses"}}</h2>
{{if .Threepids}}<ul class="sessions" id="threepids">{{range .Threepids}}<li class="session"><div class="what"><div>{{.Address}}</div>
<div class="meta">{{if eq .Medium "email"}}{{t "medium_email"}}{{else}}{{t "medium_msisdn"}}{{end}}</div></div>
<form method="post" action="/_registrar/account/threepid/remove"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<input type="hidden" name="medium" value="{{.Medium}}"><input type="hidden" name="address" value="{{.Address}}">
<button type="submit" class="secondary" aria-label="{{t "remove_address" "Address" .Address}}">{{t "remove"}}</button></form></li>{{end}}</ul>
{{else}}<p id="threepids">{{t "profile_no_addresses"}}</p>{{end}}
{{if .ThreepidChanges}}<h3>{{t "profile_add_email"}}</h3>
<form method="post" action="/_registrar/account/threepid/add"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="medium" value="email">
<div class="field"><label for="address">{{t "field_email"}}</label>{{template "_input" (.Input "address" "email" "email" .Address)}}{{template "_error" (.ErrorOf "address")}}</div>
<div class="actions"><button type="submit" id="add-email">{{t "send_code"}}</button></div></form>
{{if .Phones}}<h3>{{t "profile_add_phone"}}</h3>
<form method="post" action="/_registrar/account/threepid/add"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="medium" value="msisdn">
<div class="field"><label for="country">{{t "field_country"}}</label>{{template "_input" (.Input "country" "text" "country" .Country "country-hint")}}
<p class="hint" id="country-hint">{{t "profile_country_hint"}}</p>{{template "_error" (.ErrorOf "country")}}</div>
<div class="field"><label for="phone">{{t "field_phone"}}</label>
<input type="tel" id="phone" name="address" autocomplete="tel-national" required{{if .Invalid "phone"}} aria-invalid="true" aria-describedby="phone-error"{{end}}{{if .Focus "phone"}} autofocus{{end}}>{{template "_error" (.ErrorOf "phone")}}</div>
<div class="actions"><button type="submit" id="add-phone">{{t "send_code"}}</button></div></form>{{end}}
{{else}}<p class="muted" id="threepid-unavailable">{{.ThreepidUnavailable}}</p>{{end}}</section>
{{if or .Identities .Linkable}}<section aria-labelledby="identities-heading"><h2 id="identities-heading">{{t "profile_identities"}}</h2>
{{if .Identities}}<ul class="sessions" id="identities">{{range .Identities}}<li class="session"><div class="what"><div class="name">{{.Provider}}</div>
<div class="meta">{{.Subject}}</div></div>
<form method="post" action="/_registrar/account/upstream/unlink"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<input type="hidden" name="idp_id" value="{{.ID}}"><input type="hidden" name="subject" value="{{.Subject}}">
<button type="submit" class="secondary" id="unlink-{{.ID}}" aria-label="{{t "upstream_unlink_named" "Provider" .Provider}}">{{t "upstream_unlink"}}</button></form></li>{{end}}</ul>
{{else}}<p id="identities">{{t "profile_no_identities"}}</p>{{end}}
{{range .Linkable}}<form method="post" action="/_registrar/upstream/{{.ID}}/link"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<div class="actions"><button type="submit" class="secondary" id="link-{{.ID}}">{{t "upstream_link_with" "Provider" .Name}}</button></div></form>{{end}}
</section>{{end}}
{{template "foot" .}}{{end}}

{{define "verify"}}{{template "head" .}}{{template "_nav" .}}
<p id="sent">{{t "verify_sent" "Address" .Address}}</p>
<form method="post" action="/_registrar/account/threepid/verify"><input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="medium" value="{{.Medium}}"><input type="hidden" name="sid" value="{{.Sid}}">
<input type="hidden" name="client_secret" value="{{.ClientSecret}}"><input type="hidden" name="address" value="{{.Address}}">
<div class="field"><label for="code">{{t "field_code"}}</label>{{template "_input" (.Input "code" "text" "one-time-code" "")}}{{template "_error" (.ErrorOf "code")}}</div>
<div class="actions"><button type="submit" id="verify">{{t "verify_submit"}}</button></div></form>{{template "foot" .}}{{end}}

{{define "sessions"}}{{template "head" .}}{{template "_nav" .}}
<ul class="sessions" id="sessions">{{range .Sessions}}
<li class="session" id="{{.Anchor}}">{{template "_icon" .}}
<div class="what">{{if .ID}}<a href="/_registrar/account?action=org.matrix.device_view&amp;device_id={{.ID}}" class="session-name">{{.Name}}</a>{{else}}<span class="session-name">{{.Name}}</span>{{end}}
{{- if .Current}} <span class="badge" id="current">{{t "session_current"}}</span>{{end}}
<div class="meta">{{range .Facts}}{{.}} · {{end}}{{template "_seen" .}}</div></div>
{{if not .Current}}<form method="post" action="/_registrar/account/device/delete"><input type="hidden" name="csrf" value="{{$.CSRF}}">
{{if .ID}}<input type="hidden" name="device_id" value="{{.ID}}">{{else}}<input type="hidden" name="session" value="{{.Browser}}">{{end}}
<button type="submit" class="secondary" aria-label="{{t "session_end_named" "Name" .Name}}">{{t "session_end"}}</button></form>{{end}}</li>{{end}}
</ul>
{{if .Others}}<form method="post" action="/_registrar/account/device/end_others"><input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="actions"><button type="submit" class="danger" id="end-others">{{t "sessions_end_others"}}</button></div></form>{{end}}
{{template "foot" .}}{{end}}

{{define "session"}}{{template "head" .}}{{template "_nav" .}}
{{with .Device}}<div class="client">{{template "_icon" .}}<div><div class="name" id="session-name">{{.Name}}</div><div class="muted">{{range .Facts}}{{.}} · {{end}}{{template "_seen" .}}</div></div></div>
<dl class="facts" id="device"><dt>{{t "session_device_id"}}</dt><dd id="device-id">{{.ID}}</dd>
{{if .Client}}<dt>{{t "session_app"}}</dt><dd id="session-client">{{.Client}}</dd>{{end}}
{{if .Agent}}<dt>{{t "session_software"}}</dt><dd>{{.Agent}}</dd>{{end}}
<dt>{{t "session_address"}}</dt><dd>{{if .IP}}{{.IP}}{{else}}{{t "unknown"}}{{end}}</dd>
<dt>{{t "session_signed_in"}}</dt><dd><time datetime="{{.CreatedISO}}">{{.CreatedExact}}</time></dd></dl>{{end}}
<form method="post" action="/_registrar/account/device/rename"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="device_id" value="{{.Device.ID}}">
<div class="field"><label for="display_name">{{t "session_rename"}}</label>
<input type="text" id="display_name" name="display_name" value="{{.Device.DisplayName}}" autocomplete="off" maxlength="256"
{{- if .Invalid "display_name"}} aria-invalid="true"{{end}}{{with .Describedby "display_name"}} aria-describedby="{{.}}"{{end}}{{if .Focus "display_name"}} autofocus{{end}}>{{template "_error" (.ErrorOf "display_name")}}</div>
<div class="actions"><button type="submit" class="secondary" id="rename-session">{{t "save"}}</button></div></form>
<form method="post" action="/_registrar/account/device/delete"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="device_id" value="{{.Device.ID}}">
{{if .ConfirmDelete}}<p id="confirm-end">{{t "session_end_confirm"}}</p>{{end}}
<div class="actions"><button type="submit" class="danger" id="end-session">{{t "session_end_this"}}</button></div></form>
{{template "foot" .}}{{end}}

{{define "password"}}{{template "head" .}}{{template "_nav" .}}
<form method="post" action="/_registrar/account/password"><input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="field"><label for="current_password">{{t "field_current_password"}}</label>{{template "_input" (.Input "current_password" "password" "current-password" "")}}{{template "_error" (.ErrorOf "current_password")}}</div>
<div class="field"><label for="new_password">{{t "field_new_password"}}</label>{{template "_input" (.Input "new_password" "password" "new-password" "" "password-hint")}}
<p class="hint" id="password-hint">{{.PasswordRules}}</p>{{template "_error" (.ErrorOf "new_password")}}</div>
<div class="field"><label for="new_password_confirm">{{t "field_new_password_again"}}</label>{{template "_input" (.Input "new_password_confirm" "password" "new-password" "")}}{{template "_error" (.ErrorOf "new_password_confirm")}}</div>
<div class="field"><label class="checkbox"><input type="checkbox" name="logout_others" id="logout_others" value="yes"> {{t "password_sign_out_all"}}</label></div>
<div class="actions"><button type="submit" id="change-password">{{t "password_submit"}}</button></div></form>{{template "foot" .}}{{end}}

{{define "deactivate"}}{{template "head" .}}{{template "_nav" .}}
<p id="deactivate-warning">{{t "deactivate_warning"}}</p>
<form method="post" action="/_registrar/account/deactivate"><input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="field"><label for="password">{{t "field_password"}}</label>{{template "_input" (.Input "password" "password" "current-password" "")}}{{template "_error" (.ErrorOf "password")}}</div>
<div class="field"><label class="checkbox"><input type="checkbox" name="erase" id="erase" value="yes"> {{t "deactivate_erase"}}</label></div>
<div class="field"><label class="checkbox"><input type="checkbox" name="confirm" id="confirm" value="yes" required{{if .Invalid "confirm"}} aria-invalid="true" aria-describedby="confirm-error"{{end}}{{if .Focus "confirm"}} autofocus{{end}}> {{t "deactivate_confirm"}}</label>{{template "_error" (.ErrorOf "confirm")}}</div>
<div class="actions"><button type="submit" class="danger" id="deactivate">{{t "deactivate_submit"}}</button></div></form>{{template "foot" .}}{{end}}

{{define "crosssigning"}}{{template "head" .}}{{template "_nav" .}}
<p>{{t "crosssigning_what"}}</p>
<p>{{t "crosssigning_when"}}</p>
<form method="post" action="/_registrar/account/cross_signing_reset"><input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="actions"><button type="submit" id="allow-reset">{{t "crosssigning_submit"}}</button></div></form>{{template "foot" .}}{{end}}
`)

// accountView is what the account templates show.
type accountView struct {
	web.Frame
	CSRF, User, Logout string
	// Tab is the navigation entry of the page.
	Tab                           string
	PasswordChanges, Deactivation bool
	// Profile.
	DisplayName, Shown, Initial string
	HasAvatar                   bool
	Threepids                   []db.Threepid
	ThreepidChanges, Phones     bool
	ThreepidUnavailable         string
	Country                     string
	// Identities are the account's upstream identities; Linkable the
	// providers it may link.
	Identities []identityRow
	Linkable   []web.ProviderLink
	// Security: the second factors (Security shows the tab).
	Security                     bool
	Factors                      []factorRow
	RecoveryLeft                 int
	TOTPOn, WebAuthnOn, Required bool
	TOTP                         *factors.TOTPEnrolment
	QR                           template.URL
	RecoveryCodes                []string
	// Sessions.
	Sessions      []sessionRow
	Others        bool
	Device        *sessionRow
	ConfirmDelete bool
	PasswordRules string
	// Address verification.
	Medium, Address, Sid, ClientSecret string
}

// identityRow is an upstream identity linked to the account.
type identityRow struct{ ID, Provider, Subject string }

// sessionRow is a session as the pages show it: a device (ID set) or a
// browser signed in to these pages (Browser set).
type sessionRow struct {
	ID, Browser string
	Anchor      string
	// Name is what the session is called: an OAuth client's name, or the
	// device's display name, or what its user agent says.
	Name, DisplayName string
	// Client is the OAuth client's name; Agent what the user agent says.
	Client, Agent     string
	LogoURL, Initial  string
	IP                string
	Facts             []string
	SeenText, SeenISO string
	SeenExact         string
	CreatedISO        string
	CreatedExact      string
	Current           bool
}

// accountSession is the signed-in browser, or the page that asks to sign in.
func (s *Server) accountSession(ctx context.Context, returnTo string) (db.Account, oauth.Browser, *oauth.Page) {
	b := browser(ctx)
	acct, ok := s.oauth.SignedIn(ctx, b)
	if !ok {
		p := oauth.Redirect(oauth.PathLogin + "?next=" + url.QueryEscape(returnTo))
		return acct, b, &p
	}
	return acct, b, nil
}

func (s *Server) accountBase(ctx context.Context, b oauth.Browser, acct db.Account, title, tab string) (*accountView, []*http.Cookie) {
	token, set := s.oauth.CSRF(b)
	lang := web.Lang(ctx)
	return &accountView{Frame: web.Frame{Title: title, Wide: true}, CSRF: token, User: acct.UserID, Logout: oauth.PathLogout, Tab: tab,
		PasswordChanges: s.cfg.PasswordConfig.Enabled, Deactivation: s.cfg.AllowDeactivation, Security: s.factors != nil,
		PasswordRules: s.passwordRules(lang)}, oauth.Cookies(set)
}

func (s *Server) renderAccount(ctx context.Context, status int, name string, v *accountView, cookies []*http.Cookie) pageResponse {
	return pageResponse{s.renderPage(ctx, status, name, v, cookies)}
}

// AccountPage is GET /_registrar/account, opened at the view of action.
func (s *Server) AccountPage(ctx context.Context, req api.AccountPageRequestObject) (api.AccountPageResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	action, deviceID := deref(req.Params.Action), deref(req.Params.DeviceId)
	returnTo := oauth.PathAccount
	if action != "" {
		returnTo += "?" + url.Values{"action": {action}, "device_id": {deviceID}}.Encode()
	}
	acct, b, signIn := s.accountSession(ctx, returnTo)
	if signIn != nil {
		return pageResponse{*signIn}, nil
	}
	switch action {
	case viewSecurity, viewPassword, viewDeactivate:
		// Sensitive: a fresh second factor first.
		if p := s.needsStepUp(ctx, b, acct, returnTo); p != nil {
			return pageResponse{*p}, nil
		}
	}
	if deref(req.Params.First) != "" && action == viewSecurity {
		return s.account(ctx, b, acct, accountState{action: viewSecurity, notice: "security_make_recovery"}), nil
	}
	return s.accountView(ctx, b, acct, action, deviceID, "", nil), nil
}

// accountViews are the account's views: their title's message ID and
// navigation entry, by action.
var accountViews = map[string]struct{ title, tab string }{
	viewProfile: {"account_profile_title", "profile"}, viewDevices: {"account_sessions_title", "sessions"},
	viewDevice: {"account_session_title", "sessions"}, viewDelete: {"account_end_session_title", "sessions"},
	viewPassword: {"account_password_title", "password"}, viewDeactivate: {"account_deactivate_title", "deactivate"},
	viewCrossSign: {"account_crosssigning_title", ""},
	viewSecurity:  {"account_security_title", "security"},
}

// accountView renders one view of the account, with a notice (a message
// ID) or a failure.
func (s *Server) accountView(ctx context.Context, b oauth.Browser, acct db.Account, action, deviceID, notice string, failure error) pageResponse {
	return s.account(ctx, b, acct, accountState{action: action, deviceID: deviceID, notice: notice, failure: failure})
}

// accountState is what a view of the account shows: the view (action,
// and the device of a session's view), a notice (a message ID) or a
// failure, said beside the inputs fields names (the view's by default),
// and the form's values kept (fill sets them).
type accountState struct {
	action, deviceID, notice string
	failure                  error
	fields                   map[string]string
	fill                     func(*accountView)
}

// account renders a view of the account.
func (s *Server) account(ctx context.Context, b oauth.Browser, acct db.Account, st accountState) pageResponse {
	lang := web.Lang(ctx)
	action, deviceID, notice, failure := st.action, st.deviceID, st.notice, st.failure
	meta, ok := accountViews[action]
	if !ok || (action == viewCrossSign && s.homeserver == nil) || (action == viewSecurity && s.factors == nil) {
		action, meta = viewProfile, accountViews[viewProfile]
	}
	v, cookies := s.accountBase(ctx, b, acct, web.T(lang, meta.title), meta.tab)
	v.Here = viewURL(action)
	if notice != "" {
		v.Notice = web.T(lang, notice)
	}
	status := http.StatusOK
	if failure != nil {
		fields := st.fields
		if fields == nil {
			fields = accountFields[action]
		}
		s.pageFailure(ctx, &v.Frame, failure, fields)
		status = pageStatus(failure)
	}
	if st.fill != nil {
		st.fill(v)
	}
	switch action {
	case viewProfile:
		s.profileView(ctx, acct, v)
		page := s.renderAccount(ctx, status, "profile", v, cookies)
		// Linking a provider ends, after redirects, at the provider.
		for _, l := range v.Linkable {
			if p, ok := s.upstream.Provider(l.ID); ok {
				page.Policy.FormAction = append(page.Policy.FormAction, p.AuthOrigin(ctx))
			}
		}
		return page
	case viewDevices, viewDevice, viewDelete:
		s.sessionsView(ctx, b, acct, v, deviceID)
		if action == viewDevices || v.Device == nil {
			if action != viewDevices {
				v.Title, v.Tab = web.T(lang, accountViews[viewDevices].title), "sessions"
				v.Error = web.T(lang, "error_no_session")
			}
			v.Here = viewURL(viewDevices)
			return s.renderAccount(ctx, status, "sessions", v, cookies)
		}
		v.Title = v.Device.Name
		v.ConfirmDelete = action == viewDelete
		v.Here = oauth.PathAccount + "?" + url.Values{"action": {action}, "device_id": {deviceID}}.Encode()
		return s.renderAccount(ctx, status, "session", v, cookies)
	case viewPassword:
		v.Autofocus = "current_password"
		return s.renderAccount(ctx, status, "password", v, cookies)
	case viewCrossSign:
		return s.renderAccount(ctx, status, "crosssigning", v, cookies)
	case viewSecurity:
		s.securityView(ctx, acct, v)
		return s.renderAccount(ctx, status, "security", v, cookies)
	}
	v.Autofocus = "password"
	return s.renderAccount(ctx, status, "deactivate", v, cookies)
}

// accountFields are each view's form inputs by the roles the API's errors
// concern.
var accountFields = map[string]map[string]string{
	viewProfile:    {roleEmail: "address", rolePhone: "phone", roleCode: "code"},
	viewPassword:   {rolePassword: "new_password", roleCurrent: "current_password"},
	viewDeactivate: {rolePassword: "password", roleCurrent: "password"},
	viewDevice:     {},
}

// profileView fills the profile: the display name and avatar (the
// homeserver's, when registrar provisions one) and the addresses.
func (s *Server) profileView(ctx context.Context, acct db.Account, v *accountView) {
	lang := web.Lang(ctx)
	if !v.Invalid("display_name") {
		v.DisplayName = acct.DisplayName
	}
	avatar := acct.AvatarURL
	if s.homeserver != nil {
		if p, err := s.homeserver.Profile(ctx, acct.UserID); err != nil {
			s.log.WarnContext(ctx, "reading the profile from the homeserver failed", "user_id", acct.UserID, "error", err)
		} else {
			avatar = p.AvatarURL
			if p.DisplayName != "" && !v.Invalid("display_name") && acct.DisplayName == "" {
				v.DisplayName = p.DisplayName
			}
		}
	}
	v.HasAvatar = s.homeserver != nil && strings.HasPrefix(avatar, "mxc://")
	v.Shown = v.DisplayName
	if v.Shown == "" {
		v.Shown = localpartOf(acct.UserID)
	}
	v.Initial = initial(v.Shown)
	tps, err := s.store.Threepids(ctx, acct.UserID)
	if err != nil {
		s.log.ErrorContext(ctx, "reading addresses failed", "error", err)
	}
	v.Threepids = tps
	s.identitiesView(ctx, acct, v)
	emails, phones := s.threepids.EmailEnabled(), s.threepids.MsisdnEnabled()
	v.ThreepidChanges = s.cfg.Enable3PIDChanges && emails
	v.Phones = s.cfg.Enable3PIDChanges && phones
	switch {
	case !s.cfg.Enable3PIDChanges:
		v.ThreepidUnavailable = web.T(lang, "profile_threepid_disabled")
	case !emails:
		v.ThreepidUnavailable = web.T(lang, "profile_email_unconfigured")
	}
}

// identitiesView lists the account's upstream identities and the
// providers it may still link.
func (s *Server) identitiesView(ctx context.Context, acct db.Account, v *accountView) {
	ids, err := s.store.ExternalIDs(ctx, acct.UserID)
	if err != nil {
		s.log.ErrorContext(ctx, "reading external IDs failed", "error", err)
	}
	linked := map[string]bool{}
	for _, e := range ids {
		name := e.AuthProvider
		if p, ok := s.upstream.Provider(e.AuthProvider); ok {
			name = p.Info().Name
		}
		v.Identities = append(v.Identities, identityRow{ID: e.AuthProvider, Provider: name, Subject: e.ExternalID})
		linked[e.AuthProvider] = true
	}
	for _, p := range s.upstream.Infos() {
		if !linked[p.ID] {
			v.Linkable = append(v.Linkable, web.ProviderLink{ID: p.ID, Name: p.Name})
		}
	}
}

func localpartOf(userID string) string {
	local, _, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	return local
}

// initial is the first letter of name, upper-cased, for an icon.
func initial(name string) string {
	for _, r := range name {
		return strings.ToUpper(string(r))
	}
	return "?"
}

// sessionsView lists the sessions: this browser first, then the devices
// (the apps signed in), then the other browsers.
func (s *Server) sessionsView(ctx context.Context, b oauth.Browser, acct db.Account, v *accountView, deviceID string) {
	lang := web.Lang(ctx)
	now := s.now()
	current := s.oauth.CurrentSession(b)
	browsers, err := s.store.BrowserSessions(ctx, acct.UserID)
	if err != nil {
		s.log.ErrorContext(ctx, "reading browser sessions failed", "error", err)
	}
	list, err := s.devices.List(ctx, acct.UserID)
	if err != nil {
		s.log.ErrorContext(ctx, "reading devices failed", "error", err)
	}
	clients, err := s.store.DeviceClients(ctx, acct.UserID)
	if err != nil {
		s.log.ErrorContext(ctx, "reading the devices' clients failed", "error", err)
	}
	var others []sessionRow
	for i, bs := range browsers {
		agent := web.ParseAgent(bs.UserAgent)
		row := sessionRow{Browser: bs.IDHash, Anchor: "browser-" + strconv.Itoa(i), Name: agent.Name(lang), IP: bs.IP,
			Current: bs.IDHash == current}
		if row.Name == "" {
			row.Name = web.T(lang, "session_unknown_browser")
		}
		row.Initial = initial(row.Name)
		row.Facts = append(row.Facts, web.T(lang, "session_kind_browser"))
		if row.IP != "" {
			row.Facts = append(row.Facts, row.IP)
		}
		noteSeen(lang, &row, bs.LastActiveAt, bs.CreatedAt, now)
		if row.Current {
			row.Anchor = "browser-current"
			v.Sessions = append(v.Sessions, row)
			continue
		}
		others = append(others, row)
	}
	for _, d := range list {
		row := s.deviceRow(ctx, lang, d, clients[d.DeviceID], now)
		v.Sessions = append(v.Sessions, row)
		if d.DeviceID == deviceID {
			r := row
			v.Device = &r
		}
	}
	v.Sessions = append(v.Sessions, others...)
	v.Others = len(list) > 0 || len(others) > 0
}

// deviceRow is a device as the sessions page shows it: named by its OAuth
// client, or by its display name or user agent (legacy logins).
func (s *Server) deviceRow(ctx context.Context, lang string, d db.Device, clientID string, now time.Time) sessionRow {
	agent := web.ParseAgent(d.LastSeenUserAgent)
	row := sessionRow{ID: d.DeviceID, Anchor: "device-" + d.DeviceID, DisplayName: d.DisplayName, Agent: agent.Name(lang), IP: d.LastSeenIP}
	if clientID != "" {
		if c := s.oauth.ClientOf(ctx, clientID); c != nil {
			row.Client, row.LogoURL = c.Name, c.LogoURL
		}
	}
	switch {
	case row.Client != "":
		row.Name = row.Client
		if d.DisplayName != "" && d.DisplayName != row.Client {
			row.Facts = append(row.Facts, d.DisplayName)
		}
	case d.DisplayName != "":
		row.Name = d.DisplayName
		if row.Agent != "" {
			row.Facts = append(row.Facts, row.Agent)
		}
	case row.Agent != "":
		row.Name = row.Agent
	default:
		row.Name = web.T(lang, "session_unnamed", "Device", d.DeviceID)
	}
	row.Initial = initial(row.Name)
	if row.IP != "" {
		row.Facts = append(row.Facts, row.IP)
	}
	noteSeen(lang, &row, d.LastSeenAt, d.CreatedAt, now)
	return row
}

// noteSeen says when a session was last used ("Active 5 minutes ago"), or,
// never used since, when it signed in; the exact time goes in a title.
func noteSeen(lang string, row *sessionRow, lastMS *int64, createdMS int64, now time.Time) {
	created := time.UnixMilli(createdMS)
	row.CreatedISO, row.CreatedExact = created.UTC().Format(time.RFC3339), web.FormatTime(lang, created)
	at, key := created, "session_signed_in_ago"
	if lastMS != nil {
		at, key = time.UnixMilli(*lastMS), "session_active_ago"
	}
	if createdMS == 0 && lastMS == nil {
		return
	}
	row.SeenText = web.T(lang, key, "Ago", web.Ago(lang, at, now))
	row.SeenISO, row.SeenExact = at.UTC().Format(time.RFC3339), web.FormatTime(lang, at)
}

// accountForm checks a form's CSRF token and the signed-in browser.
func (s *Server) accountForm(ctx context.Context, csrf *string, returnTo string) (db.Account, oauth.Browser, *pageResponse) {
	acct, b, signIn := s.accountSession(ctx, returnTo)
	if signIn != nil {
		return acct, b, &pageResponse{*signIn}
	}
	if !s.oauth.CheckCSRF(b, deref(csrf)) {
		return acct, b, &pageResponse{s.oauth.CSRFFailed(ctx)}
	}
	return acct, b, nil
}

// asRequester is the signed-in account as the API's rules see a user.
func asRequester(acct db.Account) *requester {
	return &requester{UserID: acct.UserID, IsGuest: acct.Kind == db.KindGuest, Suspended: acct.Suspended, Admin: acct.Admin}
}

func viewURL(action string) string { return oauth.PathAccount + "?action=" + url.QueryEscape(action) }

// AccountPasswordSubmit is POST /_registrar/account/password.
func (s *Server) AccountPasswordSubmit(ctx context.Context, req api.AccountPasswordSubmitRequestObject) (api.AccountPasswordSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	acct, br, stop := s.accountForm(ctx, b.Csrf, viewURL(viewPassword))
	if stop != nil {
		return *stop, nil
	}
	fail := func(err error) (api.AccountPasswordSubmitResponseObject, error) {
		return s.accountView(ctx, br, acct, viewPassword, "", "", err), nil
	}
	if p := s.needsStepUp(ctx, br, acct, viewURL(viewPassword)); p != nil {
		return pageResponse{*p}, nil
	}
	if err := mayChangeAccount(asRequester(acct)); err != nil {
		return fail(err)
	}
	if !s.cfg.PasswordConfig.Enabled {
		return fail(&formError{status: http.StatusForbidden, code: matrix.CodeForbidden, key: "error_password_changes_disabled"})
	}
	if err := s.checkOwnPassword(ctx, acct, deref(b.CurrentPassword), "current_password"); err != nil {
		return fail(err)
	}
	if deref(b.NewPassword) != deref(b.NewPasswordConfirm) {
		return fail(fieldError("new_password_confirm", "error_passwords_differ"))
	}
	if err := s.accounts.CheckPasswordPolicy(deref(b.NewPassword)); err != nil {
		return fail(err)
	}
	logoutAll := deref(b.LogoutOthers) != ""
	if err := s.accounts.SetPassword(ctx, acct.UserID, deref(b.NewPassword), db.PasswordLogout{Devices: logoutAll}); err != nil {
		return fail(err)
	}
	if logoutAll {
		return pageResponse{s.message(ctx, http.StatusOK, "password_changed_title", "password_changed_signed_out", oauth.PathLogin)}, nil
	}
	return s.accountView(ctx, br, acct, viewPassword, "", "password_changed", nil), nil
}

// checkOwnPassword checks the signed-in account's password typed in field
// (with /login's rate limits): a wrong one is said beside the field.
func (s *Server) checkOwnPassword(ctx context.Context, acct db.Account, password, field string) error {
	_, err := s.accounts.CheckCredentials(ctx, acct.UserID, password, acct.UserID)
	if merr, ok := matrix.As(err); ok && merr.Code == matrix.CodeLimitExceeded {
		return err
	}
	if err != nil {
		return &formError{status: http.StatusForbidden, code: matrix.CodeForbidden, field: field, key: "error_current_password"}
	}
	return nil
}

// AccountProfileSubmit is POST /_registrar/account/profile: the display
// name, stored here and (through the outbox) on the homeserver.
func (s *Server) AccountProfileSubmit(ctx context.Context, req api.AccountProfileSubmitRequestObject) (api.AccountProfileSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	acct, br, stop := s.accountForm(ctx, b.Csrf, viewURL(viewProfile))
	if stop != nil {
		return *stop, nil
	}
	name := strings.TrimSpace(deref(b.DisplayName))
	fail := func(err error) (api.AccountProfileSubmitResponseObject, error) {
		return s.account(ctx, br, acct, accountState{action: viewProfile, failure: err, fill: func(v *accountView) { v.DisplayName = name }}), nil
	}
	if err := mayChangeAccount(asRequester(acct)); err != nil {
		return fail(err)
	}
	if len(name) > maxDisplayNameBytes || strings.ContainsAny(name, "\x00\n\r") {
		return fail(fieldError("display_name", "error_display_name"))
	}
	updated, err := s.store.UpdateAccount(ctx, acct.UserID, db.AccountChanges{DisplayName: &name})
	if err != nil {
		return nil, matrix.Internal(err)
	}
	s.log.InfoContext(ctx, "display name changed on the account page", "user_id", acct.UserID)
	return s.accountView(ctx, br, updated, viewProfile, "", "profile_saved", nil), nil
}

// maxDisplayNameBytes is Synapse's bound of a display name.
const maxDisplayNameBytes = 256

// AccountThreepidAddSubmit is POST /_registrar/account/threepid/add: a
// code is sent (the API's requestToken, with a short code).
func (s *Server) AccountThreepidAddSubmit(ctx context.Context, req api.AccountThreepidAddSubmitRequestObject) (api.AccountThreepidAddSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	acct, br, stop := s.accountForm(ctx, b.Csrf, viewURL(viewProfile))
	if stop != nil {
		return *stop, nil
	}
	keep := func(v *accountView) {
		if deref(b.Medium) == db.MediumEmail {
			v.Address = deref(b.Address)
		}
		v.Country = deref(b.Country)
	}
	fields := accountFields[viewProfile]
	if deref(b.Medium) == db.MediumMsisdn {
		fields = map[string]string{roleEmail: "phone"}
	}
	fail := func(err error) (api.AccountThreepidAddSubmitResponseObject, error) {
		return s.account(ctx, br, acct, accountState{action: viewProfile, failure: err, fields: fields, fill: keep}), nil
	}
	if err := mayChangeAccount(asRequester(acct)); err != nil {
		return fail(err)
	}
	if !s.cfg.Enable3PIDChanges {
		return fail(&formError{status: http.StatusForbidden, code: matrix.CodeForbidden, key: "profile_threepid_disabled"})
	}
	r := threepid.Request{Medium: deref(b.Medium), ClientSecret: secrets.RandomString(24), SendAttempt: 1,
		Purpose: threepid.PurposeAddThreepid, ClientKey: addressKey(ctx), ShortCode: true}
	switch r.Medium {
	case db.MediumEmail:
		r.Address = canonical.Email(deref(b.Address))
	case db.MediumMsisdn:
		r.Country, r.Phone = deref(b.Country), deref(b.Address)
		r.Address = canonical.Msisdn(r.Country, r.Phone)
	default:
		return fail(fieldError("", "error_choose_medium"))
	}
	resp, err := s.threepids.RequestToken(ctx, r)
	if merr, ok := matrix.As(err); ok && merr.Code == matrix.CodeInvalidParam {
		return fail(fieldError(fields[roleEmail], "error_address_invalid"))
	}
	if err != nil {
		return fail(err)
	}
	v, cookies := s.accountBase(ctx, br, acct, web.T(web.Lang(ctx), "verify_title"), "profile")
	v.Medium, v.Address, v.Sid, v.ClientSecret = r.Medium, r.Address, resp.Sid, r.ClientSecret
	v.Autofocus, v.Here = "code", viewURL(viewProfile)
	return s.renderAccount(ctx, http.StatusOK, "verify", v, cookies), nil
}

// AccountThreepidVerifySubmit is POST /_registrar/account/threepid/verify:
// the code validates the address, which is added (wrong codes are rate
// limited).
func (s *Server) AccountThreepidVerifySubmit(ctx context.Context, req api.AccountThreepidVerifySubmitRequestObject) (api.AccountThreepidVerifySubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	acct, br, stop := s.accountForm(ctx, b.Csrf, viewURL(viewProfile))
	if stop != nil {
		return *stop, nil
	}
	// A wrong code shows the code form again, beside its field.
	retry := func(err error) (api.AccountThreepidVerifySubmitResponseObject, error) {
		v, cookies := s.accountBase(ctx, br, acct, web.T(web.Lang(ctx), "verify_title"), "profile")
		v.Medium, v.Address, v.Sid, v.ClientSecret = deref(b.Medium), deref(b.Address), deref(b.Sid), deref(b.ClientSecret)
		v.Autofocus, v.Here = "code", viewURL(viewProfile)
		s.pageFailure(ctx, &v.Frame, err, map[string]string{roleCode: "code"})
		return s.renderAccount(ctx, pageStatus(err), "verify", v, cookies), nil
	}
	if err := mayChangeAccount(asRequester(acct)); err != nil {
		return s.accountView(ctx, br, acct, viewProfile, "", "", err), nil
	}
	limiter := s.threepids.Limiter()
	if err := limiter.Check(addressKey(ctx), s.now()); err != nil {
		return retry(err)
	}
	code := deref(b.Code)
	if deref(b.Medium) == db.MediumEmail {
		code = threepid.NormalizeCode(code)
	}
	if _, err := s.threepids.Submit(ctx, deref(b.Medium), deref(b.Sid), deref(b.ClientSecret), code); err != nil {
		_ = limiter.Take(addressKey(ctx), s.now())
		return retry(err)
	}
	if err := s.threepids.Bind(ctx, acct.UserID, deref(b.Sid), deref(b.ClientSecret)); err != nil {
		return s.accountView(ctx, br, acct, viewProfile, "", "", err), nil
	}
	return s.accountView(ctx, br, acct, viewProfile, "", "address_added", nil), nil
}

// AccountThreepidRemoveSubmit is POST /_registrar/account/threepid/remove.
func (s *Server) AccountThreepidRemoveSubmit(ctx context.Context, req api.AccountThreepidRemoveSubmitRequestObject) (api.AccountThreepidRemoveSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	acct, br, stop := s.accountForm(ctx, b.Csrf, viewURL(viewProfile))
	if stop != nil {
		return *stop, nil
	}
	if err := mayChangeAccount(asRequester(acct)); err != nil {
		return s.accountView(ctx, br, acct, viewProfile, "", "", err), nil
	}
	if err := s.store.DeleteThreepid(ctx, acct.UserID, deref(b.Medium), deref(b.Address)); err != nil {
		return nil, matrix.Internal(err)
	}
	return s.accountView(ctx, br, acct, viewProfile, "", "address_removed", nil), nil
}

// AccountDeviceDeleteSubmit is POST /_registrar/account/device/delete:
// the session's tokens stop working at once (or another browser is
// signed out of these pages).
func (s *Server) AccountDeviceDeleteSubmit(ctx context.Context, req api.AccountDeviceDeleteSubmitRequestObject) (api.AccountDeviceDeleteSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	acct, br, stop := s.accountForm(ctx, b.Csrf, viewURL(viewDevices))
	if stop != nil {
		return *stop, nil
	}
	if browserSession := deref(b.Session); browserSession != "" {
		if err := s.store.EndBrowserSession(ctx, acct.UserID, browserSession); err != nil {
			return nil, matrix.Internal(err)
		}
		s.log.InfoContext(ctx, "browser session ended on the account page", "user_id", acct.UserID)
		return s.accountView(ctx, br, acct, viewDevices, "", "session_ended", nil), nil
	}
	if err := s.devices.Delete(ctx, acct.UserID, deref(b.DeviceId)); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "session ended on the account page", "user_id", acct.UserID, "device_id", deref(b.DeviceId))
	return s.accountView(ctx, br, acct, viewDevices, "", "session_ended", nil), nil
}

// AccountDeviceRenameSubmit is POST /_registrar/account/device/rename.
func (s *Server) AccountDeviceRenameSubmit(ctx context.Context, req api.AccountDeviceRenameSubmitRequestObject) (api.AccountDeviceRenameSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	deviceID := deref(b.DeviceId)
	acct, br, stop := s.accountForm(ctx, b.Csrf, viewURL(viewDevices))
	if stop != nil {
		return *stop, nil
	}
	name := strings.TrimSpace(deref(b.DisplayName))
	if err := devices.CheckDisplayName(name); err != nil {
		return s.accountView(ctx, br, acct, viewDevice, deviceID, "", fieldError("display_name", "error_session_name")), nil
	}
	err := s.devices.Rename(ctx, acct.UserID, deviceID, name)
	if errors.Is(err, devices.ErrUnknownDevice) {
		return s.accountView(ctx, br, acct, viewDevices, "", "", &formError{status: http.StatusNotFound, code: matrix.CodeNotFound,
			key: "error_no_session"}), nil
	}
	if err != nil {
		return nil, err
	}
	return s.accountView(ctx, br, acct, viewDevice, deviceID, "session_renamed", nil), nil
}

// AccountEndOtherSessionsSubmit is POST /_registrar/account/device/end_others:
// every device's tokens stop working at once, and every other browser is
// signed out; this one stays.
func (s *Server) AccountEndOtherSessionsSubmit(ctx context.Context, req api.AccountEndOtherSessionsSubmitRequestObject) (api.AccountEndOtherSessionsSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	acct, br, stop := s.accountForm(ctx, req.Body.Csrf, viewURL(viewDevices))
	if stop != nil {
		return *stop, nil
	}
	if err := s.store.EndOtherSessions(ctx, acct.UserID, s.oauth.CurrentSession(br)); err != nil {
		return nil, matrix.Internal(err)
	}
	s.log.InfoContext(ctx, "every other session ended on the account page", "user_id", acct.UserID)
	return s.accountView(ctx, br, acct, viewDevices, "", "sessions_ended", nil), nil
}

// AccountDeactivateSubmit is POST /_registrar/account/deactivate: with the
// password and the confirmation, the same atomic deactivation as
// /account/deactivate.
func (s *Server) AccountDeactivateSubmit(ctx context.Context, req api.AccountDeactivateSubmitRequestObject) (api.AccountDeactivateSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	acct, br, stop := s.accountForm(ctx, b.Csrf, viewURL(viewDeactivate))
	if stop != nil {
		return *stop, nil
	}
	fail := func(err error) (api.AccountDeactivateSubmitResponseObject, error) {
		return s.accountView(ctx, br, acct, viewDeactivate, "", "", err), nil
	}
	if p := s.needsStepUp(ctx, br, acct, viewURL(viewDeactivate)); p != nil {
		return pageResponse{*p}, nil
	}
	if !s.cfg.AllowDeactivation {
		return fail(&formError{status: http.StatusForbidden, code: matrix.CodeForbidden, key: "error_deactivation_disabled"})
	}
	if err := s.checkOwnPassword(ctx, acct, deref(b.Password), "password"); err != nil {
		return fail(err)
	}
	if deref(b.Confirm) == "" {
		return fail(fieldError("confirm", "error_confirm_deactivation"))
	}
	if err := s.accounts.Deactivate(ctx, acct.UserID, deref(b.Erase) != ""); err != nil {
		return fail(err)
	}
	return pageResponse{s.message(ctx, http.StatusOK, "deactivated_title", "deactivated_text", "", "User", acct.UserID)}, nil
}

// AccountCrossSigningResetSubmit is POST
// /_registrar/account/cross_signing_reset: once the person confirms, the
// homeserver lets them replace their cross-signing keys without further
// authentication for a while.
func (s *Server) AccountCrossSigningResetSubmit(ctx context.Context, req api.AccountCrossSigningResetSubmitRequestObject) (api.AccountCrossSigningResetSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	acct, b, fail := s.accountForm(ctx, req.Body.Csrf, viewURL(viewCrossSign))
	if fail != nil {
		return *fail, nil
	}
	if s.homeserver == nil {
		return pageResponse{s.message(ctx, http.StatusNotFound, "error_title", "crosssigning_unavailable", oauth.PathAccount)}, nil
	}
	err := s.homeserver.AllowCrossSigningReset(ctx, acct.UserID)
	switch {
	case errors.Is(err, homeserver.ErrUnsupported):
		return s.accountView(ctx, b, acct, viewCrossSign, "", "", &formError{status: http.StatusBadRequest, code: matrix.CodeUnrecognized,
			key: "crosssigning_unsupported"}), nil
	case err != nil:
		s.log.WarnContext(ctx, "allowing a cross-signing reset failed", "user_id", acct.UserID, "error", err)
		return s.accountView(ctx, b, acct, viewCrossSign, "", "", &formError{status: http.StatusServiceUnavailable, code: matrix.CodeUnknown,
			key: "error_homeserver_unavailable"}), nil
	}
	s.log.InfoContext(ctx, "cross-signing reset allowed", "user_id", acct.UserID)
	return pageResponse{s.message(ctx, http.StatusOK, "crosssigning_allowed_title", "crosssigning_allowed_text", "")}, nil
}

// AccountAvatar is GET /_registrar/account/avatar: a thumbnail of the
// signed-in account's avatar, from the homeserver.
func (s *Server) AccountAvatar(ctx context.Context, _ api.AccountAvatarRequestObject) (api.AccountAvatarResponseObject, error) {
	noAvatar := matrix.NotFound("No avatar")
	if s.oauth == nil || s.homeserver == nil {
		return nil, noAvatar
	}
	acct, ok := s.oauth.SignedIn(ctx, browser(ctx))
	if !ok {
		return nil, noAvatar
	}
	p, err := s.homeserver.Profile(ctx, acct.UserID)
	if err != nil || p.AvatarURL == "" {
		return nil, noAvatar
	}
	body, declared, err := s.homeserver.Thumbnail(ctx, p.AvatarURL, 96)
	if err != nil {
		if !errors.Is(err, homeserver.ErrNoMedia) {
			s.log.WarnContext(ctx, "fetching an avatar from the homeserver failed", "user_id", acct.UserID, "error", err)
		}
		return nil, noAvatar
	}
	typ := images.Sniff(body, declared)
	if typ == "" || typ == "image/svg+xml" {
		return nil, noAvatar
	}
	return privateImage{images.Image{Body: body, ContentType: typ}}, nil
}

// privateImage is an image of one account: not kept by shared caches.
type privateImage struct{ images.Image }

// VisitAccountAvatarResponse implements api.AccountAvatarResponseObject.
func (p privateImage) VisitAccountAvatarResponse(w http.ResponseWriter) error {
	images.SetHeaders(w.Header(), p.Image)
	w.Header().Set("Cache-Control", "private, max-age=300")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(p.Body)
	return err
}
