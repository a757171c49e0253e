package impl_test

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"registrar/impl/config"
)

const adminV2Users = "/_synapse/admin/v2/users/"

// adminEndpoints are every admin API operation on an account, with a
// valid body.
var adminEndpoints = []struct{ method, path, body string }{
	{"GET", "/_synapse/admin/v2/users", ""},
	{"GET", "/_synapse/admin/v3/users", ""},
	{"GET", adminV2Users + "%s", ""},
	{"PUT", adminV2Users + "%s", `{"displayname":"x"}`},
	{"POST", "/_synapse/admin/v1/deactivate/%s", `{}`},
	{"POST", "/_synapse/admin/v1/reset_password/%s", `{"new_password":"pw-new-one-1"}`},
	{"GET", "/_synapse/admin/v1/whois/%s", ""},
	{"GET", "/_synapse/admin/v1/username_available?username=someone", ""},
	{"POST", "/_synapse/admin/v1/users/%s/login", `{}`},
	{"GET", "/_synapse/admin/v1/users/%s/admin", ""},
	{"PUT", "/_synapse/admin/v1/users/%s/admin", `{"admin":true}`},
	{"GET", adminV2Users + "%s/devices", ""},
	{"GET", adminV2Users + "%s/devices/DEV", ""},
	{"PUT", adminV2Users + "%s/devices/DEV", `{"display_name":"x"}`},
	{"DELETE", adminV2Users + "%s/devices/DEV", ""},
	{"POST", adminV2Users + "%s/delete_devices", `{"devices":["DEV"]}`},
	{"GET", "/_matrix/client/v1/admin/lock/%s", ""},
	{"PUT", "/_matrix/client/v1/admin/lock/%s", `{"locked":true}`},
	{"GET", "/_matrix/client/v1/admin/suspend/%s", ""},
	{"PUT", "/_matrix/client/v1/admin/suspend/%s", `{"suspended":true}`},
}

func adminPath(path, user string) string {
	if !strings.Contains(path, "%s") {
		return path
	}
	return fmt.Sprintf(path, url.PathEscape(user))
}

func TestAdminAPIIsForServerAdminsOnly(t *testing.T) {
	env := newEnv(t)
	admin := env.adminToken("root")
	env.register("victim", "pw-victim-1")
	user := env.register("mallory", "pw-mallory-1").str("access_token")
	guest := env.do("POST", registerURL+"?kind=guest", `{}`).str("access_token")
	before := env.tableDump("accounts") + env.tableDump("devices") + env.tableDump("admin_audit")
	for _, ep := range adminEndpoints {
		path := adminPath(ep.path, "@victim:example.org")
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			env.do(ep.method, path, ep.body).expect(t, 401, "M_MISSING_TOKEN")
			env.do(ep.method, path, ep.body, bearer(user)...).expect(t, 403, "M_FORBIDDEN")
			env.do(ep.method, path, ep.body, bearer(guest)...).expect(t, 403, "M_FORBIDDEN")
		})
	}
	if after := env.tableDump("accounts") + env.tableDump("devices") + env.tableDump("admin_audit"); after != before {
		t.Fatalf("refused requests changed the database:\n%s\n%s", before, after)
	}
	for _, ep := range adminEndpoints {
		if !strings.Contains(ep.path, "%s") {
			continue
		}
		t.Run("unknown and remote users "+ep.method+" "+ep.path, func(t *testing.T) {
			if ep.method == "PUT" && ep.path == adminV2Users+"%s" {
				return // creates the account
			}
			env.do(ep.method, adminPath(ep.path, "@ghost:example.org"), ep.body, bearer(admin)...).expect(t, 404, "M_NOT_FOUND")
			env.do(ep.method, adminPath(ep.path, "@victim:elsewhere.example"), ep.body, bearer(admin)...).expect(t, 400, "M_INVALID_PARAM")
			env.do(ep.method, adminPath(ep.path, "victim"), ep.body, bearer(admin)...).expect(t, 400, "M_INVALID_PARAM")
		})
	}
}

func TestAdminGetAndPutUser(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.UserTypes.ExtraUserTypes = []string{"bridge"} })
	admin := env.adminToken("root")
	env.clock.Advance(time.Second)
	created := env.do("PUT", adminV2Users+"@carol:example.org", jsonBody(map[string]any{
		"password": "pw-carol-1", "displayname": "Carol", "avatar_url": "mxc://example.org/abc",
		"threepids": []map[string]any{{"medium": "email", "address": "Carol@Example.ORG"}}, "user_type": "bot",
		"external_ids": []any{},
	}), bearer(admin)...).expect(t, 201, "")
	if created.str("name") != "@carol:example.org" || created.str("displayname") != "Carol" || created.str("user_type") != "bot" ||
		created.Body["admin"] != false || created.Body["locked"] != false || created.Body["approved"] != true ||
		created.Body["creation_ts"] != float64(env.clock.Now().UnixMilli()) || created.Body["last_seen_ts"] != nil {
		t.Fatalf("created %s", created.Raw)
	}
	tps := created.Body["threepids"].([]any)
	if len(tps) != 1 || tps[0].(map[string]any)["address"] != "carol@example.org" {
		t.Fatalf("threepids %s", created.Raw)
	}
	carol := env.do("POST", loginURL, loginBody("carol", "pw-carol-1")).expect(t, 200, "").str("access_token")

	cases := []struct {
		name, body string
		status     int
		errcode    string
		check      func(response) bool
	}{
		{"admin", `{"admin":true}`, 200, "", func(r response) bool { return r.Body["admin"] == true }},
		{"user type cleared", `{"user_type":null}`, 200, "", func(r response) bool { return r.Body["user_type"] == nil }},
		{"extra user type", `{"user_type":"bridge"}`, 200, "", func(r response) bool { return r.str("user_type") == "bridge" }},
		{"unknown user type", `{"user_type":"robot"}`, 400, "M_INVALID_PARAM", nil},
		{"external ids", `{"external_ids":[{"auth_provider":"x","external_id":"1"}]}`, 400, "M_INVALID_PARAM", nil},
		{"avatar not mxc", `{"avatar_url":"https://example.org/a.png"}`, 400, "M_INVALID_PARAM", nil},
		{"long display name", jsonBody(map[string]any{"displayname": strings.Repeat("x", 257)}), 400, "M_INVALID_PARAM", nil},
		{"bad medium", `{"threepids":[{"medium":"fax","address":"1"}]}`, 400, "M_INVALID_PARAM", nil},
		{"bad email", `{"threepids":[{"medium":"email","address":"not an address"}]}`, 400, "M_INVALID_PARAM", nil},
		{"admin not boolean", `{"admin":"yes"}`, 400, "M_BAD_JSON", nil},
		{"null optional field", `{"displayname":null,"locked":null}`, 200, "", func(r response) bool { return r.str("displayname") == "Carol" }},
		{"threepids replaced", `{"threepids":[{"medium":"msisdn","address":"447911123456"},{"medium":"email","address":"c2@example.org"}]}`, 200, "",
			func(r response) bool { return len(r.Body["threepids"].([]any)) == 2 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.do("PUT", adminV2Users+"@carol:example.org", tc.body, bearer(admin)...).expect(t, tc.status, tc.errcode)
			if tc.check != nil && !tc.check(r) {
				t.Fatalf("unexpected account %s", r.Raw)
			}
		})
	}
	// Admin rights apply to the existing token at once.
	env.do("GET", "/_synapse/admin/v2/users", "", bearer(carol)...).expect(t, 200, "")

	// Another account's address is refused and nothing changes.
	env.register("dave", "pw-dave-1")
	env.do("PUT", adminV2Users+"@dave:example.org", `{"threepids":[{"medium":"email","address":"c2@example.org"}],"admin":true}`,
		bearer(admin)...).expect(t, 409, "M_THREEPID_IN_USE")
	if r := env.do("GET", adminV2Users+"@dave:example.org", "", bearer(admin)...); r.Body["admin"] != false || len(r.Body["threepids"].([]any)) != 0 {
		t.Fatalf("a refused change was half applied: %s", r.Raw)
	}

	// A new password logs every device out unless logout_devices is false.
	env.do("PUT", adminV2Users+"@carol:example.org", `{"password":"pw-carol-2","logout_devices":false}`, bearer(admin)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(carol)...).expect(t, 200, "")
	env.do("PUT", adminV2Users+"@carol:example.org", `{"password":"pw-carol-3"}`, bearer(admin)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(carol)...).expect(t, 401, "M_UNKNOWN_TOKEN")
	env.do("POST", loginURL, loginBody("carol", "pw-carol-3")).expect(t, 200, "")

	// Deactivation, then reactivation with a password.
	r := env.do("PUT", adminV2Users+"@carol:example.org", `{"deactivated":true}`, bearer(admin)...).expect(t, 200, "")
	if r.Body["deactivated"] != true || len(r.Body["threepids"].([]any)) != 0 {
		t.Fatalf("deactivated %s", r.Raw)
	}
	env.do("POST", loginURL, loginBody("carol", "pw-carol-3")).expect(t, 403, "M_USER_DEACTIVATED")
	env.do("PUT", adminV2Users+"@carol:example.org", `{"deactivated":false}`, bearer(admin)...).expect(t, 400, "M_MISSING_PARAM")
	env.do("PUT", adminV2Users+"@carol:example.org", `{"deactivated":false,"password":"pw-carol-4"}`, bearer(admin)...).expect(t, 200, "")
	env.do("POST", loginURL, loginBody("carol", "pw-carol-4")).expect(t, 200, "")

	// Nobody demotes themselves; an invalid localpart is not created.
	env.do("PUT", adminV2Users+"@root:example.org", `{"admin":false}`, bearer(admin)...).expect(t, 400, "M_UNKNOWN")
	env.do("PUT", adminV2Users+"@Bad%20Name:example.org", `{}`, bearer(admin)...).expect(t, 400, "M_INVALID_USERNAME")
	env.do("PUT", adminV2Users+"@new:example.org", `{"deactivated":true}`, bearer(admin)...).expect(t, 400, "M_INVALID_PARAM")
}

func TestAdminPutCreatesOnceUnderConcurrency(t *testing.T) {
	env := newEnv(t)
	admin := env.adminToken("root")
	results := concurrently(12, func(i int) response {
		return env.do("PUT", adminV2Users+"@racer:example.org", fmt.Sprintf(`{"displayname":"racer %d"}`, i), bearer(admin)...)
	})
	created := 0
	for _, r := range results {
		switch r.Status {
		case 201:
			created++
		case 200:
		default:
			t.Fatalf("concurrent PUT: %d %s", r.Status, r.Raw)
		}
	}
	if created != 1 {
		t.Fatalf("%d requests created the account, want 1", created)
	}
	if n := strings.Count(env.tableDump("admin_audit"), "@racer:example.org"); n != 12 {
		t.Fatalf("%d audit records for 12 changes:\n%s", n, env.tableDump("admin_audit"))
	}
}

// listAll pages through the list with limit per page and returns the
// names in the order served.
func listAll(t *testing.T, env *testEnv, admin, version, query string, limit int) []string {
	t.Helper()
	var names []string
	from := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("pagination does not end")
		}
		q := query + "&limit=" + strconv.Itoa(limit)
		if from != "" {
			q += "&from=" + from
		}
		r := env.do("GET", "/_synapse/admin/"+version+"/users?"+q, "", bearer(admin)...).expect(t, 200, "")
		users := r.Body["users"].([]any)
		if len(users) > limit {
			t.Fatalf("page of %d with limit %d", len(users), limit)
		}
		for _, u := range users {
			names = append(names, u.(map[string]any)["name"].(string))
		}
		next, ok := r.Body["next_token"].(string)
		if !ok {
			if int(r.Body["total"].(float64)) != len(names) {
				t.Fatalf("total %v, listed %d", r.Body["total"], len(names))
			}
			return names
		}
		from = next
	}
}

func TestAdminListPaginatesEveryAccountOnceInOrder(t *testing.T) {
	env := newEnv(t)
	admin := env.adminToken("root")
	type acct struct {
		name    string
		created int64
		admin   bool
	}
	accts := []acct{{"@root:example.org", env.clock.Now().UnixMilli(), true}}
	for i := 0; i < 250; i++ {
		env.clock.Advance(time.Duration(1+(i*7)%5) * time.Millisecond) // some creation times repeat
		// Names whose byte order differs from a natural or case-folded order.
		name := fmt.Sprintf("u%03d_%c", (i*37)%250, "aB_z"[i%4])
		name = strings.ToLower(name)
		isAdmin := i%9 == 0
		env.do("PUT", adminV2Users+"@"+name+":example.org", fmt.Sprintf(`{"admin":%t}`, isAdmin), bearer(admin)...).expect(t, 201, "")
		accts = append(accts, acct{"@" + name + ":example.org", env.clock.Now().UnixMilli(), isAdmin})
	}
	byName := func(a, b acct) int { return strings.Compare(a.name, b.name) }
	cases := []struct {
		query string
		less  func(a, b acct) int
	}{
		{"", byName},
		{"dir=b", func(a, b acct) int { return -byName(a, b) }},
		{"order_by=creation_ts", func(a, b acct) int {
			if a.created != b.created {
				return int(a.created - b.created)
			}
			return byName(a, b)
		}},
		{"order_by=creation_ts&dir=b", func(a, b acct) int {
			if a.created != b.created {
				return int(b.created - a.created)
			}
			return byName(a, b)
		}},
		{"order_by=admin&dir=b", func(a, b acct) int {
			if a.admin != b.admin {
				if a.admin {
					return -1
				}
				return 1
			}
			return byName(a, b)
		}},
	}
	for _, tc := range cases {
		for _, limit := range []int{1, 17, 100, 1000} {
			if limit == 1 && tc.query != "" {
				continue
			}
			t.Run(fmt.Sprintf("%s limit %d", tc.query, limit), func(t *testing.T) {
				got := listAll(t, env, admin, "v2", tc.query, limit)
				want := slices.Clone(accts)
				slices.SortStableFunc(want, tc.less)
				if len(got) != len(want) {
					t.Fatalf("listed %d accounts, want %d", len(got), len(want))
				}
				for i := range want {
					if got[i] != want[i].name {
						t.Fatalf("position %d: %s, want %s", i, got[i], want[i].name)
					}
				}
			})
		}
	}
}

func TestAdminListFilters(t *testing.T) {
	env := newEnv(t)
	admin := env.adminToken("root")
	put := func(user, body string) {
		env.do("PUT", adminV2Users+user, body, bearer(admin)...).expect(t, 201, "")
	}
	put("@alice:example.org", `{"displayname":"Wonder Land"}`)
	put("@bob:example.org", `{"user_type":"bot"}`)
	put("@carl:example.org", `{"locked":true}`)
	put("@dora:example.org", `{"admin":true}`)
	put("@eve:example.org", `{"approved":false}`)
	put("@fay_x:example.org", `{}`)
	put("@gone:example.org", `{}`)
	env.do("POST", "/_synapse/admin/v1/deactivate/@gone:example.org", `{}`, bearer(admin)...).expect(t, 200, "")
	env.do("POST", registerURL+"?kind=guest", `{}`).expect(t, 200, "")
	guest := "@1:example.org"

	names := func(version, query string) []string {
		got := listAll(t, env, admin, version, query, 3)
		sort.Strings(got)
		return got
	}
	all := []string{"@alice:example.org", "@bob:example.org", "@dora:example.org", "@eve:example.org", "@fay_x:example.org", "@root:example.org"}
	cases := []struct {
		version, query string
		want           []string
	}{
		{"v2", "", append([]string{guest}, all...)},
		{"v2", "guests=false", all},
		{"v2", "deactivated=true&guests=false", append(slices.Clone(all), "@gone:example.org")},
		{"v3", "deactivated=true", []string{"@gone:example.org"}},
		{"v3", "deactivated=false&guests=false", all},
		{"v3", "guests=false", append(slices.Clone(all), "@gone:example.org")},
		{"v2", "locked=true&guests=false", append(slices.Clone(all), "@carl:example.org")},
		{"v2", "admins=true", []string{"@dora:example.org", "@root:example.org"}},
		{"v2", "admins=false&guests=false", []string{"@alice:example.org", "@bob:example.org", "@eve:example.org", "@fay_x:example.org"}},
		{"v2", "name=wonder", []string{"@alice:example.org"}},
		{"v2", "name=ALI", []string{"@alice:example.org"}},
		{"v2", "user_id=_x", []string{"@fay_x:example.org"}}, // _ is literal, not a wildcard
		{"v2", "user_id=%25", nil}, // % too
		{"v2", "user_types=bot", []string{"@bob:example.org"}},
		{"v2", "not_user_type=bot&not_user_type=&guests=true", nil},
		{"v2", "approved=false", []string{"@eve:example.org"}},
	}
	for _, tc := range cases {
		t.Run(tc.version+" "+tc.query, func(t *testing.T) {
			got := names(tc.version, tc.query)
			want := slices.Clone(tc.want)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
	for _, bad := range []string{"from=-1", "limit=-5", "limit=x", "order_by=password", "dir=up", "guests=maybe"} {
		env.do("GET", "/_synapse/admin/v2/users?"+bad, "", bearer(admin)...).expect(t, 400, "M_INVALID_PARAM")
	}
	if r := env.do("GET", "/_synapse/admin/v2/users?limit=0", "", bearer(admin)...).expect(t, 200, ""); len(r.Body["users"].([]any)) != 0 {
		t.Fatalf("limit=0: %s", r.Raw)
	}
}

func TestAdminAccountActions(t *testing.T) {
	env := newEnv(t, func(c *config.Config) { c.EnableRegistration = false })
	admin := env.adminToken("root")
	env.do("PUT", adminV2Users+"@pat:example.org", `{"password":"pw-pat-1"}`, bearer(admin)...).expect(t, 201, "")
	pat := env.do("POST", loginURL, loginBody("pat", "pw-pat-1")).expect(t, 200, "").str("access_token")

	// reset_password, keeping devices.
	env.do("POST", "/_synapse/admin/v1/reset_password/@pat:example.org", `{"new_password":"pw-pat-2","logout_devices":false}`,
		bearer(admin)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(pat)...).expect(t, 200, "")
	env.do("POST", loginURL, loginBody("pat", "pw-pat-2")).expect(t, 200, "")
	env.do("POST", "/_synapse/admin/v1/reset_password/@pat:example.org", `{"new_password":""}`, bearer(admin)...).expect(t, 400, "M_INVALID_PARAM")
	env.do("POST", "/_synapse/admin/v1/reset_password/@pat:example.org", `{}`, bearer(admin)...).expect(t, 400, "M_BAD_JSON")
	env.do("POST", "/_synapse/admin/v1/reset_password/@pat:example.org", `{"new_password":"pw-pat-3"}`, bearer(admin)...).expect(t, 200, "")
	env.do("GET", whoamiURL, "", bearer(pat)...).expect(t, 401, "M_UNKNOWN_TOKEN")

	// Admin status.
	if r := env.do("GET", "/_synapse/admin/v1/users/@pat:example.org/admin", "", bearer(admin)...).expect(t, 200, ""); r.Body["admin"] != false {
		t.Fatalf("admin %s", r.Raw)
	}
	env.do("PUT", "/_synapse/admin/v1/users/@pat:example.org/admin", `{"admin":true}`, bearer(admin)...).expect(t, 200, "")
	if r := env.do("GET", "/_synapse/admin/v1/users/@pat:example.org/admin", "", bearer(admin)...); r.Body["admin"] != true {
		t.Fatalf("admin %s", r.Raw)
	}
	env.do("PUT", "/_synapse/admin/v1/users/@pat:example.org/admin", `{}`, bearer(admin)...).expect(t, 400, "M_BAD_JSON")
	env.do("PUT", "/_synapse/admin/v1/users/@root:example.org/admin", `{"admin":false}`, bearer(admin)...).expect(t, 400, "M_UNKNOWN")

	// username_available works with registration closed.
	env.do("GET", "/_synapse/admin/v1/username_available?username=pat", "", bearer(admin)...).expect(t, 400, "M_USER_IN_USE")
	env.do("GET", "/_synapse/admin/v1/username_available?username=Bad%20Name", "", bearer(admin)...).expect(t, 400, "M_INVALID_USERNAME")
	env.do("GET", "/_synapse/admin/v1/username_available", "", bearer(admin)...).expect(t, 400, "M_MISSING_PARAM")
	if r := env.do("GET", "/_synapse/admin/v1/username_available?username=freshname", "", bearer(admin)...).expect(t, 200, ""); r.Body["available"] != true {
		t.Fatalf("available %s", r.Raw)
	}

	// Deactivation with erase, twice.
	env.do("PUT", adminV2Users+"@pat:example.org", `{"displayname":"Pat"}`, bearer(admin)...).expect(t, 200, "")
	for i := 0; i < 2; i++ {
		r := env.do("POST", "/_synapse/admin/v1/deactivate/@pat:example.org", `{"erase":true}`, bearer(admin)...).expect(t, 200, "")
		if r.str("id_server_unbind_result") != "success" {
			t.Fatalf("deactivate %s", r.Raw)
		}
	}
	u := env.do("GET", adminV2Users+"@pat:example.org", "", bearer(admin)...)
	if u.Body["deactivated"] != true || u.Body["erased"] != true || u.Body["displayname"] != nil {
		t.Fatalf("after erase %s", u.Raw)
	}
	env.do("POST", loginURL, loginBody("pat", "pw-pat-3")).expect(t, 403, "M_USER_DEACTIVATED")
	env.do("POST", "/_synapse/admin/v1/deactivate/@other:example.org", "", bearer(admin)...).expect(t, 404, "M_NOT_FOUND")

	// The audit table has who, what and when for each change, and no password.
	audit := env.tableDump("admin_audit")
	for _, want := range []string{"reset_password", "make_admin", "modify", "deactivate"} {
		if !strings.Contains(audit, want) || !strings.Contains(audit, "@root:example.org") {
			t.Fatalf("audit lacks %s:\n%s", want, audit)
		}
	}
	if strings.Contains(audit, "pw-pat") {
		t.Fatalf("a password in the audit table:\n%s", audit)
	}
	// create, 2 resets, admin, display name, 1 deactivation (the second changes nothing)
	if n := strings.Count(audit, "@pat:example.org"); n != 6 {
		t.Fatalf("%d audit records for pat:\n%s", n, audit)
	}
}
