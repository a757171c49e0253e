package impl_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"registrar/api"
	"registrar/impl"
	"registrar/impl/config"
)

// fakeSynapse is Synapse's /_synapse/mas/* API (Synapse 1.135+, read in
// element-hq/synapse synapse/rest/synapse/mas/*.py): the shared secret as
// the bearer token (403 otherwise), pydantic's strict bodies (a wrong
// type or an unknown field is a 400), 404 M_NOT_FOUND for an unknown
// user, 201 for a user or device created and 200 for one updated, 204
// for a device deleted.
type fakeSynapse struct {
	t      *testing.T
	secret string
	srv    *httptest.Server

	mu    sync.Mutex
	down  bool
	users map[string]*fakeUser
	// taken are localparts is_localpart_available refuses (an
	// application service's namespace: M_EXCLUSIVE).
	exclusive []string
	calls     []string
}

type fakeUser struct {
	displayName, avatarURL string
	emails                 []string
	deactivated, erased    bool
	devices                map[string]string
	crossSigningReset      bool
}

func newFakeSynapse(t *testing.T, secret string) *fakeSynapse {
	f := &fakeSynapse{t: t, secret: secret, users: map[string]*fakeUser{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSynapse) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeSynapse) user(localpart string) *fakeUser {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[localpart]
	if u == nil {
		return nil
	}
	c := *u
	c.devices = map[string]string{}
	for k, v := range u.devices {
		c.devices[k] = v
	}
	return &c
}

func (f *fakeSynapse) reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status != http.StatusNoContent {
		_ = json.NewEncoder(w).Encode(body)
	}
}

func errBody(code, msg string) map[string]string {
	return map[string]string{"errcode": code, "error": msg}
}

// strictBody decodes a JSON body into fields: each known field must have
// its type (string, bool, []string), unknown fields are refused, and
// required ones must be present.
func strictBody(r *http.Request, types map[string]string, required ...string) (map[string]any, string) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		return nil, "not a JSON object"
	}
	for k, v := range body {
		want, ok := types[k]
		if !ok {
			return nil, "unknown field " + k
		}
		switch want {
		case "string":
			if _, ok := v.(string); !ok {
				return nil, k + " must be a string"
			}
		case "bool":
			if _, ok := v.(bool); !ok {
				return nil, k + " must be a boolean"
			}
		case "[]string":
			list, ok := v.([]any)
			if !ok {
				return nil, k + " must be a list"
			}
			for _, e := range list {
				if _, ok := e.(string); !ok {
					return nil, k + " must be a list of strings"
				}
			}
		}
	}
	for _, k := range required {
		if _, ok := body[k]; !ok {
			return nil, k + " is required"
		}
	}
	for _, pair := range [][2]string{{"set_displayname", "unset_displayname"}, {"set_avatar_url", "unset_avatar_url"}, {"set_emails", "unset_emails"}} {
		if _, a := body[pair[0]]; a {
			if _, b := body[pair[1]]; b {
				return nil, "Cannot specify both " + pair[1] + " and " + pair[0]
			}
		}
	}
	return body, ""
}

func strings2(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

func (f *fakeSynapse) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	if f.down {
		f.reply(w, http.StatusBadGateway, errBody("M_UNKNOWN", "down"))
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.secret {
		f.reply(w, http.StatusForbidden, errBody("M_FORBIDDEN", "This endpoint must only be called by MAS"))
		return
	}
	// The client-server API's profile and authenticated media.
	if userID, ok := strings.CutPrefix(r.URL.Path, "/_matrix/client/v3/profile/"); ok {
		lp := strings.TrimSuffix(strings.TrimPrefix(userID, "@"), ":example.org")
		if u := f.users[lp]; u != nil {
			f.reply(w, 200, map[string]any{"displayname": u.displayName, "avatar_url": u.avatarURL})
			return
		}
		f.reply(w, 404, errBody("M_NOT_FOUND", "Profile was not found"))
		return
	}
	if r.URL.Path == "/_matrix/client/v1/media/thumbnail/example.org/avatar1" {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 32)...))
		return
	}
	op := strings.TrimPrefix(r.URL.Path, "/_synapse/mas/")
	if r.Method == http.MethodGet {
		lp := r.URL.Query().Get("localpart")
		switch op {
		case "query_user":
			u := f.users[lp]
			if u == nil {
				f.reply(w, 404, errBody("M_NOT_FOUND", "User not found"))
				return
			}
			f.reply(w, 200, map[string]any{"user_id": "@" + lp + ":example.org", "display_name": u.displayName,
				"avatar_url": u.avatarURL, "is_suspended": false, "is_deactivated": u.deactivated})
		case "is_localpart_available":
			switch {
			case f.users[lp] != nil:
				f.reply(w, 400, errBody("M_USER_IN_USE", "User ID already taken."))
			case slices.Contains(f.exclusive, lp):
				f.reply(w, 400, errBody("M_EXCLUSIVE", "User ID reserved by an application service."))
			default:
				f.reply(w, 200, map[string]any{})
			}
		default:
			f.reply(w, 404, errBody("M_UNRECOGNIZED", "Unrecognized request"))
		}
		return
	}
	var body map[string]any
	var problem string
	switch op {
	case "provision_user":
		body, problem = strictBody(r, map[string]string{"localpart": "string", "set_displayname": "string", "unset_displayname": "bool",
			"set_avatar_url": "string", "unset_avatar_url": "bool", "set_emails": "[]string", "unset_emails": "bool"}, "localpart")
	case "delete_user":
		body, problem = strictBody(r, map[string]string{"localpart": "string", "erase": "bool"}, "localpart", "erase")
	case "reactivate_user", "allow_cross_signing_reset", "unset_displayname":
		body, problem = strictBody(r, map[string]string{"localpart": "string"}, "localpart")
	case "upsert_device":
		body, problem = strictBody(r, map[string]string{"localpart": "string", "device_id": "string", "display_name": "string"}, "localpart", "device_id")
	case "delete_device":
		body, problem = strictBody(r, map[string]string{"localpart": "string", "device_id": "string"}, "localpart", "device_id")
	case "update_device_display_name":
		body, problem = strictBody(r, map[string]string{"localpart": "string", "device_id": "string", "display_name": "string"},
			"localpart", "device_id", "display_name")
	case "sync_devices":
		body, problem = strictBody(r, map[string]string{"localpart": "string", "devices": "[]string"}, "localpart", "devices")
	default:
		f.reply(w, 404, errBody("M_UNRECOGNIZED", "Unrecognized request"))
		return
	}
	if problem != "" {
		f.t.Errorf("%s: %s", op, problem)
		f.reply(w, 400, errBody("M_BAD_JSON", problem))
		return
	}
	lp := body["localpart"].(string)
	u := f.users[lp]
	if op == "provision_user" {
		status := 200
		if u == nil {
			u = &fakeUser{devices: map[string]string{}, displayName: lp}
			f.users[lp] = u
			status = 201
		}
		if v, ok := body["set_displayname"]; ok {
			u.displayName = v.(string)
		}
		if body["unset_displayname"] == true && status == 200 {
			u.displayName = ""
		}
		if v, ok := body["set_avatar_url"]; ok {
			u.avatarURL = v.(string)
		}
		if body["unset_avatar_url"] == true {
			u.avatarURL = ""
		}
		if v, ok := body["set_emails"]; ok {
			u.emails = strings2(v)
		}
		if body["unset_emails"] == true {
			u.emails = nil
		}
		f.reply(w, status, map[string]any{})
		return
	}
	if u == nil {
		f.reply(w, 404, errBody("M_NOT_FOUND", "User not found"))
		return
	}
	switch op {
	case "delete_user":
		u.deactivated, u.erased, u.devices = true, body["erase"].(bool), map[string]string{}
	case "reactivate_user":
		u.deactivated = false
	case "allow_cross_signing_reset":
		u.crossSigningReset = true
	case "upsert_device":
		id := body["device_id"].(string)
		_, existed := u.devices[id]
		name, _ := body["display_name"].(string)
		u.devices[id] = name
		if !existed {
			f.reply(w, 201, map[string]any{})
			return
		}
	case "delete_device":
		delete(u.devices, body["device_id"].(string))
		f.reply(w, 204, nil)
		return
	case "update_device_display_name":
		u.devices[body["device_id"].(string)] = body["display_name"].(string)
	case "sync_devices":
		want := strings2(body["devices"])
		for id := range u.devices {
			if !slices.Contains(want, id) {
				delete(u.devices, id)
			}
		}
		for _, id := range want {
			if _, ok := u.devices[id]; !ok {
				u.devices[id] = ""
			}
		}
	}
	f.reply(w, 200, map[string]any{})
}

func (u *fakeUser) deviceIDs() []string {
	var ids []string
	for id := range u.devices {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// newHomeserverEnv is registrar provisioning the fake Synapse over the
// /_synapse/mas API, with a configured client for introspection.
func newHomeserverEnv(t *testing.T, mutate ...func(*config.Config)) (*oauthEnv, *fakeSynapse) {
	fake := newFakeSynapse(t, "shared-secret-0123456789")
	env := newOAuthEnv(t, append([]func(*config.Config){func(c *config.Config) {
		c.Matrix = config.Matrix{Endpoint: fake.srv.URL + "/", Secret: fake.secret, Kind: config.KindSynapse}
		c.Clients = []config.Client{{ClientID: "synapse", ClientSecret: "client-secret-0123456789"},
			{ClientID: "poster", ClientAuthMethod: config.ClientSecretPost, ClientSecret: "post-secret-0123456789"}}
	}}, mutate...)...)
	return env, fake
}

// introspect asks registrar about token as newer Synapse's mas.py does.
func (e *oauthEnv) introspect(t *testing.T, token string, auth func(*http.Request)) (int, map[string]any, http.Header) {
	t.Helper()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, _ := http.NewRequest("POST", e.base+"/oauth2/introspect", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-MAS-Supports-Device-Id", "1")
	auth(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, resp.Header
}

func bearerSecret(secret string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+secret) }
}

// TestIntrospectionAsNewerSynapseCallsIt: the bearer secret, the answer's
// strict types and values for a legacy login, an OAuth token, a guest and
// an admin; inactive for what may not be used; callers refused.
func TestIntrospectionAsNewerSynapseCallsIt(t *testing.T) {
	env, fake := newHomeserverEnv(t)
	admin := env.adminToken("root")
	reg := env.register("alice", "pw-alice-1", map[string]any{"device_id": "ALICEDEV", "refresh_token": true}).expect(t, 200, "")
	secret := bearerSecret(fake.secret)

	status, body, header := env.introspect(t, reg.str("access_token"), secret)
	if status != 200 || header.Get("Cache-Control") != "no-store" {
		t.Fatalf("introspection %d %v %v", status, body, header)
	}
	want := map[string]string{"active": "bool", "scope": "string", "username": "string", "sub": "string", "device_id": "string",
		"expires_in": "number", "exp": "number", "iat": "number", "token_type": "string"}
	for k, typ := range want {
		v, ok := body[k]
		if !ok || (typ == "bool" && reflect.TypeOf(v).Kind() != reflect.Bool) || (typ == "string" && reflect.TypeOf(v).Kind() != reflect.String) ||
			(typ == "number" && (reflect.TypeOf(v).Kind() != reflect.Float64 || v.(float64) != float64(int64(v.(float64))))) {
			t.Errorf("%s: %#v, want a %s", k, v, typ)
		}
	}
	scope := strings.Fields(body["scope"].(string))
	for _, s := range []string{"urn:matrix:client:api:*", "urn:matrix:org.matrix.msc2967.client:api:*", "urn:matrix:client:device:ALICEDEV",
		"urn:matrix:org.matrix.msc2967.client:device:ALICEDEV"} {
		if !slices.Contains(scope, s) {
			t.Errorf("scope %v lacks %s", scope, s)
		}
	}
	if body["active"] != true || body["username"] != "alice" || body["sub"] != "@alice:example.org" || body["device_id"] != "ALICEDEV" ||
		slices.Contains(scope, "urn:synapse:admin:*") {
		t.Fatalf("introspection %v", body)
	}
	_, adminBody, _ := env.introspect(t, admin, secret)
	if !strings.Contains(adminBody["scope"].(string), "urn:synapse:admin:*") {
		t.Fatalf("an admin's scope: %v", adminBody)
	}
	guest := env.do("POST", registerURL+"?kind=guest", `{}`).expect(t, 200, "").str("access_token")
	_, guestBody, _ := env.introspect(t, guest, secret)
	if gs := guestBody["scope"].(string); !strings.Contains(gs, "urn:matrix:org.matrix.msc2967.client:api:guest") || strings.Contains(gs, "api:*") {
		t.Fatalf("a guest's scope: %v", guestBody)
	}
	oauthToken := env.oauthToken(t, "alice", "pw-alice-1")
	_, ob, _ := env.introspect(t, oauthToken, secret)
	if ob["active"] != true || ob["client_id"] == nil || ob["device_id"] != "DEVALICE" {
		t.Fatalf("an OAuth token: %v", ob)
	}

	// The callers: a configured client by HTTP Basic or the form (as it
	// declared), the bearer secret; nothing else.
	basic := func(id, secret string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret))))
		}
	}
	postCreds := func(id, secret string) func(*http.Request) {
		return func(r *http.Request) {
			form := url.Values{"token": {reg.str("access_token")}, "client_id": {id}, "client_secret": {secret}}
			r.Body = ioNopCloser(form.Encode())
			r.ContentLength = int64(len(form.Encode()))
		}
	}
	callers := []struct {
		name string
		auth func(*http.Request)
		ok   bool
	}{
		{"bearer secret", secret, true},
		{"basic client", basic("synapse", "client-secret-0123456789"), true},
		{"post client", postCreds("poster", "post-secret-0123456789"), true},
		{"nothing", func(*http.Request) {}, false},
		{"wrong bearer", bearerSecret("nope"), false},
		{"an access token as bearer", bearerSecret(reg.str("access_token")), false},
		{"wrong basic secret", basic("synapse", "wrong"), false},
		{"basic for a post client", basic("poster", "post-secret-0123456789"), false},
		{"post for a basic client", postCreds("synapse", "client-secret-0123456789"), false},
		{"unknown client", basic("nobody", "client-secret-0123456789"), false},
	}
	for _, c := range callers {
		status, body, _ := env.introspect(t, reg.str("access_token"), c.auth)
		if c.ok && (status != 200 || body["active"] != true) || !c.ok && (status != 401 || body["error"] != "invalid_client") {
			t.Errorf("%s: %d %v", c.name, status, body)
		}
	}

	// Inactive: unknown, expired, revoked, a locked or deactivated user's.
	inactive := func(name, token string) {
		t.Helper()
		if status, body, _ := env.introspect(t, token, secret); status != 200 || len(body) != 1 || body["active"] != false {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
	inactive("unknown", "syt_nope")
	bob := env.register("bob", "pw-bob-1").str("access_token")
	env.do("PUT", lockURL+"@bob:example.org", `{"locked":true}`, bearer(admin)...).expect(t, 200, "")
	inactive("locked", bob)
	env.do("PUT", lockURL+"@bob:example.org", `{"locked":false}`, bearer(admin)...).expect(t, 200, "")
	carol := env.register("carol", "pw-carol-1").str("access_token")
	env.do("POST", "/_synapse/admin/v1/deactivate/@carol:example.org", `{}`, bearer(admin)...).expect(t, 200, "")
	inactive("deactivated", carol)
	dave := env.register("dave", "pw-dave-1").str("access_token")
	env.do("POST", "/_matrix/client/v3/logout", `{}`, bearer(dave)...).expect(t, 200, "")
	inactive("logged out", dave)
	env.clock.Advance(6 * 60e9)
	inactive("expired", reg.str("access_token"))
}

func ioNopCloser(s string) *nopCloser { return &nopCloser{strings.NewReader(s)} }

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

// TestProvisioningOverTheMASAPI: every way of making an account or a
// session tells the homeserver first; ending them, deactivating and
// changing the profile are pushed; availability asks it.
func TestProvisioningOverTheMASAPI(t *testing.T) {
	env, fake := newHomeserverEnv(t)
	ctx := context.Background()
	admin := env.adminToken("root")
	if u := fake.user("root"); u == nil || len(u.devices) != 1 {
		t.Fatalf("the admin's login was not provisioned: %+v", u)
	}
	reg := env.register("alice", "pw-alice-1", map[string]any{"device_id": "PHONE", "initial_device_display_name": "Alice's phone"}).expect(t, 200, "")
	if u := fake.user("alice"); u == nil || u.devices["PHONE"] != "Alice's phone" || u.displayName != "alice" {
		t.Fatalf("registration: %+v", u)
	}
	login := env.do("POST", loginURL, loginBody("alice", "pw-alice-1", map[string]any{"device_id": "LAPTOP"})).expect(t, 200, "")
	if u := fake.user("alice"); u.deviceIDs()[0] != "LAPTOP" || len(u.devices) != 2 {
		t.Fatalf("login: %v", u.deviceIDs())
	}
	// OAuth sessions too.
	env.oauthToken(t, "alice", "pw-alice-1")
	if u := fake.user("alice"); u.devices["DEVALICE"] != "" || len(u.devices) != 3 {
		t.Fatalf("OAuth login: %v", u.deviceIDs())
	}
	// Ending a session is pushed (in the background: pushed here at once).
	env.do("POST", "/_matrix/client/v3/logout", `{}`, bearer(login.str("access_token"))...).expect(t, 200, "")
	env.server.PushToHomeserver(ctx)
	if u := fake.user("alice"); strings.Join(u.deviceIDs(), ",") != "DEVALICE,PHONE" {
		t.Fatalf("after logout: %v", u.deviceIDs())
	}
	// A display name and an address from the admin API.
	env.do("PUT", adminV2Users+"@alice:example.org", `{"displayname":"Alice","threepids":[{"medium":"email","address":"alice@example.org"}]}`,
		bearer(admin)...).expect(t, 200, "")
	env.server.PushToHomeserver(ctx)
	if u := fake.user("alice"); u.displayName != "Alice" || strings.Join(u.emails, ",") != "alice@example.org" {
		t.Fatalf("profile: %+v", u)
	}
	// Availability asks the homeserver: its users and its application
	// services' namespaces.
	fake.mu.Lock()
	fake.users["hsonly"] = &fakeUser{devices: map[string]string{}}
	fake.exclusive = []string{"bridged"}
	fake.mu.Unlock()
	env.do("GET", "/_matrix/client/v3/register/available?username=hsonly", "").expect(t, 400, "M_USER_IN_USE")
	env.do("GET", "/_matrix/client/v3/register/available?username=bridged", "").expect(t, 400, "M_EXCLUSIVE")
	env.register("bridged", "pw-bridged-1").expect(t, 400, "M_EXCLUSIVE")
	// Deactivation with erasure.
	env.do("POST", deactivateURL, jsonBody(map[string]any{"erase": true, "auth": passwordAuth("alice", "pw-alice-1", "")}),
		bearer(reg.str("access_token"))...).expect(t, 200, "")
	env.server.PushToHomeserver(ctx)
	if u := fake.user("alice"); !u.deactivated || !u.erased || len(u.devices) != 0 {
		t.Fatalf("deactivation: %+v", u)
	}
	// Reactivation by an admin.
	env.do("PUT", adminV2Users+"@alice:example.org", `{"deactivated":false,"password":"pw-alice-2"}`, bearer(admin)...).expect(t, 200, "")
	env.server.PushToHomeserver(ctx)
	if u := fake.user("alice"); u.deactivated {
		t.Fatalf("reactivation: %+v", u)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.calls) == 0 {
		t.Fatal("no calls")
	}
}

// TestHomeserverDownLosesNothing: while the homeserver does not answer,
// no token is handed out for a session it was not told of (503, and the
// session is gone again), registrations are refused before anything is
// written, and ended sessions wait in the outbox (readyz says so); once it
// answers, the outbox delivers.
func TestHomeserverDownLosesNothing(t *testing.T) {
	env, fake := newHomeserverEnv(t)
	ctx := context.Background()
	env.register("alice", "pw-alice-1", map[string]any{"device_id": "PHONE"}).expect(t, 200, "")
	other := env.do("POST", loginURL, loginBody("alice", "pw-alice-1", map[string]any{"device_id": "OTHER"})).expect(t, 200, "")
	fake.setDown(true)

	r := env.do("POST", loginURL, loginBody("alice", "pw-alice-1", map[string]any{"device_id": "NEWDEV"}))
	r.expect(t, 503, "M_UNKNOWN")
	if ms, _ := r.Body["retry_after_ms"].(float64); ms <= 0 {
		t.Fatalf("no retry hint: %s", r.Raw)
	}
	if dump := env.tableDump("devices"); strings.Contains(dump, "NEWDEV") {
		t.Fatalf("a session the homeserver was not told of stayed: %s", dump)
	}
	env.register("bob", "pw-bob-1").expect(t, 503, "M_UNKNOWN")
	if dump := env.tableDump("accounts"); strings.Contains(dump, "@bob:") {
		t.Fatalf("an account was made while the homeserver was down: %s", dump)
	}
	env.do("POST", "/_matrix/client/v3/logout", `{}`, bearer(other.str("access_token"))...).expect(t, 200, "")
	env.server.PushToHomeserver(ctx)
	ready := env.doQuiet("GET", "/readyz", "")
	if ready.Status != 200 || !strings.Contains(ready.Raw, "degraded") || !strings.Contains(ready.Raw, "homeserver") {
		t.Fatalf("readyz while the homeserver is down: %d %s", ready.Status, ready.Raw)
	}
	metrics, _ := env.scrape()
	if metrics["registrar_homeserver_outbox_failing{}"] < 1 || metrics[`registrar_homeserver_pushes_total{outcome="failure",what="device"}`] < 1 {
		t.Fatalf("metrics: %v", metrics)
	}

	fake.setDown(false)
	env.clock.Advance(10 * 60e9) // past the backoff
	env.server.PushToHomeserver(ctx)
	if u := fake.user("alice"); strings.Join(u.deviceIDs(), ",") != "PHONE" {
		t.Fatalf("after the homeserver is back: %v", u.deviceIDs())
	}
	if ready := env.doQuiet("GET", "/readyz", ""); ready.Raw != "OK" {
		t.Fatalf("readyz after: %s", ready.Raw)
	}
	env.do("POST", loginURL, loginBody("alice", "pw-alice-1", map[string]any{"device_id": "NEWDEV"})).expect(t, 200, "")
	if u := fake.user("alice"); strings.Join(u.deviceIDs(), ",") != "NEWDEV,PHONE" {
		t.Fatalf("the login after: %v", u.deviceIDs())
	}
}

// TestWellKnownAndMetadataNameTheAuthService: the discovery document
// names the issuer and account page, and the metadata the introspection
// endpoint and the cross-signing reset action.
func TestWellKnownAndMetadataNameTheAuthService(t *testing.T) {
	env, _ := newHomeserverEnv(t)
	wk := env.do("GET", "/.well-known/matrix/client", "").expect(t, 200, "")
	auth, _ := wk.Body["org.matrix.msc2965.authentication"].(map[string]any)
	if auth["issuer"] != env.base+"/" || auth["account"] != env.base+"/_registrar/account" {
		t.Fatalf("well-known %s", wk.Raw)
	}
	meta := env.do("GET", "/_matrix/client/v1/auth_metadata", "").expect(t, 200, "")
	if meta.str("introspection_endpoint") != env.base+"/_registrar/oauth2/introspect" || !strings.Contains(meta.Raw, "org.matrix.cross_signing_reset") {
		t.Fatalf("metadata %s", meta.Raw)
	}
	v := env.do("GET", "/_synapse/admin/v1/server_version", "").expect(t, 200, "")
	if !strings.HasPrefix(v.str("server_version"), "registrar ") {
		t.Fatalf("server_version %s", v.Raw)
	}
	_ = fmt.Sprint
}

// TestCrossSigningResetAsksThePerson: the account page's
// org.matrix.cross_signing_reset action shows a confirmation; only the
// confirmed form tells the homeserver.
func TestCrossSigningResetAsksThePerson(t *testing.T) {
	env, fake := newHomeserverEnv(t)
	env.register("alice", "pw-alice-1").expect(t, 200, "")
	b := env.browser(t)
	p := b.get(env.base + "/_registrar/account?action=org.matrix.cross_signing_reset")
	p = b.signIn(p, "alice", "pw-alice-1")
	if !strings.Contains(p.body, `id="allow-reset"`) {
		t.Fatalf("not the confirmation: %d %s", p.status, p.body)
	}
	if fake.user("alice").crossSigningReset {
		t.Fatal("the homeserver was told before the person confirmed")
	}
	if bad := b.post(env.base+"/_registrar/account/cross_signing_reset", url.Values{"csrf": {"forged"}}); bad.status != 403 ||
		fake.user("alice").crossSigningReset {
		t.Fatalf("a forged form: %d", bad.status)
	}
	done := b.post(env.base+"/_registrar/account/cross_signing_reset", url.Values{"csrf": {p.csrf(t)}})
	if done.status != 200 || !fake.user("alice").crossSigningReset {
		t.Fatalf("confirmed: %d %s", done.status, done.body)
	}
}

// TestShadowBansAsSynapseAdminAPI: POST and DELETE
// /_synapse/admin/v1/users/{user_id}/shadow_ban, by admins only.
func TestShadowBansAsSynapseAdminAPI(t *testing.T) {
	env := newEnv(t)
	admin := env.adminToken("root")
	user := env.register("sam", "pw-sam-1").str("access_token")
	const path = "/_synapse/admin/v1/users/@sam:example.org/shadow_ban"
	env.do("POST", path, `{}`, bearer(user)...).expect(t, 403, "M_FORBIDDEN")
	env.do("POST", "/_synapse/admin/v1/users/@nobody:example.org/shadow_ban", `{}`, bearer(admin)...).expect(t, 404, "M_NOT_FOUND")
	env.do("POST", path, `{}`, bearer(admin)...).expect(t, 200, "")
	if u := env.do("GET", adminV2Users+"@sam:example.org", "", bearer(admin)...); u.Body["shadow_banned"] != true {
		t.Fatalf("after the ban: %s", u.Raw)
	}
	env.do("DELETE", path, "", bearer(admin)...).expect(t, 200, "")
	if u := env.do("GET", adminV2Users+"@sam:example.org", "", bearer(admin)...); u.Body["shadow_banned"] != false {
		t.Fatalf("after lifting it: %s", u.Raw)
	}
	if audit := env.tableDump("admin_audit"); !strings.Contains(audit, "shadow_ban") || !strings.Contains(audit, "unshadow_ban") {
		t.Fatalf("audit: %s", audit)
	}
}

// TestIntrospectionEncodingIsJSON: the hand-written encoding of an
// introspection answer is byte for byte encoding/json's.
func TestIntrospectionEncodingIsJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quo"te\back`, "tab\tnew\nline\r", "\b\f", "\x00\x1f", "<script>&", "é漢🙂", "\u2028\u2029",
		"bad\xffutf8", "\xed\xa0\x80"} {
		checkIntrospectionEncoding(t, s)
	}
}

// FuzzIntrospectionEncoding compares the two encodings on any string.
func FuzzIntrospectionEncoding(f *testing.F) {
	f.Add("@alice:example.org")
	f.Fuzz(func(t *testing.T, s string) { checkIntrospectionEncoding(t, s) })
}

func checkIntrospectionEncoding(t *testing.T, s string) {
	t.Helper()
	n := int64(len(s)) - 3
	for _, o := range []api.OAuthIntrospection{{Active: false},
		{Active: true, ClientId: &s, DeviceId: &s, Exp: &n, ExpiresIn: &n, Iat: &n, Scope: &s, Sub: &s, TokenType: &s, Username: &s}} {
		want, _ := json.Marshal(o)
		if got := impl.AppendIntrospection(nil, o); string(got) != string(want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
	}
}

// TestHomeserverRefusingTheSecret: a homeserver that answers 403 to
// registrar's secret (a misconfiguration) gets no session handed out for
// it, and readyz and the metrics say so.
func TestHomeserverRefusingTheSecret(t *testing.T) {
	env, fake := newHomeserverEnv(t)
	env.register("alice", "pw-alice-1").expect(t, 200, "")
	fake.mu.Lock()
	fake.secret = "not registrar's"
	fake.mu.Unlock()
	env.do("POST", loginURL, loginBody("alice", "pw-alice-1")).expect(t, 503, "M_UNKNOWN")
	if ready := env.doQuiet("GET", "/readyz", ""); !strings.Contains(ready.Raw, "403") {
		t.Fatalf("readyz: %s", ready.Raw)
	}
	if m, _ := env.scrape(); m[`registrar_homeserver_pushes_total{outcome="failure",what="device"}`] < 1 {
		t.Fatalf("metrics: %v", m)
	}
}

// TestProfileWithTheHomeserver: the profile page shows the homeserver's
// avatar (a thumbnail registrar fetches for the signed-in person only)
// and a display name saved there reaches the homeserver.
func TestProfileWithTheHomeserver(t *testing.T) {
	env, fake := newHomeserverEnv(t)
	env.register("pictured", "pw-pictured-1").expect(t, 200, "")
	ctx := context.Background()
	env.server.PushToHomeserver(ctx)
	fake.mu.Lock()
	fake.users["pictured"].avatarURL = "mxc://example.org/avatar1"
	fake.mu.Unlock()
	b := env.browser(t)
	if avatar := b.get(env.base + "/_registrar/account/avatar"); avatar.status != 404 {
		t.Fatalf("the avatar without signing in: %d", avatar.status)
	}
	p := b.signIn(b.get(env.base+"/_registrar/login"), "pictured", "pw-pictured-1")
	if !strings.Contains(p.body, `<img class="avatar" src="/_registrar/account/avatar"`) {
		t.Fatalf("no avatar on the profile: %s", p.body)
	}
	avatar := b.get(env.base + "/_registrar/account/avatar")
	if avatar.status != 200 || avatar.header.Get("Content-Type") != "image/png" || !strings.HasPrefix(avatar.header.Get("Cache-Control"), "private") {
		t.Fatalf("avatar %d %v", avatar.status, avatar.header)
	}
	p = b.post(env.base+"/_registrar/account/profile", url.Values{"csrf": {p.csrf(t)}, "display_name": {"Pictured Person"}})
	if !strings.Contains(p.body, `id="notice"`) {
		t.Fatalf("saving: %s", p.body)
	}
	env.server.PushToHomeserver(ctx)
	if u := fake.user("pictured"); u.displayName != "Pictured Person" {
		t.Fatalf("the homeserver has %q", u.displayName)
	}
}
