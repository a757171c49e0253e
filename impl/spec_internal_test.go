package impl

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"registrar/api"
)

// TestValidationSpecIsTheEmbeddedSpec checks the validation spec
// against the whole embedded spec: every operation is there, once, with
// the same operationId (as the spec files spell it), parameters, request body, security, extensions
// and response media types, but for prose.
func TestValidationSpecIsTheEmbeddedSpec(t *testing.T) {
	full, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := spec.Paths.Len(), full.Paths.Len(); got != want {
		t.Errorf("%d paths, the embedded spec has %d", got, want)
	}
	ops := 0
	for path, item := range full.Paths.Map() {
		vitem := spec.Paths.Value(path)
		if vitem == nil {
			t.Errorf("%s is missing", path)
			continue
		}
		for method, op := range item.Operations() {
			ops++
			vop := vitem.GetOperation(method)
			if vop == nil {
				t.Errorf("%s %s is missing", method, path)
				continue
			}
			for _, field := range []struct {
				name      string
				full, got any
			}{
				// The generator spells the embedded spec's operationIds as Go
				// names (get_registration_info: GetRegistrationInfo).
				{"operationId", strings.ToLower(op.OperationID), strings.ToLower(strings.ReplaceAll(vop.OperationID, "_", ""))},
				{"parameters", withoutProse(t, op.Parameters), withoutProse(t, vop.Parameters)},
				{"requestBody", withoutProse(t, op.RequestBody), withoutProse(t, vop.RequestBody)},
				{"security", withoutProse(t, op.Security), withoutProse(t, vop.Security)},
				{"extensions", withoutProse(t, op.Extensions), withoutProse(t, vop.Extensions)},
				{"media types", mediaTypes(op), mediaTypes(vop)},
			} {
				if !reflect.DeepEqual(field.full, field.got) {
					t.Errorf("%s %s: %s differ:\nembedded   %v\nvalidation %v", method, path, field.name, field.full, field.got)
				}
			}
		}
	}
	if ops < 90 {
		t.Errorf("only %d operations compared", ops)
	}
}

// withoutProse is v as JSON data, without prose keys outside of maps of
// names (properties, content...).
func withoutProse(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var data any
	if err := json.Unmarshal(b, &data); err != nil {
		t.Fatal(err)
	}
	var strip func(node any, names bool)
	strip = func(node any, names bool) {
		switch n := node.(type) {
		case map[string]any:
			if !names {
				for _, k := range []string{"description", "summary", "example", "examples", "externalDocs"} {
					delete(n, k)
				}
			}
			for k, v := range n {
				strip(v, !names && (k == "properties" || k == "content"))
			}
		case []any:
			for _, v := range n {
				strip(v, false)
			}
		}
	}
	strip(data, false)
	return data
}

// mediaTypes are the media types of an operation's responses.
func mediaTypes(op *openapi3.Operation) map[string]bool {
	types := map[string]bool{}
	for _, r := range op.Responses.Map() {
		if r.Value != nil {
			for mt := range r.Value.Content {
				types[mt] = true
			}
		}
	}
	return types
}
