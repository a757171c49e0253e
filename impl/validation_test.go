package impl_test

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"registrar/api"
)

func TestValidationErrorsAreMatrixErrors(t *testing.T) {
	env := newEnv(t)
	big := `{"username":"` + strings.Repeat("a", 70<<10) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		errcode                  string
	}{
		{"not json", "POST", "/_matrix/client/v3/register", `{not json`, 400, "M_NOT_JSON"},
		{"empty body", "POST", "/_matrix/client/v3/register", ``, 400, "M_NOT_JSON"},
		{"json array", "POST", "/_matrix/client/v3/register", `[1,2]`, 400, "M_BAD_JSON"},
		{"wrong type", "POST", "/_matrix/client/v3/register", `{"username": 5}`, 400, "M_BAD_JSON"},
		{"wrong nested type", "POST", "/_matrix/client/v3/register", `{"auth": {"type": 7}}`, 400, "M_BAD_JSON"},
		{"wrong bool", "POST", "/_matrix/client/v3/register", `{"inhibit_login": "yes"}`, 400, "M_BAD_JSON"},
		{"missing required field", "POST", "/_matrix/client/v3/login", `{}`, 400, "M_BAD_JSON"},
		{"missing required query", "GET", "/_matrix/client/v3/register/available", ``, 400, "M_MISSING_PARAM"},
		{"bad enum", "POST", "/_matrix/client/v3/register?kind=robot", `{}`, 400, "M_INVALID_PARAM"},
		{"wrong method", "GET", "/_matrix/client/v3/register", ``, 405, "M_UNRECOGNIZED"},
		{"wrong method legacy path", "DELETE", "/_matrix/client/r0/login", ``, 405, "M_UNRECOGNIZED"},
		{"unknown path", "GET", "/_matrix/client/v3/nonexistent", ``, 404, "M_UNRECOGNIZED"},
		{"unknown root", "GET", "/", ``, 404, "M_UNRECOGNIZED"},
		{"oversize body", "POST", "/_matrix/client/v3/register", big, 413, "M_TOO_LARGE"},
		{"missing token", "GET", "/_matrix/client/v3/account/whoami", ``, 401, "M_MISSING_TOKEN"},
		{"unknown token", "GET", "/_matrix/client/v3/account/whoami?access_token=nope", ``, 401, "M_UNKNOWN_TOKEN"},
		{"malformed authorization", "GET", "/_matrix/client/v3/account/whoami", ``, 401, "M_MISSING_TOKEN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.name == "malformed authorization" {
				hdr = []string{"Authorization", "Basic abc"}
			}
			env.do(tc.method, tc.path, tc.body, hdr...).expect(t, tc.status, tc.errcode)
		})
	}
}

func TestValidationNeverEchoesSecrets(t *testing.T) {
	env := newEnv(t)
	secret := "hunter2-very-secret"
	for _, body := range []string{
		`{"new_password": 12345, "auth": {"password": "` + secret + `"}}`,
		`{"type": "m.login.password", "password": ["` + secret + `"]}`,
		`{"type": "m.login.password", "password": "` + secret + `", "identifier": "x"}`,
	} {
		for _, path := range []string{"/_matrix/client/v3/account/password", "/_matrix/client/v3/login"} {
			r := env.do("POST", path, body)
			if r.Status < 400 || strings.Contains(r.Raw, secret) || strings.Contains(r.Raw, "12345") {
				t.Errorf("POST %s %s: %d %s", path, body, r.Status, r.Raw)
			}
		}
	}
}

// TestEveryOperationValidates sends each operation of the embedded spec a
// request it must refuse, proving its validation middleware is attached (a
// mis-keyed middleware would let it through to the handler).
func TestEveryOperationValidates(t *testing.T) {
	env := newEnv(t, legacyAPIs)
	token := env.register("validator", "pw-validator-1").str("access_token")
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			// secured: a token is required (no empty alternative).
			secured := op.Security != nil && len(*op.Security) > 0
			if op.Security != nil {
				for _, req := range *op.Security {
					if len(req) == 0 {
						secured = false
					}
				}
			}
			var header []string
			if secured {
				header = bearer(token)
			}
			var requiredQuery string
			for _, p := range op.Parameters {
				if p.Value.In == "query" && p.Value.Required {
					requiredQuery = p.Value.Name
				}
			}
			for _, prefix := range []string{"", "r0"} {
				p := path
				if prefix != "" {
					if !strings.HasPrefix(path, "/_matrix/client/v3/") {
						continue
					}
					p = strings.Replace(path, "/v3/", "/r0/", 1)
				}
				name := method + " " + p
				refused := false
				query := ""
				if requiredQuery != "" {
					if op.Extensions["x-registrar-errors"] == "html" {
						// A page's refusal is a page (a browser opens it).
						if code, body := env.page(method, p, ""); code != http.StatusBadRequest || !strings.HasPrefix(body, "<!DOCTYPE html>") {
							t.Errorf("%s %s without %s: %d %s", method, p, requiredQuery, code, body)
						}
					} else {
						env.do(method, p, ``, header...).expect(t, http.StatusBadRequest, "M_MISSING_PARAM")
					}
					query, refused = "?"+requiredQuery+"=x", true
				}
				if op.RequestBody != nil && op.RequestBody.Value.Content.Get("application/json") != nil {
					jop := jsonOperation{method: method, path: p, oauth: op.Extensions["x-registrar-errors"] == "oauth2"}
					jop.expectRefused(t, env.do(method, p+query, `{not json`, header...), http.StatusBadRequest, "M_NOT_JSON")
					if bad := wrongTypedBody(op); bad != "" {
						jop.expectRefused(t, env.do(method, p+query, bad, header...), http.StatusBadRequest, "M_BAD_JSON")
					}
					refused = true
				}
				if secured {
					env.do(method, p+query, ``).expect(t, http.StatusUnauthorized, "M_MISSING_TOKEN")
					refused = true
				}
				if !refused {
					t.Logf("%s: nothing to refuse", name)
					continue
				}
				checked++
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d operations checked", checked)
	}
}

func TestCORS(t *testing.T) {
	env := newEnv(t)
	for _, tc := range []struct{ method, path string }{
		{"OPTIONS", "/_matrix/client/v3/register"},
		{"OPTIONS", "/_matrix/client/v3/account/whoami"},
		{"OPTIONS", "/anything/at/all"},
		{"GET", "/_matrix/client/versions"},
		{"GET", "/_matrix/client/v3/account/whoami"},
		{"GET", "/nope"},
	} {
		req := env.do(tc.method, tc.path, "", "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
		if tc.method == "OPTIONS" && (req.Status != http.StatusNoContent || req.Raw != "") {
			t.Errorf("%s %s: preflight got %d %q", tc.method, tc.path, req.Status, req.Raw)
		}
		for h, want := range map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
			"Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
		} {
			if got := req.Header.Get(h); got != want {
				t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.path, h, got, want)
			}
		}
	}
}

func TestVersionsAndWellKnown(t *testing.T) {
	env := newEnv(t)
	r := env.do("GET", "/_matrix/client/versions", "").expect(t, 200, "")
	var served []string
	for _, v := range r.Body["versions"].([]any) {
		served = append(served, v.(string))
	}
	// VERSIONS.md's first table is what may be advertised, exactly.
	doc, err := os.ReadFile("../VERSIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	advertised, _, _ := strings.Cut(string(doc), "Not advertised yet")
	var promised []string
	for _, m := range regexp.MustCompile(`(?m)^\| (r0\.\d\.\d|v1\.\d+) \|`).FindAllStringSubmatch(advertised, -1) {
		promised = append(promised, m[1])
	}
	if strings.Join(served, " ") != strings.Join(promised, " ") {
		t.Fatalf("/versions says %v, VERSIONS.md promises %v", served, promised)
	}
	// A token is accepted and changes nothing (Matrix v1.10).
	env.do("GET", "/_matrix/client/versions", "", bearer("anything")...).expect(t, 200, "")
	w := env.do("GET", "/.well-known/matrix/client", "").expect(t, 200, "")
	hs, _ := w.Body["m.homeserver"].(map[string]any)
	if hs["base_url"] != "https://matrix.example.org" {
		t.Errorf("well-known: %s", w.Raw)
	}
}

func TestUnconfiguredMediumAnswersMatrixErrors(t *testing.T) {
	env := newEnv(t)
	body := `{"client_secret": "abc", "email": "a@example.org", "send_attempt": 1}`
	env.do("POST", "/_matrix/client/v3/register/email/requestToken", body).expect(t, 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED")
	env.do("POST", "/_matrix/client/v3/account/password/email/requestToken", body).expect(t, 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED")
	phone := `{"client_secret": "abc", "country": "GB", "phone_number": "07700900001", "send_attempt": 1}`
	env.do("POST", "/_matrix/client/v3/register/msisdn/requestToken", phone).expect(t, 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED")
}

func TestContentTypeNotRequired(t *testing.T) {
	env := newEnv(t)
	r := env.do("GET", "/_matrix/client/v3/register/available?username=someone", "")
	r.expect(t, 200, "")
	// No Content-Type at all, and a form content type from curl -d.
	for i, ct := range []string{"", "application/x-www-form-urlencoded"} {
		hdr := []string{"Content-Type", ct}
		user := []string{"ctype-none", "ctype-form"}[i]
		env.do("POST", "/_matrix/client/v3/register", `{"username":"`+user+`","password":"pw-ctype-123","auth":{"type":"m.login.dummy"}}`, hdr...).expect(t, 200, "")
		env.do("POST", "/_matrix/client/v3/login", `{"type":"m.login.password","user":"`+user+`","password":"pw-ctype-123"}`, hdr...).expect(t, 200, "")
	}
}
