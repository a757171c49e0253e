package impl_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"registrar/api"
)

// jsonOperation is an operation with a JSON body, path parameters filled.
type jsonOperation struct {
	method, path string
	schema       *openapi3.Schema
	// oauth: the operation answers RFC 6749 errors, not Matrix ones.
	oauth bool
}

// expectRefused checks a refusal: the Matrix errcode, or for an OAuth
// operation the RFC 6749 error code it maps to.
func (op jsonOperation) expectRefused(t *testing.T, r response, status int, errcode string) {
	t.Helper()
	if !op.oauth {
		r.expect(t, status, errcode)
		return
	}
	want := map[string]string{"M_NOT_JSON": "invalid_request", "M_BAD_JSON": "invalid_client_metadata"}[errcode]
	if r.Status != status || r.str("error") != want {
		t.Fatalf("%s %s: got %d %s, want %d %s", op.method, op.path, r.Status, r.Raw, status, want)
	}
}

func jsonOperations(t *testing.T) []jsonOperation {
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	var ops []jsonOperation
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil || op.RequestBody.Value == nil {
				continue
			}
			if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
				ops = append(ops, jsonOperation{method, pathParamRE.ReplaceAllString(path, "x"), mt.Schema.Value,
					op.Extensions["x-registrar-errors"] == "oauth2"})
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	if len(ops) < 15 {
		t.Fatalf("only %d operations with a JSON body", len(ops))
	}
	return ops
}

// TestInvalidUTF8IsNotJSON: on every operation, a body that is not UTF-8
// (a bad byte, an overlong form, an escaped lone surrogate) is
// M_NOT_JSON, before anything else looks at it.
// (The legacy registration APIs are on, so that every operation is reached.)
func TestInvalidUTF8IsNotJSON(t *testing.T) {
	env := newEnv(t, legacyAPIs)
	admin := env.adminToken("utfadmin")
	for _, op := range jsonOperations(t) {
		for _, body := range []string{"{\"password\":\"\xff\"}", "{\"username\":\"\xc0\xaf\"}", `{"username":"\ud800"}`,
			`{"username":"\udc00x"}`, `{"username":"\ud800\u0041"}`} {
			op.expectRefused(t, env.do(op.method, op.path, body, bearer(admin)...), 400, "M_NOT_JSON")
		}
		// A properly paired surrogate is fine.
		r := env.do(op.method, op.path, `{"username":"\ud83d\ude00"}`, bearer(admin)...)
		if r.Status == 400 && r.str("errcode") == "M_NOT_JSON" {
			t.Fatalf("%s %s refused a valid surrogate pair: %s", op.method, op.path, r.Raw)
		}
	}
	// No replacement character is ever stored: 0x81 and 0xFF are not one
	// password.
	env.do("POST", registerURL, "{\"username\":\"bytes\",\"password\":\"pw-\x81\",\"auth\":{\"type\":\"m.login.dummy\"}}").expect(t, 400, "M_NOT_JSON")
}

// minimal is a value of schema with every required property, recursively.
func minimal(s *openapi3.Schema) any {
	switch {
	case s.Type.Is("object") || len(s.Properties) > 0 || len(s.AllOf) > 0:
		out := map[string]any{}
		for _, name := range requiredOf(s) {
			if p := propertyOf(s, name); p != nil {
				out[name] = minimal(p)
			}
		}
		return out
	case s.Type.Is("string"):
		if len(s.Enum) > 0 {
			return s.Enum[0]
		}
		return "x"
	case s.Type.Is("integer") || s.Type.Is("number"):
		return 1
	case s.Type.Is("boolean"):
		return true
	case s.Type.Is("array"):
		return []any{}
	}
	return "x"
}

func requiredOf(s *openapi3.Schema) []string {
	out := append([]string{}, s.Required...)
	for _, m := range s.AllOf {
		out = append(out, requiredOf(m.Value)...)
	}
	return out
}

func propertyOf(s *openapi3.Schema, name string) *openapi3.Schema {
	if p := s.Properties[name]; p != nil {
		return p.Value
	}
	for _, m := range s.AllOf {
		if p := propertyOf(m.Value, name); p != nil {
			return p
		}
	}
	return nil
}

func propertiesOf(s *openapi3.Schema) map[string]*openapi3.Schema {
	out := map[string]*openapi3.Schema{}
	for name, p := range s.Properties {
		out[name] = p.Value
	}
	for _, m := range s.AllOf {
		for name, p := range propertiesOf(m.Value) {
			out[name] = p
		}
	}
	return out
}

// nullVariants is every body that sets one property to null, at any
// depth (to 3), with the minimal body around it; required tells whether
// that property is required.
func nullVariants(s *openapi3.Schema, depth int) (bodies []map[string]any, required []bool, paths []string) {
	base, _ := minimal(s).(map[string]any)
	req := map[string]bool{}
	for _, r := range requiredOf(s) {
		req[r] = true
	}
	for name, p := range propertiesOf(s) {
		b := clone(base)
		b[name] = nil
		bodies, required, paths = append(bodies, b), append(required, req[name] && !p.Nullable), append(paths, name)
		if depth > 1 && (p.Type.Is("object") || len(p.Properties) > 0 || len(p.AllOf) > 0) {
			inner, innerReq, innerPaths := nullVariants(p, depth-1)
			for i, ib := range inner {
				b := clone(base)
				b[name] = ib
				bodies, required, paths = append(bodies, b), append(required, innerReq[i]), append(paths, name+"/"+innerPaths[i])
			}
		}
	}
	return bodies, required, paths
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	if out == nil {
		out = map[string]any{}
	}
	return out
}

// TestNullIsAbsentForOptionalProperties sends, to every operation, null
// for each property at every level: an optional one is as if absent (no
// validation error), a required one is M_BAD_JSON.
func TestNullIsAbsentForOptionalProperties(t *testing.T) {
	env := newEnv(t, legacyAPIs)
	admin := env.adminToken("nulladmin")
	checked := 0
	for _, op := range jsonOperations(t) {
		bodies, required, paths := nullVariants(op.schema, 3)
		for i, body := range bodies {
			r := env.doQuiet(op.method, op.path, jsonBody(body), bearer(admin)...)
			validationError := r.Status == http.StatusBadRequest && (r.str("errcode") == "M_BAD_JSON" || r.str("errcode") == "M_NOT_JSON")
			if required[i] != validationError {
				t.Errorf("%s %s with %s null (required %v): %d %s", op.method, op.path, paths[i], required[i], r.Status, r.Raw)
			}
			checked++
		}
	}
	if checked < 60 {
		t.Fatalf("only %d null properties sent", checked)
	}
	t.Logf("%d null properties sent", checked)
}

// TestMatrixJSSDKSendsAuthNull: matrix-js-sdk's first request of a
// password change and of a deactivation carries "auth": null.
func TestMatrixJSSDKSendsAuthNull(t *testing.T) {
	env := newEnv(t)
	tok := env.register("jsuser", "pw-jsuser-1").str("access_token")
	r := env.do("POST", passwordURL, `{"new_password":"pw-jsuser-2","logout_devices":null,"auth":null}`, bearer(tok)...).expect(t, 401, "")
	env.do("POST", passwordURL, jsonBody(map[string]any{"new_password": "pw-jsuser-2", "auth": passwordAuth("jsuser", "pw-jsuser-1", r.str("session"))}),
		bearer(tok)...).expect(t, 200, "")
	r = env.do("POST", deactivateURL, `{"auth":null,"erase":null,"id_server":null}`, bearer(tok)...).expect(t, 401, "")
	if !strings.Contains(r.Raw, "m.login.password") {
		t.Fatal(r.Raw)
	}
}

// TestGuestRegistrationIgnoresAnOldToken: a client that logged out still
// holds its old token; registering as a guest with it works.
func TestGuestRegistrationIgnoresAnOldToken(t *testing.T) {
	env := newEnv(t)
	old := env.register("leaver", "pw-leaver-1").str("access_token")
	env.do("POST", "/_matrix/client/v3/logout", "", bearer(old)...).expect(t, 200, "")
	g := env.do("POST", registerURL+"?kind=guest", `{}`, bearer(old)...).expect(t, 200, "")
	if !strings.HasPrefix(g.str("user_id"), "@") {
		t.Fatal(g.Raw)
	}
	env.do("POST", registerURL+"?kind=guest", `{}`, bearer("garbage")...).expect(t, 200, "")
	// Other registrations still refuse a bad token.
	env.do("POST", registerURL, `{}`, bearer(old)...).expect(t, 401, "M_UNKNOWN_TOKEN")
}
