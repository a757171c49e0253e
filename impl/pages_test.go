package impl_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"registrar/impl"
	"registrar/impl/config"
	"registrar/impl/passwords"
	"registrar/impl/web"
)

// fieldOf is the <input> (or other control) whose id is id, as written.
func fieldOf(t *testing.T, body, id string) string {
	t.Helper()
	m := regexp.MustCompile(`<(input|select|textarea)[^>]* id="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindString(body)
	if m == "" {
		t.Fatalf("no control #%s on the page: %s", id, body)
	}
	return m
}

// TestFormErrorsStandBesideTheirFields: each form's refusals are said
// beside the field they concern, which is marked invalid, described by
// the message and focused; values are kept but passwords never are.
func TestFormErrorsStandBesideTheirFields(t *testing.T) {
	sink := newSMTPSink(t)
	env := newOAuthEnv(t, emailConfig(sink), func(c *config.Config) {
		c.PasswordConfig.Policy = passwords.Policy{Enabled: true, MinimumLength: 12}
	})
	operatorAccount(t, env.testEnv, "taken")
	member := env.browser(t)
	signIn := member.get(env.base + "/_registrar/login")
	if p := member.signIn(signIn, "taken", "pw-taken-long-enough-for-any-policy-1"); !strings.Contains(p.body, `id="user"`) {
		t.Fatalf("sign-in %d %s", p.status, p.body)
	}

	type form struct {
		name     string
		b        *browser
		page     string // the page the form is on
		action   string
		values   url.Values
		field    string // the field the message stands beside
		status   int
		contains string
	}
	anon := env.browser(t)
	cases := []form{
		{"sign-in, wrong password", anon, "/_registrar/login", "/_registrar/login",
			url.Values{"username": {"taken"}, "password": {"pw-wrong-password-9"}}, "password", 400, "Wrong username or password"},
		{"sign-up, taken username", anon, "/_registrar/signup", "/_registrar/signup",
			url.Values{"step": {"form"}, "username": {"taken"}, "password": {"pw-long-enough-12"}, "password_confirm": {"pw-long-enough-12"}},
			"username", 400, "That username is taken"},
		{"sign-up, invalid username", anon, "/_registrar/signup", "/_registrar/signup",
			url.Values{"step": {"form"}, "username": {"Not Valid"}, "password": {"pw-long-enough-12"}, "password_confirm": {"pw-long-enough-12"}},
			"username", 400, "lower-case letters"},
		{"sign-up, passwords differ", anon, "/_registrar/signup", "/_registrar/signup",
			url.Values{"step": {"form"}, "username": {"newbie"}, "password": {"pw-long-enough-12"}, "password_confirm": {"pw-long-enough-13"}},
			"password_confirm", 400, "not the same"},
		{"sign-up, weak password", anon, "/_registrar/signup", "/_registrar/signup",
			url.Values{"step": {"form"}, "username": {"newbie"}, "password": {"pw-short"}, "password_confirm": {"pw-short"}},
			"password", 400, "at least 12 characters"},
		{"device code, wrong", anon, "/_registrar/device", "/_registrar/device", url.Values{"user_code": {"WXYZ-WXYZ"}}, "user_code", 400,
			"wrong or has expired"},
		{"password, wrong current", member, "/_registrar/account?action=password", "/_registrar/account/password",
			url.Values{"current_password": {"pw-not-mine-1234"}, "new_password": {"pw-new-long-enough-1"}, "new_password_confirm": {"pw-new-long-enough-1"}},
			"current_password", 403, "password is wrong"},
		{"password, new ones differ", member, "/_registrar/account?action=password", "/_registrar/account/password",
			url.Values{"current_password": {"pw-taken-long-enough-for-any-policy-1"}, "new_password": {"pw-new-long-enough-1"},
				"new_password_confirm": {"pw-new-long-enough-2"}}, "new_password_confirm", 400, "not the same"},
		{"password, weak", member, "/_registrar/account?action=password", "/_registrar/account/password",
			url.Values{"current_password": {"pw-taken-long-enough-for-any-policy-1"}, "new_password": {"pw-short"}, "new_password_confirm": {"pw-short"}},
			"new_password", 400, "too weak"},
		{"deactivate, unconfirmed", member, "/_registrar/account?action=org.matrix.account_deactivate", "/_registrar/account/deactivate",
			url.Values{"password": {"pw-taken-long-enough-for-any-policy-1"}}, "confirm", 400, "Tick the confirmation"},
		{"deactivate, wrong password", member, "/_registrar/account?action=org.matrix.account_deactivate", "/_registrar/account/deactivate",
			url.Values{"password": {"pw-not-mine-1234"}, "confirm": {"yes"}}, "password", 403, "password is wrong"},
		{"profile, display name with a line break", member, "/_registrar/account", "/_registrar/account/profile",
			url.Values{"display_name": {"two\nlines"}}, "display_name", 400, "no line breaks"},
		{"address, not an email address", member, "/_registrar/account", "/_registrar/account/threepid/add",
			url.Values{"medium": {"email"}, "address": {"not-an-address"}}, "address", 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.b.get(env.base + tc.page)
			values := url.Values{"csrf": {p.csrf(t)}}
			for k, v := range tc.values {
				values[k] = v
			}
			p = tc.b.post(env.base+tc.action, values)
			if p.status != tc.status || !strings.Contains(p.body, tc.contains) {
				t.Fatalf("%d (want %d) %s", p.status, tc.status, p.body)
			}
			input := fieldOf(t, p.body, tc.field)
			if !strings.Contains(input, `aria-invalid="true"`) || !strings.Contains(input, tc.field+"-error") || !strings.Contains(input, "autofocus") {
				t.Errorf("the field is not marked: %s", input)
			}
			message := regexp.MustCompile(`<p class="field-error" id="` + regexp.QuoteMeta(tc.field) + `-error">([^<]+)</p>`).FindStringSubmatch(p.body)
			if message == nil {
				t.Fatalf("no message beside #%s: %s", tc.field, p.body)
			}
			if strings.Count(p.body, "autofocus") != 1 || strings.Contains(p.body, `role="alert"`) {
				t.Errorf("one field has the focus and nothing else is said: %s", p.body)
			}
			for name, v := range tc.values {
				if strings.Contains(name, "password") && strings.Contains(p.body, `value="`+v[0]+`"`) {
					t.Errorf("the password %s was sent back", name)
				}
			}
			if u := tc.values.Get("username"); u != "" && !strings.Contains(fieldOf(t, p.body, "username"), `value="`+u+`"`) {
				t.Errorf("the username was not kept")
			}
		})
	}
}

// TestSessionsPageNamesSessions: an OAuth client's session is named by the
// client's client_name (with its logo when it has one), a legacy login by
// its device display name or else by its user agent; this browser is
// marked; one session is renamed, one ended, then all others.
func TestSessionsPageNamesSessions(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("sessions", "pw-sessions-1").expect(t, 200, "")
	clientID := env.registerClient(t, nil)
	b := env.signedInBrowser(t, clientID, "sessions", "pw-sessions-1") // an OAuth session, SESSIONSFIRST
	env.do("POST", loginURL, loginBody("sessions", "pw-sessions-1", map[string]any{"device_id": "NAMEDLAPTOP",
		"initial_device_display_name": "Work laptop"}), "User-Agent", "mautrix-go/v0.22.0").expect(t, 200, "")
	phone := env.do("POST", loginURL, loginBody("sessions", "pw-sessions-1", map[string]any{"device_id": "BAREPHONE"}),
		"User-Agent", "Element X/1.9.4 (iPhone; iOS 18.1; Scale/3.00)").expect(t, 200, "")
	if err := env.server.FlushDeviceUses(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := b.get(env.base + "/_registrar/account?action=org.matrix.devices_list")
	row := func(anchor string) string {
		t.Helper()
		m := regexp.MustCompile(`(?s)<li class="session" id="` + anchor + `">(.*?)</li>`).FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("no session %s on the page: %s", anchor, p.body)
		}
		return m[1]
	}
	name := regexp.MustCompile(`class="session-name">([^<]+)<`)
	for anchor, want := range map[string]string{"device-SESSIONSFIRST": "Test client", "device-NAMEDLAPTOP": "Work laptop",
		"device-BAREPHONE": "Element X on iOS", "browser-current": "Go-http-client"} {
		if got := name.FindStringSubmatch(row(anchor)); got == nil || got[1] != want {
			t.Errorf("%s is named %v, want %q", anchor, got, want)
		}
	}
	if r := row("browser-current"); !strings.Contains(r, `id="current"`) || strings.Contains(r, "<form") {
		t.Errorf("this browser is not marked current, or can be ended from here: %s", r)
	}
	if r := row("device-NAMEDLAPTOP"); !strings.Contains(r, "mautrix-go") || !strings.Contains(r, "192.0.2.1") ||
		!regexp.MustCompile(`<time datetime="[0-9T:-]+Z" title="[^"]+">Active just now</time>`).MatchString(r) {
		t.Errorf("the laptop's app, address and last use are not shown: %s", r)
	}

	// Rename the phone, end it, then end every other session.
	csrf := p.csrf(t)
	p = b.post(env.base+"/_registrar/account/device/rename", url.Values{"csrf": {csrf}, "device_id": {"BAREPHONE"}, "display_name": {"My phone"}})
	if !strings.Contains(p.body, `id="session-name">My phone<`) || !strings.Contains(p.body, `id="notice"`) {
		t.Fatalf("rename %d %s", p.status, p.body)
	}
	p = b.post(env.base+"/_registrar/account/device/delete", url.Values{"csrf": {csrf}, "device_id": {"BAREPHONE"}})
	if strings.Contains(p.body, "device-BAREPHONE") {
		t.Fatalf("the phone is still listed: %s", p.body)
	}
	env.do("GET", whoamiURL, "", bearer(phone.str("access_token"))...).expect(t, 401, "M_UNKNOWN_TOKEN")
	other := env.browser(t)
	other.signIn(other.get(env.base+"/_registrar/login"), "sessions", "pw-sessions-1")
	p = b.post(env.base+"/_registrar/account/device/end_others", url.Values{"csrf": {csrf}})
	if p.status != 200 || strings.Contains(p.body, `id="device-`) || strings.Count(p.body, `class="session"`) != 1 {
		t.Fatalf("after ending the others %d %s", p.status, p.body)
	}
	if q := other.get(env.base + "/_registrar/account"); !strings.Contains(q.body, `id="password"`) {
		t.Fatalf("the other browser is still signed in: %s", q.body)
	}
	if q := b.get(env.base + "/_registrar/account"); !strings.Contains(q.body, `id="user"`) {
		t.Fatalf("this browser was signed out: %s", q.body)
	}
}

// TestPagesInEachLanguage: the language comes from ?lang= (and is kept in
// a cookie), else Accept-Language; every page's text comes from the
// catalogue, so no message ID is ever shown.
func TestPagesInEachLanguage(t *testing.T) {
	sink := newSMTPSink(t)
	env := newOAuthEnv(t, emailConfig(sink))
	env.register("polyglot", "pw-polyglot-1").expect(t, 200, "")
	for _, tc := range []struct {
		lang, header, title string
	}{{"en", "en-GB,en;q=0.8", "Sign in"}, {"de", "de-CH, de;q=0.9", "Anmelden"}, {"fr", "fr-BE,fr;q=0.9,en;q=0.5", "Se connecter"}} {
		b := env.browser(t)
		req, _ := http.NewRequest("GET", env.base+"/_registrar/login", nil)
		req.Header.Set("Accept-Language", tc.header)
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		p := readPage(t, resp)
		if !strings.Contains(p.body, `<html lang="`+tc.lang+`"`) || !strings.Contains(p.body, `<h1 id="title">`+tc.title+`</h1>`) {
			t.Errorf("%s: %s", tc.header, p.body)
		}
		// Signed in, each page of the account in the language chosen.
		p = b.get(env.base + "/_registrar/login?lang=" + tc.lang)
		if !strings.Contains(strings.Join(p.header.Values("Set-Cookie"), " "), web.LanguageCookie+"="+tc.lang) {
			t.Errorf("?lang=%s did not set the cookie: %v", tc.lang, p.header)
		}
		b.signIn(p, "polyglot", "pw-polyglot-1")
		for _, path := range []string{"/_registrar/account", "/_registrar/account?action=org.matrix.devices_list", "/_registrar/account?action=password",
			"/_registrar/account?action=org.matrix.account_deactivate", "/_registrar/device", "/_registrar/signup", "/_registrar/consent/gone",
			"/_registrar/oauth2/authorize?client_id=nobody"} {
			p := b.get(env.base + path)
			if !strings.Contains(p.body, `<html lang="`+tc.lang+`"`) {
				t.Errorf("%s in %s: %s", path, tc.lang, p.body)
			}
		}
	}
	if missing := web.Missing(); len(missing) > 0 {
		t.Fatalf("pages asked for messages no catalogue has: %v", missing)
	}
}

// TestCustomTemplateDirectory: a template in custom_template_directory
// replaces the built-in one; one that does not parse, or replaces none,
// stops the server with one line naming its file.
func TestCustomTemplateDirectory(t *testing.T) {
	dir := t.TempDir()
	custom := `{{define "signin"}}{{template "head" .}}<p id="custom">Welcome to {{.Site.Name}}</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="next" value="{{.Next}}">
<label for="username">{{t "field_username"}}</label><input id="username" name="username" autocomplete="username">
<label for="password">{{t "field_password"}}</label><input id="password" name="password" type="password" autocomplete="current-password">
<button id="submit">{{t "signin_submit"}}</button></form>{{template "foot" .}}{{end}}`
	if err := os.WriteFile(filepath.Join(dir, "signin.html"), []byte(custom), 0o644); err != nil {
		t.Fatal(err)
	}
	env := newOAuthEnv(t, func(c *config.Config) {
		c.CustomTemplateDirectory = dir
		c.Branding.ServiceName = "Custom Chat"
	})
	env.register("custom", "pw-custom-1").expect(t, 200, "")
	b := env.browser(t)
	p := b.get(env.base + "/_registrar/login")
	if !strings.Contains(p.body, `<p id="custom">Welcome to Custom Chat</p>`) {
		t.Fatalf("the custom sign-in page is not used: %s", p.body)
	}
	if p = b.signIn(p, "custom", "pw-custom-1"); !strings.Contains(p.body, `id="user"`) {
		t.Fatalf("signing in on the custom page: %s", p.body)
	}

	for name, text := range map[string]string{"signin.html": `{{define "signin"}}{{if}}{{end}}`, "nothing.html": `<p>hello</p>`} {
		bad := t.TempDir()
		if err := os.WriteFile(filepath.Join(bad, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := env.cfg
		cfg.CustomTemplateDirectory = bad
		_, err := impl.NewServer(cfg, env.store, impl.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil || !strings.Contains(err.Error(), filepath.Join(bad, name)) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestAuthorizationErrorsArePages: an authorisation request that cannot go
// back to its client (unknown client, unregistered redirect URI) shows the
// person a page saying so in words, never the protocol's JSON.
func TestAuthorizationErrorsArePages(t *testing.T) {
	env := newOAuthEnv(t)
	clientID := env.registerClient(t, nil)
	b := env.browser(t)
	for name, tc := range map[string]struct{ query, says string }{
		"unknown client": {"response_type=code&client_id=nobody&redirect_uri=" + url.QueryEscape("http://127.0.0.1/callback"), "not known to this server"},
		"bad redirect": {"response_type=code&client_id=" + clientID + "&redirect_uri=" + url.QueryEscape("https://evil.example/"),
			"did not register"},
	} {
		p := b.get(env.base + "/_registrar/oauth2/authorize?" + tc.query)
		if p.status != 400 && p.status != 401 || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") || !strings.Contains(p.body, tc.says) ||
			!strings.Contains(p.body, `id="error-code"`) || p.location != "" {
			t.Errorf("%s: %d %s %s", name, p.status, p.header.Get("Content-Type"), p.body)
		}
		if strings.Contains(p.body, "evil.example") && name == "bad redirect" && !strings.Contains(p.body, "redirect_uri") {
			t.Errorf("%s: %s", name, p.body)
		}
	}
}

// TestProfilePage: the display name is saved (and pushed through the
// outbox); a server that cannot take addresses says why in a sentence.
func TestProfilePage(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("profiled", "pw-profiled-1").expect(t, 200, "")
	b := env.browser(t)
	p := b.signIn(b.get(env.base+"/_registrar/login"), "profiled", "pw-profiled-1")
	if !strings.Contains(p.body, `id="threepid-unavailable">This server cannot send email`) {
		t.Fatalf("no sentence about addresses: %s", p.body)
	}
	p = b.post(env.base+"/_registrar/account/profile", url.Values{"csrf": {p.csrf(t)}, "display_name": {"  Pro Filed  "}})
	if !strings.Contains(p.body, `id="display-name-shown">Pro Filed<`) || !strings.Contains(p.body, `id="notice"`) {
		t.Fatalf("saving the display name: %s", p.body)
	}
	if acct, _ := env.store.AccountByUserID(context.Background(), "@profiled:example.org"); acct.DisplayName != "Pro Filed" {
		t.Fatalf("stored display name %q", acct.DisplayName)
	}

	off := newOAuthEnv(t, func(c *config.Config) { c.Enable3PIDChanges = false })
	off.register("fixed", "pw-fixed-1").expect(t, 200, "")
	ob := off.browser(t)
	if p := ob.signIn(ob.get(off.base+"/_registrar/login"), "fixed", "pw-fixed-1"); !strings.Contains(p.body, "does not let addresses be added") {
		t.Fatalf("no sentence about addresses: %s", p.body)
	}
}

// TestBrandingOnEveryPage: the service's name, footer documents and colour
// are on the pages; the style sheet and script are served, cacheable.
func TestBrandingOnEveryPage(t *testing.T) {
	env := newOAuthEnv(t, func(c *config.Config) {
		c.Branding = web.Branding{ServiceName: "Brand Chat", LogoURI: "/brand/logo.svg", PrimaryColor: "#ffcc00",
			PolicyURI: "https://brand.example/privacy", TOSURI: "https://brand.example/terms", Imprint: "Brand GmbH, Berlin"}
	})
	b := env.browser(t)
	p := b.get(env.base + "/_registrar/login")
	for _, want := range []string{`<span id="service-name">Brand Chat</span>`, `<img src="/brand/logo.svg"`, `id="server-name"`,
		`href="https://brand.example/privacy"`, `href="https://brand.example/terms"`, `<p id="imprint">Brand GmbH, Berlin</p>`,
		`<title>Sign in · Brand Chat</title>`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the page lacks %s: %s", want, p.body)
		}
	}
	css := regexp.MustCompile(`href="(/_registrar/static/registrar\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(p.body)
	if css == nil {
		t.Fatal("no style sheet")
	}
	sheet := b.get(env.base + strings.ReplaceAll(css[1], "&amp;", "&"))
	if sheet.status != 200 || !strings.HasPrefix(sheet.header.Get("Content-Type"), "text/css") ||
		!strings.Contains(sheet.header.Get("Cache-Control"), "max-age") || !strings.Contains(sheet.body, "--primary: #") {
		t.Fatalf("style sheet %d %v %s", sheet.status, sheet.header, sheet.body[len(sheet.body)-300:])
	}
	if js := b.get(env.base + "/_registrar/static/registrar.js"); js.status != 200 || !strings.HasPrefix(js.header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("script %d %v", js.status, js.header)
	}
	for _, name := range []string{"nothing.css", "..%2Fweb.go", "logo"} {
		if r := env.do("GET", "/_registrar/static/"+name, ""); r.Status != 404 {
			t.Errorf("%s: %d", name, r.Status)
		}
	}
}

// TestClientLogoLeftOutWhenUnavailable: a client's logo that cannot be
// fetched is left out of the consent page (no broken image), and
// registrar's copy of it is a 404.
func TestClientLogoLeftOutWhenUnavailable(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("logoless", "pw-logoless-1").expect(t, 200, "")
	clientID := env.registerClient(t, map[string]any{"logo_uri": "https://client.example.org/no-such-logo.png"})
	b := env.signedInBrowser(t, clientID, "logoless", "pw-logoless-1")
	p := env.nextAuthorization(t, b, clientID, "LOGOLESSNEXT")
	if !strings.Contains(p.body, `id="client-card"`) || strings.Contains(p.body, "/_registrar/clients/") {
		t.Fatalf("consent page %s", p.body)
	}
	if r := env.do("GET", "/_registrar/clients/"+url.PathEscape(clientID)+"/logo", ""); r.Status != 404 {
		t.Fatalf("logo %d", r.Status)
	}
}

// TestEmailsCarryTheBranding: the built-in HTML emails show the service's
// name and logo, its colour on the button, and the operator's documents
// and imprint.
func TestEmailsCarryTheBranding(t *testing.T) {
	sink := newSMTPSink(t)
	env := newEnv(t, emailConfig(sink), func(c *config.Config) {
		c.Branding = web.Branding{ServiceName: "Mail Chat", LogoURI: "/brand/logo.png", PrimaryColor: "#123456",
			PolicyURI: "https://mail.example/privacy", Imprint: "Mail Ltd"}
	})
	requestEmailToken(env, registerEmailURL, "brand", "branded@example.org", 1).expect(t, 200, "")
	html := sink.last(t).HTML
	for _, want := range []string{"Mail Chat", `src="https://matrix.example.org/brand/logo.png"`, "background:#123456",
		`href="https://mail.example/privacy"`, "Mail Ltd", "submit_token"} {
		if !strings.Contains(html, want) {
			t.Errorf("the email lacks %s: %s", want, html)
		}
	}
}

// TestPageViewsNoteTheSessionsUseOncePerMinute: the sessions page's last
// use is kept to the minute, so a page view writes it only when a minute
// has passed (or the browser or address changed).
func TestPageViewsNoteTheSessionsUseOncePerMinute(t *testing.T) {
	env := newOAuthEnv(t)
	env.register("viewer", "pw-viewer-1").expect(t, 200, "")
	b := env.browser(t)
	b.signIn(b.get(env.base+"/_registrar/login"), "viewer", "pw-viewer-1")
	lastActive := func() int64 {
		t.Helper()
		list, err := env.store.BrowserSessions(context.Background(), "@viewer:example.org")
		if err != nil || len(list) != 1 || list[0].LastActiveAt == nil {
			t.Fatalf("sessions %+v %v", list, err)
		}
		return *list[0].LastActiveAt
	}
	first := lastActive()
	env.clock.Advance(30 * time.Second)
	b.get(env.base + "/_registrar/account")
	if got := lastActive(); got != first {
		t.Fatalf("a view within the minute wrote %d (was %d)", got, first)
	}
	env.clock.Advance(40 * time.Second)
	b.get(env.base + "/_registrar/account")
	if got := lastActive(); got != env.clock.Now().UnixMilli() {
		t.Fatalf("a view after the minute left %d, want %d", got, env.clock.Now().UnixMilli())
	}
}

// TestSignUpTokenRefusalStandsBesideTheToken: a wrong registration token
// (a stage's refusal, M_UNAUTHORIZED like a captcha's) is said beside the
// token field.
func TestSignUpTokenRefusalStandsBesideTheToken(t *testing.T) {
	env := newOAuthEnv(t, tokenRequired)
	b := env.browser(t)
	p := b.get(env.base + "/_registrar/signup")
	p = b.post(env.base+"/_registrar/signup", url.Values{"csrf": {p.csrf(t)}, "step": {"form"}, "username": {"tokenless"},
		"password": {"pw-tokenless-1"}, "password_confirm": {"pw-tokenless-1"}, "registration_token": {"not-a-token"}})
	if input := fieldOf(t, p.body, "registration_token"); p.status != 400 || !strings.Contains(input, `aria-invalid="true"`) ||
		!strings.Contains(p.body, `id="registration_token-error"`) || !strings.Contains(p.body, `data-errcode="M_UNAUTHORIZED"`) {
		t.Fatalf("%d %s", p.status, p.body)
	}
}
