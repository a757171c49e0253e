package impl_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"registrar/impl/config"
)

const devicesURL = "/_matrix/client/v3/devices"

func TestDevicesListGetRename(t *testing.T) {
	env := newEnv(t)
	reg := env.register("dee", "pw-dee-1", map[string]any{"initial_device_display_name": "laptop"})
	dee, laptop := reg.str("access_token"), reg.str("device_id")
	phone := env.do("POST", loginURL, loginBody("dee", "pw-dee-1", map[string]any{"device_id": "PHONE"})).str("device_id")
	other := env.register("eli", "pw-eli-1").str("device_id")

	r := env.do("GET", devicesURL, "", bearer(dee)...).expect(t, 200, "")
	devs := r.Body["devices"].([]any)
	if len(devs) != 2 {
		t.Fatalf("devices %s", r.Raw)
	}
	r = env.do("GET", devicesURL+"/"+laptop, "", bearer(dee)...).expect(t, 200, "")
	if r.str("device_id") != laptop || r.str("display_name") != "laptop" {
		t.Fatalf("device %s", r.Raw)
	}
	if _, ok := env.do("GET", devicesURL+"/"+phone, "", bearer(dee)...).Body["display_name"]; ok {
		t.Fatal("a device without a name has a display_name")
	}
	env.do("GET", devicesURL+"/"+other, "", bearer(dee)...).expect(t, 404, "M_NOT_FOUND")
	env.do("GET", devicesURL+"/NOPE", "", bearer(dee)...).expect(t, 404, "M_NOT_FOUND")

	env.do("PUT", devicesURL+"/"+phone, `{"display_name":"pocket"}`, bearer(dee)...).expect(t, 200, "")
	if r := env.do("GET", devicesURL+"/"+phone, "", bearer(dee)...); r.str("display_name") != "pocket" {
		t.Fatalf("renamed %s", r.Raw)
	}
	env.do("PUT", devicesURL+"/"+phone, `{}`, bearer(dee)...).expect(t, 200, "")
	env.do("PUT", devicesURL+"/"+phone, `{"display_name":null}`, bearer(dee)...).expect(t, 200, "")
	env.do("PUT", devicesURL+"/"+other, `{"display_name":"mine now"}`, bearer(dee)...).expect(t, 404, "M_NOT_FOUND")
	env.do("PUT", devicesURL+"/"+phone, jsonBody(map[string]any{"display_name": strings.Repeat("x", 101)}), bearer(dee)...).
		expect(t, 400, "M_INVALID_PARAM")
	env.do("PUT", devicesURL+"/"+phone, `{"display_name":5}`, bearer(dee)...).expect(t, 400, "M_BAD_JSON")
	env.do("GET", devicesURL, "").expect(t, 401, "M_MISSING_TOKEN")
	if r := env.do("GET", "/_matrix/client/r0/devices", "", bearer(dee)...).expect(t, 200, ""); len(r.Body["devices"].([]any)) != 2 {
		t.Fatalf("r0 devices %s", r.Raw)
	}
}

func TestDeleteDeviceNeedsUIAAndRevokesAtOnce(t *testing.T) {
	env := newEnv(t)
	reg := env.register("dan", "pw-dan-1")
	dan := reg.str("access_token")
	phone := env.do("POST", loginURL, loginBody("dan", "pw-dan-1", map[string]any{"refresh_token": true}))
	phoneToken, phoneDevice := phone.str("access_token"), phone.str("device_id")
	env.do("GET", whoamiURL, "", bearer(phoneToken)...).expect(t, 200, "") // cached now
	eve := env.register("eve", "pw-eve-1")

	// No body (as clients send first), then the password.
	r := env.do("DELETE", devicesURL+"/"+phoneDevice, "", bearer(dan)...).expect(t, 401, "")
	session := r.str("session")
	if session == "" || !strings.Contains(r.Raw, "m.login.password") {
		t.Fatalf("challenge %s", r.Raw)
	}
	env.do("DELETE", devicesURL+"/"+phoneDevice, jsonBody(map[string]any{"auth": passwordAuth("dan", "wrong", session)}),
		bearer(dan)...).expect(t, 401, "M_FORBIDDEN")
	env.do("DELETE", devicesURL+"/"+phoneDevice, jsonBody(map[string]any{"auth": passwordAuth("eve", "pw-eve-1", session)}),
		bearer(dan)...).expect(t, 403, "M_FORBIDDEN")
	env.do("DELETE", devicesURL+"/"+phoneDevice, jsonBody(map[string]any{"auth": passwordAuth("dan", "pw-dan-1", session)}),
		bearer(dan)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(phoneToken)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("POST", refreshURL, jsonBody(map[string]any{"refresh_token": phone.str("refresh_token")})).expect(t, 401, "M_UNKNOWN_TOKEN")
	// The session is spent.
	env.do("DELETE", devicesURL+"/"+phoneDevice, jsonBody(map[string]any{"auth": passwordAuth("dan", "pw-dan-1", session)}),
		bearer(dan)...).expect(t, 400, "M_UNKNOWN")
	// Deleting a device the user does not have succeeds and touches nobody else's.
	env.do("DELETE", devicesURL+"/"+eve.str("device_id"), jsonBody(map[string]any{"auth": passwordAuth("dan", "pw-dan-1", "")}),
		bearer(dan)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(eve.str("access_token"))...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(dan)...).expect(t, 200, "")

	// Several at once, the caller's own included.
	a := env.do("POST", loginURL, loginBody("dan", "pw-dan-1")).str("device_id")
	b := env.do("POST", loginURL, loginBody("dan", "pw-dan-1")).str("access_token")
	bDevice := env.do("GET", whoamiURL, "", bearer(b)...).str("device_id")
	env.do("POST", "/_matrix/client/v3/delete_devices", `{"devices":["`+a+`"]}`, bearer(dan)...).expect(t, 401, "")
	env.do("POST", "/_matrix/client/v3/delete_devices", `{}`, bearer(dan)...).expect(t, 400, "M_BAD_JSON")
	env.do("POST", "/_matrix/client/v3/delete_devices", jsonBody(map[string]any{"devices": []string{a, bDevice, reg.str("device_id")},
		"auth": passwordAuth("dan", "pw-dan-1", "")}), bearer(dan)...).expect(t, 200, "")
	for _, tok := range []string{dan, b} {
		env.do("GET", whoamiURL, "", bearer(tok)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	}
	if d := env.tableDump("devices"); strings.Contains(d, "@dan:example.org") {
		t.Fatalf("devices left:\n%s", d)
	}

	// Guests cannot re-authenticate, so cannot delete.
	guest := env.do("POST", registerURL+"?kind=guest", `{}`)
	env.do("DELETE", devicesURL+"/"+guest.str("device_id"), "", bearer(guest.str("access_token"))...).expect(t, 403, "M_GUEST_ACCESS_FORBIDDEN")
}

func TestApplicationServiceManagesDevicesWithoutUIA(t *testing.T) {
	dir := t.TempDir()
	reg := writeAppService(t, dir, "bridge", "as-token-1", "@bridge_.*:example.org")
	env := newEnv(t, func(c *config.Config) { c.AppServiceConfigFiles = []string{filepath.Join(dir, filepath.Base(reg))} })
	env.do("POST", registerURL, `{"type":"m.login.application_service","username":"bridge_alice","inhibit_login":true}`,
		bearer("as-token-1")...).expect(t, 200, "")
	as := func(path string) string { return path + "?user_id=@bridge_alice:example.org" }
	env.do("PUT", as(devicesURL+"/BRIDGEDEV"), `{"display_name":"bridged"}`, bearer("as-token-1")...).expect(t, 201, "")
	env.do("PUT", as(devicesURL+"/BRIDGEDEV"), `{"display_name":"renamed"}`, bearer("as-token-1")...).expect(t, 200, "")
	if r := env.do("GET", as(devicesURL+"/BRIDGEDEV"), "", bearer("as-token-1")...).expect(t, 200, ""); r.str("display_name") != "renamed" {
		t.Fatalf("device %s", r.Raw)
	}
	env.do("DELETE", as(devicesURL+"/BRIDGEDEV"), "", bearer("as-token-1")...).expect(t, 200, "")
	env.do("GET", as(devicesURL+"/BRIDGEDEV"), "", bearer("as-token-1")...).expect(t, 404, "M_NOT_FOUND")
}

func TestDeviceUsesAreRecordedInBatches(t *testing.T) {
	env := newEnv(t)
	admin := env.adminToken("root")
	reg := env.register("una", "pw-una-1")
	una, device := reg.str("access_token"), reg.str("device_id")
	use := func(ip, agent string) {
		env.doWith(func(o *requestOptions) { o.remote = ip + ":4000" }, "GET", whoamiURL, "", append(bearer(una), "User-Agent", agent)...).expect(t, 200, "")
	}
	use("192.0.2.1", "Element/1.0")
	use("192.0.2.1", "Element/1.0")
	if r := env.do("GET", devicesURL+"/"+device, "", bearer(una)...); r.Body["last_seen_ip"] != nil {
		t.Fatalf("written before the batch: %s", r.Raw)
	}
	flush := func() {
		if err := env.server.FlushDeviceUses(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	flush()
	first := env.clock.Now().UnixMilli()
	r := env.do("GET", devicesURL+"/"+device, "", bearer(una)...)
	if r.str("last_seen_ip") != "192.0.2.1" || r.Body["last_seen_ts"] != float64(first) {
		t.Fatalf("device after the batch: %s", r.Raw)
	}
	env.clock.Advance(3 * time.Minute)
	use("198.51.100.7", "Element X/2.0 \xff\x00invalid")
	flush()
	r = env.do("GET", "/_synapse/admin/v2/users/@una:example.org/devices/"+device, "", bearer(admin)...).expect(t, 200, "")
	if r.str("last_seen_ip") != "198.51.100.7" || !strings.HasPrefix(r.str("last_seen_user_agent"), "Element X/2.0") ||
		r.Body["last_seen_ts"] != float64(env.clock.Now().UnixMilli()) || r.str("user_id") != "@una:example.org" {
		t.Fatalf("admin device %s", r.Raw)
	}
	u := env.do("GET", adminV2Users+"@una:example.org", "", bearer(admin)...)
	if u.Body["last_seen_ts"] != float64(env.clock.Now().UnixMilli()) {
		t.Fatalf("account last seen %s", u.Raw)
	}

	// whois: each device's connections, newest first; for admins and the user.
	w := env.do("GET", "/_synapse/admin/v1/whois/@una:example.org", "", bearer(admin)...).expect(t, 200, "")
	conns := w.Body["devices"].(map[string]any)[device].(map[string]any)["sessions"].([]any)[0].(map[string]any)["connections"].([]any)
	// (The device lookups above, without a user agent, count too.)
	if len(conns) != 3 || conns[0].(map[string]any)["ip"] != "198.51.100.7" || !strings.Contains(w.Raw, `"user_agent":"Element/1.0"`) {
		t.Fatalf("whois %s", w.Raw)
	}
	self := env.do("GET", "/_matrix/client/v3/admin/whois/@una:example.org", "", bearer(una)...).expect(t, 200, "")
	if self.Raw != w.Raw {
		t.Fatalf("client whois differs:\n%s\n%s", self.Raw, w.Raw)
	}
	other := env.register("vic", "pw-vic-1").str("access_token")
	env.do("GET", "/_matrix/client/v3/admin/whois/@una:example.org", "", bearer(other)...).expect(t, 403, "M_FORBIDDEN")

	// A deleted device's uses are dropped, not an error.
	use2 := env.do("POST", loginURL, loginBody("una", "pw-una-1"))
	env.doWith(func(o *requestOptions) { o.remote = "192.0.2.9:1" }, "GET", whoamiURL, "", bearer(use2.str("access_token"))...)
	env.do("POST", "/_matrix/client/v3/logout", "", bearer(use2.str("access_token"))...).expect(t, 200, "")
	flush()
	// Old addresses are swept after user_ips_max_age.
	env.clock.Advance(29 * 24 * time.Hour)
	env.server.Sweep(context.Background())
	if d := env.tableDump("client_ips"); d != "" {
		t.Fatalf("client addresses kept past user_ips_max_age:\n%s", d)
	}
}

func TestAdminDevicesAndLoginAs(t *testing.T) {
	env := newEnv(t)
	admin := env.adminToken("root")
	reg := env.register("ike", "pw-ike-1")
	ike, device := reg.str("access_token"), reg.str("device_id")
	second := env.do("POST", loginURL, loginBody("ike", "pw-ike-1")).str("access_token")

	r := env.do("GET", adminV2Users+"@ike:example.org/devices", "", bearer(admin)...).expect(t, 200, "")
	if r.Body["total"] != float64(2) {
		t.Fatalf("devices %s", r.Raw)
	}
	env.do("PUT", adminV2Users+"@ike:example.org/devices/"+device, `{"display_name":"named by admin"}`, bearer(admin)...).expect(t, 200, "")
	if r := env.do("GET", devicesURL+"/"+device, "", bearer(ike)...); r.str("display_name") != "named by admin" {
		t.Fatalf("renamed %s", r.Raw)
	}
	env.do("GET", adminV2Users+"@ike:example.org/devices/NOPE", "", bearer(admin)...).expect(t, 404, "M_NOT_FOUND")
	env.do("PUT", adminV2Users+"@ike:example.org/devices/NOPE", `{"display_name":"x"}`, bearer(admin)...).expect(t, 404, "M_NOT_FOUND")
	env.do("DELETE", adminV2Users+"@ike:example.org/devices/"+device, "", bearer(admin)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(ike)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("POST", adminV2Users+"@ike:example.org/delete_devices", `{"devices":[]}`, bearer(admin)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(second)...).expect(t, 200, "")

	// Login as the user: a working token on a device the user does not see.
	puppet := env.do("POST", "/_synapse/admin/v1/users/@ike:example.org/login", `{}`, bearer(admin)...).expect(t, 200, "").str("access_token")
	if r := env.do("GET", whoamiURL, "", bearer(puppet)...).expect(t, 200, ""); r.str("user_id") != "@ike:example.org" {
		t.Fatalf("puppet whoami %s", r.Raw)
	}
	if r := env.do("GET", devicesURL, "", bearer(second)...); len(r.Body["devices"].([]any)) != 1 {
		t.Fatalf("the puppet device shows: %s", r.Raw)
	}
	if r := env.do("GET", adminV2Users+"@ike:example.org/devices", "", bearer(admin)...); r.Body["total"] != float64(1) {
		t.Fatalf("the puppet device shows to admins: %s", r.Raw)
	}
	if err := env.server.FlushDeviceUses(context.Background()); err != nil {
		t.Fatal(err)
	}
	if u := env.do("GET", adminV2Users+"@ike:example.org", "", bearer(admin)...); u.Body["last_seen_ts"] == nil {
		t.Fatalf("the user's own use is not recorded: %s", u.Raw)
	} else if strings.Contains(env.tableDump("client_ips"), "PUPPET") {
		t.Fatal("the puppet's use was recorded")
	}
	until := env.clock.Now().Add(time.Hour).UnixMilli()
	expiring := env.do("POST", "/_synapse/admin/v1/users/@ike:example.org/login", fmt.Sprintf(`{"valid_until_ms":%d}`, until),
		bearer(admin)...).expect(t, 200, "").str("access_token")
	env.clock.Advance(2 * time.Hour)
	env.do("GET", whoamiURL, "", bearer(expiring)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("POST", "/_synapse/admin/v1/users/@ike:example.org/login", `{"valid_until_ms":1}`, bearer(admin)...).expect(t, 400, "M_INVALID_PARAM")
	env.do("POST", "/_synapse/admin/v1/users/@root:example.org/login", `{}`, bearer(admin)...).expect(t, 400, "M_UNKNOWN")
	env.do("POST", "/_matrix/client/v3/logout", "", bearer(puppet)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(puppet)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	if audit := env.tableDump("admin_audit"); strings.Count(audit, "login_as") != 2 || !strings.Contains(audit, "delete_devices") ||
		!strings.Contains(audit, "rename_device") {
		t.Fatalf("audit:\n%s", audit)
	}
}

func TestApplicationServiceMasqueradesAsADevice(t *testing.T) {
	dir := t.TempDir()
	reg := writeAppService(t, dir, "bridge", "as-token-1", "@bridge_.*:example.org")
	env := newEnv(t, func(c *config.Config) { c.AppServiceConfigFiles = []string{reg} })
	env.do("POST", registerURL, `{"type":"m.login.application_service","username":"bridge_bob","inhibit_login":true}`,
		bearer("as-token-1")...).expect(t, 200, "")
	env.do("PUT", devicesURL+"/BOBDEV?user_id=@bridge_bob:example.org", `{}`, bearer("as-token-1")...).expect(t, 201, "")
	for _, param := range []string{"device_id", "org.matrix.msc3202.device_id"} {
		r := env.do("GET", whoamiURL+"?user_id=@bridge_bob:example.org&"+param+"=BOBDEV", "", bearer("as-token-1")...).expect(t, 200, "")
		if r.str("device_id") != "BOBDEV" || r.str("user_id") != "@bridge_bob:example.org" {
			t.Fatalf("%s: whoami %s", param, r.Raw)
		}
	}
	env.do("GET", whoamiURL+"?user_id=@bridge_bob:example.org&device_id=NOPE", "", bearer("as-token-1")...).expect(t, 400, "M_UNKNOWN_DEVICE")
	if r := env.do("GET", whoamiURL+"?user_id=@bridge_bob:example.org", "", bearer("as-token-1")...); r.Body["device_id"] != nil {
		t.Fatalf("no device asked: %s", r.Raw)
	}
}
