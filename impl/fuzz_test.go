package impl_test

import (
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"registrar/api"
)

// checkMatrixResponse fails on a 5xx or on an error that is not a Matrix
// error (a 401 of User-Interactive Authentication carries flows instead).
func checkMatrixResponse(t *testing.T, body string, r response) {
	t.Helper()
	if r.notJSON && r.Status < 400 && strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		return // a page
	}
	if r.notJSON {
		t.Fatalf("%q: response is not a JSON object: %d %q", body, r.Status, r.Raw)
	}
	if r.Status >= 500 {
		t.Fatalf("%q: %d %s", body, r.Status, r.Raw)
	}
	if r.Status < 400 {
		return
	}
	if r.Status == 401 {
		if _, ok := r.Body["flows"].([]any); ok {
			return
		}
	}
	code, _ := r.Body["errcode"].(string)
	if _, ok := r.Body["error"].(string); len(code) < 3 || !ok {
		t.Fatalf("%q: %d is not a Matrix error: %s", body, r.Status, r.Raw)
	}
}

var fuzzSeeds = []string{
	``, `{}`, `{not json`, `[]`, `null`, `"x"`, `{"username":5}`,
	`{"username":"alice","password":"pw","auth":{"type":"m.login.dummy"}}`,
	`{"username":"ALICE","password":"pw","auth":{"type":"m.login.dummy","session":"nope"}}`,
	`{"auth":{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"x"}}`,
	`{"username":"_x","password":"` + "\u0000" + `"}`,
	`{"type":"m.login.application_service","username":"bridge"}`,
	`{"guest_access_token":"abc","username":"1","password":"p"}`,
	`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"@alice:example.org"},"password":"pw"}`,
	`{"type":"m.login.password","user":"alice","password":"pw","device_id":"","refresh_token":true}`,
	`{"type":"m.login.token","token":"x"}`, `{"type":"m.login.password","identifier":{"type":"m.id.phone"}}`,
	`{"username":"a","password":"pw","device_id":"` + string(make([]byte, 300)) + `"}`,
}

// FuzzRegister feeds /register arbitrary bodies: no panic, no 500, every
// error a Matrix error.
func FuzzRegister(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, false)
	}
	env := newEnv(f)
	f.Fuzz(func(t *testing.T, body string, guest bool) {
		path := registerURL
		if guest {
			path += "?kind=guest"
		}
		r := env.doQuiet("POST", path, body)
		checkMatrixResponse(t, body, r)
	})
}

// FuzzLogin feeds /login arbitrary bodies.
func FuzzLogin(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	env := newEnv(f)
	env.register("alice", "pw")
	f.Fuzz(func(t *testing.T, body string) {
		checkMatrixResponse(t, body, env.doQuiet("POST", loginURL, body))
	})
}

// specOperation is one operation of the embedded spec, as a request line.
type specOperation struct{ method, path string }

// specOperations lists every operation, path parameters filled in.
func specOperations(t testing.TB) []specOperation {
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	var ops []specOperation
	for path, item := range spec.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, specOperation{method, pathParamRE.ReplaceAllString(path, "x")})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	return ops
}

var pathParamRE = regexp.MustCompile(`\{[^}]+\}`)

var querySeeds = []string{"", "%zz", "a=%zz", "session=%zz", "a;b", "access_token=%", "username=%ff%fe", "kind=guest&kind=user",
	"access_token=x&access_token=y", "session=" + strings.Repeat("A", 3000), "sid=1&client_secret=%00&token=x"}

// FuzzQueryStrings sends every operation arbitrary query strings (and
// bodies), with and without an admin's token.
func FuzzQueryStrings(f *testing.F) {
	for i, q := range querySeeds {
		f.Add(uint(i), q, `{}`, i%2 == 0)
	}
	env := newEnv(f)
	token := env.adminToken("fuzzadmin")
	ops := specOperations(f)
	f.Fuzz(func(t *testing.T, which uint, query, body string, withToken bool) {
		op := ops[which%uint(len(ops))]
		var header []string
		if withToken {
			header = bearer(token)
		}
		target := op.path
		if query != "" {
			target += "?" + query
		}
		if _, err := url.ParseRequestURI(target); err != nil || strings.ContainsFunc(query, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' }) {
			return // not a request line a client can send
		}
		checkMatrixResponse(t, op.method+" "+target, env.doQuiet(op.method, target, body, header...))
	})
}
