package impl

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestValidationSpecKeepsWhatValidationReads: prose, response schemas and
// unreferenced schemas go; a property named like prose, required lists,
// media types, parameters, security and extensions stay.
func TestValidationSpecKeepsWhatValidationReads(t *testing.T) {
	raw := `{"openapi": "3.0.3", "info": {"title": "t", "version": "1", "description": "prose"},
	  "paths": {"/x": {"post": {"operationId": "x", "summary": "prose", "description": "prose", "x-registrar-legacy-auth": true,
	    "security": [{"token": []}],
	    "parameters": [{"name": "kind", "in": "query", "description": "prose", "schema": {"type": "string", "enum": ["a"]}}],
	    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Body"}, "example": {"a": 1}}}},
	    "responses": {"200": {"description": "prose", "content": {"text/html": {"schema": {"$ref": "#/components/schemas/Page"}}}}}}}},
	  "components": {"schemas": {
	    "Body": {"type": "object", "description": "prose", "required": ["description"],
	      "properties": {"description": {"type": "string", "description": "prose"}, "inner": {"$ref": "#/components/schemas/Inner"}}},
	    "Inner": {"type": "integer", "example": 3},
	    "Page": {"type": "string"}}}}`
	out, err := validationSpec([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := `{"components":{"schemas":{"Body":{"properties":{"description":{"type":"string"},"inner":{"$ref":"#/components/schemas/Inner"}},"required":["description"],"type":"object"},"Inner":{"type":"integer"}}},` +
		`"info":{"title":"t","version":"1"},"openapi":"3.0.3",` +
		`"paths":{"/x":{"post":{"operationId":"x","parameters":[{"in":"query","name":"kind","schema":{"enum":["a"],"type":"string"}}],` +
		`"requestBody":{"content":{"application/json":{"schema":{"$ref":"#/components/schemas/Body"}}}},` +
		`"responses":{"200":{"content":{"text/html":{}}}},"security":[{"token":[]}],"x-registrar-legacy-auth":true}}}}`
	var wantDoc map[string]any
	if err := json.Unmarshal([]byte(want), &wantDoc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, wantDoc) {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
}
