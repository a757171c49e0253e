package impl

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"registrar/api"
	"registrar/db"
	"registrar/impl/canonical"
	"registrar/impl/homeserver"
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

var accountTemplates = web.Templates(`
{{define "nav"}}<nav aria-label="Account"><p>
<a href="?action=org.matrix.profile" id="nav-profile">Profile</a> ·
<a href="?action=org.matrix.devices_list" id="nav-sessions">Sessions</a> ·
<a href="?action=password" id="nav-password">Password</a> ·
<a href="?action=org.matrix.account_deactivate" id="nav-deactivate">Deactivate</a></p>
<form method="post" action="{{.Logout}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<p class="hint">Signed in as <strong id="user">{{.User}}</strong> <button type="submit" id="signout">Sign out</button></p></form></nav>{{end}}

{{define "profile"}}{{template "head" .}}{{template "nav" .}}
<h2>Email addresses and phone numbers</h2>
{{if .Threepids}}<ul id="threepids">{{range .Threepids}}<li>{{.Address}} ({{.Medium}})
<form method="post" action="/_registrar/account/threepid/remove" class="inline"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<input type="hidden" name="medium" value="{{.Medium}}"><input type="hidden" name="address" value="{{.Address}}">
<button type="submit" aria-label="Remove {{.Address}}">Remove</button></form></li>{{end}}</ul>
{{else}}<p id="threepids">None yet.</p>{{end}}
{{if .ThreepidChanges}}<h3>Add an email address</h3>
<form method="post" action="/_registrar/account/threepid/add"><input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="medium" value="email">
<label for="address">Email address</label><input type="email" id="address" name="address" autocomplete="email" required>
<p><button type="submit" id="add-email">Send a code</button></p></form>
{{if .Phones}}<h3>Add a phone number</h3>
<form method="post" action="/_registrar/account/threepid/add"><input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="medium" value="msisdn">
<label for="country">Country code (e.g. GB)</label><input type="text" id="country" name="country" autocomplete="country" required>
<label for="phone">Phone number</label><input type="text" id="phone" name="address" autocomplete="tel" required>
<p><button type="submit" id="add-phone">Send a code</button></p></form>{{end}}{{end}}
{{template "foot"}}{{end}}

{{define "verify"}}{{template "head" .}}{{template "nav" .}}
<p>We sent a code to <strong id="address">{{.Address}}</strong>. Enter it here.</p>
<form method="post" action="/_registrar/account/threepid/verify"><input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="medium" value="{{.Medium}}"><input type="hidden" name="sid" value="{{.Sid}}">
<input type="hidden" name="client_secret" value="{{.ClientSecret}}">
<label for="code">Code</label><input type="text" id="code" name="code" autocomplete="one-time-code" required autofocus>
<p><button type="submit" id="verify">Add</button></p></form>{{template "foot"}}{{end}}

{{define "devices"}}{{template "head" .}}{{template "nav" .}}
<table id="devices"><thead><tr><th scope="col">Session</th><th scope="col">Last seen</th><th scope="col"></th></tr></thead><tbody>
{{range .Devices}}<tr id="device-{{.ID}}"><td><a href="?action=org.matrix.device_view&amp;device_id={{.ID}}">{{if .Name}}{{.Name}}{{else}}{{.ID}}{{end}}</a>
{{if .Current}}<span class="hint">(this browser's app)</span>{{end}}</td><td>{{.LastSeen}}</td>
<td><form method="post" action="/_registrar/account/device/delete"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<input type="hidden" name="device_id" value="{{.ID}}"><button type="submit" aria-label="End {{.ID}}">End</button></form></td></tr>{{end}}
</tbody></table>{{template "foot"}}{{end}}

{{define "device"}}{{template "head" .}}{{template "nav" .}}
{{with .Device}}<dl id="device"><dt>Name</dt><dd>{{if .Name}}{{.Name}}{{else}}(none){{end}}</dd><dt>ID</dt><dd id="device-id">{{.ID}}</dd>
<dt>Last seen</dt><dd>{{.LastSeen}}</dd><dt>Address</dt><dd>{{.IP}}</dd></dl>
<form method="post" action="/_registrar/account/device/delete"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<input type="hidden" name="device_id" value="{{.ID}}">
<p>{{if $.ConfirmDelete}}End this session? The app on it is signed out at once. {{end}}<button type="submit" id="end-session">End this session</button></p></form>{{end}}
{{template "foot"}}{{end}}

{{define "password"}}{{template "head" .}}{{template "nav" .}}
<form method="post" action="/_registrar/account/password"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="current_password">Current password</label><input type="password" id="current_password" name="current_password" autocomplete="current-password" required>
<label for="new_password">New password</label><input type="password" id="new_password" name="new_password" autocomplete="new-password" aria-describedby="password-hint" required>
<p class="hint" id="password-hint">{{.PasswordRules}}</p>
<label for="new_password_confirm">New password again</label><input type="password" id="new_password_confirm" name="new_password_confirm" autocomplete="new-password" required>
<p><label><input type="checkbox" name="logout_others" id="logout_others" value="yes"> Sign out every session (this browser too)</label></p>
<p><button type="submit" id="change-password">Change password</button></p></form>{{template "foot"}}{{end}}

{{define "deactivate"}}{{template "head" .}}{{template "nav" .}}
<p>Deactivating ends every session, removes your email addresses and phone numbers, and cannot be undone. Your user ID stays taken.</p>
<form method="post" action="/_registrar/account/deactivate"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<p><label><input type="checkbox" name="erase" id="erase" value="yes"> Also erase my profile</label></p>
<p><label><input type="checkbox" name="confirm" id="confirm" value="yes" required> I understand my account will be gone for good</label></p>
<p><button type="submit" id="deactivate">Deactivate my account</button></p></form>{{template "foot"}}{{end}}

{{define "crosssigning"}}{{template "head" .}}{{template "nav" .}}
<p>Your app asks to reset your cross-signing keys: the keys that let your other sessions and other people trust this account's devices.</p>
<p>Only continue if you started this in your app just now, for example because you lost your recovery key. After resetting, you will have to verify your other sessions again, and people who verified you will see a warning.</p>
<form method="post" action="/_registrar/account/cross_signing_reset"><input type="hidden" name="csrf" value="{{.CSRF}}">
<p><button type="submit" id="allow-reset">Allow the reset for 10 minutes</button></p></form>{{template "foot"}}{{end}}
`)

// accountView is what the account templates show.
type accountView struct {
	web.Frame
	CSRF, User, Logout                 string
	Threepids                          []db.Threepid
	ThreepidChanges, Phones            bool
	Devices                            []deviceRow
	Device                             *deviceRow
	ConfirmDelete                      bool
	PasswordRules                      string
	Medium, Address, Sid, ClientSecret string
}

type deviceRow struct {
	ID, Name, LastSeen, IP string
	Current                bool
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

func (s *Server) accountBase(b oauth.Browser, acct db.Account, title string) (accountView, []*http.Cookie) {
	token, set := s.oauth.CSRF(b)
	return accountView{Frame: web.Frame{Title: title, ServerName: s.cfg.ServerName, Style: web.StyleCSS}, CSRF: token,
		User: acct.UserID, Logout: oauth.PathLogout, PasswordRules: s.passwordRules()}, oauth.Cookies(set)
}

func (s *Server) renderAccount(status int, name string, v accountView, cookies []*http.Cookie) pageResponse {
	var buf bytes.Buffer
	if err := accountTemplates.ExecuteTemplate(&buf, name, v); err != nil {
		s.log.Error("rendering the account page failed", "error", err)
		return pageResponse{s.oauth.Message(http.StatusInternalServerError, "Something went wrong", "Something went wrong; try again.")}
	}
	return pageResponse{oauth.Page{Status: status, HTML: buf.Bytes(), Cookies: cookies}}
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
	return s.accountView(ctx, b, acct, action, deviceID, "", nil), nil
}

// accountView renders one view of the account, with an error or a notice.
func (s *Server) accountView(ctx context.Context, b oauth.Browser, acct db.Account, action, deviceID, notice string, failure error) pageResponse {
	titles := map[string]string{viewProfile: "Your account", viewDevices: "Your sessions", viewDevice: "Session", viewDelete: "End a session",
		viewPassword: "Change your password", viewDeactivate: "Deactivate your account", viewCrossSign: "Reset your cross-signing keys"}
	title, ok := titles[action]
	if !ok {
		action, title = viewProfile, titles[viewProfile]
	}
	v, cookies := s.accountBase(b, acct, title)
	v.Notice = notice
	status := http.StatusOK
	if failure != nil {
		v.Error, v.ErrorCode = signUpMessage(failure)
		status = signUpStatus(failure)
	}
	switch action {
	case viewProfile:
		tps, err := s.store.Threepids(ctx, acct.UserID)
		if err != nil {
			s.log.ErrorContext(ctx, "reading addresses failed", "error", err)
		}
		v.Threepids = tps
		v.ThreepidChanges = s.cfg.Enable3PIDChanges && s.threepids.EmailEnabled()
		v.Phones = s.cfg.Enable3PIDChanges && s.threepids.MsisdnEnabled()
		return s.renderAccount(status, "profile", v, cookies)
	case viewDevices, viewDevice, viewDelete:
		list, err := s.devices.List(ctx, acct.UserID)
		if err != nil {
			s.log.ErrorContext(ctx, "reading devices failed", "error", err)
		}
		for _, d := range list {
			row := deviceRow{ID: d.DeviceID, Name: d.DisplayName, LastSeen: seenAt(d.LastSeenAt), IP: d.LastSeenIP}
			v.Devices = append(v.Devices, row)
			if d.DeviceID == deviceID {
				v.Device = &row
			}
		}
		if action == viewDevices || v.Device == nil {
			if action != viewDevices {
				v.Title, v.Error = titles[viewDevices], "That session does not exist (any more)."
			}
			return s.renderAccount(status, "devices", v, cookies)
		}
		v.ConfirmDelete = action == viewDelete
		return s.renderAccount(status, "device", v, cookies)
	case viewPassword:
		return s.renderAccount(status, "password", v, cookies)
	case viewCrossSign:
		if s.homeserver == nil {
			break
		}
		return s.renderAccount(status, "crosssigning", v, cookies)
	}
	return s.renderAccount(status, "deactivate", v, cookies)
}

func seenAt(ms *int64) string {
	if ms == nil {
		return "never"
	}
	return time.UnixMilli(*ms).UTC().Format("2006-01-02 15:04 UTC")
}

// accountForm checks a form's CSRF token and the signed-in browser.
func (s *Server) accountForm(ctx context.Context, csrf *string, returnTo string) (db.Account, oauth.Browser, *pageResponse) {
	acct, b, signIn := s.accountSession(ctx, returnTo)
	if signIn != nil {
		return acct, b, &pageResponse{*signIn}
	}
	if !s.oauth.CheckCSRF(b, deref(csrf)) {
		return acct, b, &pageResponse{s.oauth.CSRFFailed()}
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
	if err := mayChangeAccount(asRequester(acct)); err != nil {
		return fail(err)
	}
	if !s.cfg.PasswordConfig.Enabled {
		return fail(matrix.Forbidden("Password change disabled"))
	}
	if deref(b.NewPassword) != deref(b.NewPasswordConfirm) {
		return fail(matrix.BadRequest(matrix.CodeInvalidParam, "The two new passwords are not the same."))
	}
	if err := s.accounts.CheckPasswordPolicy(deref(b.NewPassword)); err != nil {
		return fail(err)
	}
	if _, err := s.accounts.CheckCredentials(ctx, acct.UserID, deref(b.CurrentPassword), acct.UserID); err != nil {
		return fail(matrix.Forbidden("The current password is wrong."))
	}
	logoutAll := deref(b.LogoutOthers) != ""
	if err := s.accounts.SetPassword(ctx, acct.UserID, deref(b.NewPassword), db.PasswordLogout{Devices: logoutAll}); err != nil {
		return fail(err)
	}
	if logoutAll {
		return pageResponse{s.oauth.Message(http.StatusOK, "Password changed", "Your password was changed and every session signed out; sign in again.")}, nil
	}
	return s.accountView(ctx, br, acct, viewPassword, "", "Your password was changed.", nil), nil
}

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
	fail := func(err error) (api.AccountThreepidAddSubmitResponseObject, error) {
		return s.accountView(ctx, br, acct, viewProfile, "", "", err), nil
	}
	if err := mayChangeAccount(asRequester(acct)); err != nil {
		return fail(err)
	}
	if !s.cfg.Enable3PIDChanges {
		return fail(matrix.Forbidden("3PID changes are disabled on this server"))
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
		return fail(matrix.BadRequest(matrix.CodeInvalidParam, "Choose an email address or a phone number."))
	}
	resp, err := s.threepids.RequestToken(ctx, r)
	if err != nil {
		return fail(err)
	}
	v, cookies := s.accountBase(br, acct, "Check your messages")
	v.Medium, v.Address, v.Sid, v.ClientSecret = r.Medium, r.Address, resp.Sid, r.ClientSecret
	return s.renderAccount(http.StatusOK, "verify", v, cookies), nil
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
	fail := func(err error) (api.AccountThreepidVerifySubmitResponseObject, error) {
		return s.accountView(ctx, br, acct, viewProfile, "", "", err), nil
	}
	if err := mayChangeAccount(asRequester(acct)); err != nil {
		return fail(err)
	}
	limiter := s.threepids.Limiter()
	if err := limiter.Check(addressKey(ctx), s.now()); err != nil {
		return fail(err)
	}
	code := deref(b.Code)
	if deref(b.Medium) == db.MediumEmail {
		code = threepid.NormalizeCode(code)
	}
	if _, err := s.threepids.Submit(ctx, deref(b.Medium), deref(b.Sid), deref(b.ClientSecret), code); err != nil {
		_ = limiter.Take(addressKey(ctx), s.now())
		return fail(err)
	}
	if err := s.threepids.Bind(ctx, acct.UserID, deref(b.Sid), deref(b.ClientSecret)); err != nil {
		return fail(err)
	}
	return s.accountView(ctx, br, acct, viewProfile, "", "Added.", nil), nil
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
	return s.accountView(ctx, br, acct, viewProfile, "", "Removed.", nil), nil
}

// AccountDeviceDeleteSubmit is POST /_registrar/account/device/delete:
// the session's tokens stop working at once.
func (s *Server) AccountDeviceDeleteSubmit(ctx context.Context, req api.AccountDeviceDeleteSubmitRequestObject) (api.AccountDeviceDeleteSubmitResponseObject, error) {
	if err := s.oauthOn(); err != nil {
		return nil, err
	}
	b := req.Body
	acct, br, stop := s.accountForm(ctx, b.Csrf, viewURL(viewDevices))
	if stop != nil {
		return *stop, nil
	}
	if err := s.devices.Delete(ctx, acct.UserID, deref(b.DeviceId)); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "session ended on the account page", "user_id", acct.UserID, "device_id", deref(b.DeviceId))
	return s.accountView(ctx, br, acct, viewDevices, "", "The session was ended.", nil), nil
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
	if !s.cfg.AllowDeactivation {
		return fail(matrix.Forbidden("Account deactivation is disabled on this server"))
	}
	if deref(b.Confirm) == "" {
		return fail(matrix.BadRequest(matrix.CodeInvalidParam, "Tick the confirmation to deactivate."))
	}
	if _, err := s.accounts.CheckCredentials(ctx, acct.UserID, deref(b.Password), acct.UserID); err != nil {
		return fail(matrix.Forbidden("The password is wrong."))
	}
	if err := s.accounts.Deactivate(ctx, acct.UserID, deref(b.Erase) != ""); err != nil {
		return fail(err)
	}
	return pageResponse{s.oauth.Message(http.StatusOK, "Account deactivated", "Your account "+acct.UserID+" is deactivated.")}, nil
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
		return pageResponse{s.oauth.Message(http.StatusNotFound, "Not available", "This server provisions no homeserver.")}, nil
	}
	err := s.homeserver.AllowCrossSigningReset(ctx, acct.UserID)
	switch {
	case errors.Is(err, homeserver.ErrUnsupported):
		return s.accountView(ctx, b, acct, viewCrossSign, "", "", matrix.BadRequest(matrix.CodeUnrecognized,
			"The homeserver does not support resetting cross-signing keys this way; ask its administrator.")), nil
	case err != nil:
		s.log.WarnContext(ctx, "allowing a cross-signing reset failed", "user_id", acct.UserID, "error", err)
		return s.accountView(ctx, b, acct, viewCrossSign, "", "", homeserver.ErrUnavailable), nil
	}
	s.log.InfoContext(ctx, "cross-signing reset allowed", "user_id", acct.UserID)
	return pageResponse{s.oauth.Message(http.StatusOK, "Reset allowed",
		"Go back to your app and reset your cross-signing keys within 10 minutes.")}, nil
}
