package impl_test

import "testing"

// checkMatrixResponse fails on a 5xx or on an error that is not a Matrix
// error (a 401 of User-Interactive Authentication carries flows instead).
func checkMatrixResponse(t *testing.T, body string, r response) {
	t.Helper()
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
		r := env.doRaw("POST", path, body)
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
		checkMatrixResponse(t, body, env.doRaw("POST", loginURL, body))
	})
}

// doRaw is doQuiet for fuzzing.
func (e *testEnv) doRaw(method, path, body string) response { return e.doQuiet(method, path, body) }
