package main

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
)

const validationInput = `{"openapi": "3.0.3", "info": {"title": "t", "version": "1", "description": "prose"},
  "paths": {
    "/x": {"post": {"operationId": "x", "summary": "prose", "description": "prose", "x-registrar-legacy-auth": true,
      "security": [{"token": []}],
      "parameters": [{"name": "kind", "in": "query", "description": "prose", "schema": {"type": "string", "enum": ["a"]}}],
      "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Body"}, "example": {"a": 1}}}},
      "responses": {"200": {"description": "prose", "content": {"text/html": {"schema": {"$ref": "#/components/schemas/Page"}}}},
        "400": {"description": "prose", "content": {"application/json": {"schema": {"type": "object"}}}},
        "204": {"description": "prose"}}}},
    "/y": {"get": {"operationId": "y", "parameters": [{"name": "n", "in": "query", "schema": {"$ref": "#/components/schemas/Inner"}}],
      "responses": {"204": {"description": "prose"}}}}},
  "components": {"schemas": {
    "Body": {"type": "object", "description": "prose", "required": ["description"],
      "properties": {"description": {"type": "string", "description": "prose"}, "inner": {"$ref": "#/components/schemas/Inner"}}},
    "Inner": {"type": "integer", "example": 3},
    "Page": {"type": "string"},
    "Unused": {"type": "string"}},
    "securitySchemes": {"token": {"type": "http", "scheme": "bearer", "description": "prose"}}}}`

// TestValidationSpecKeepsWhatValidationReads: prose, response schemas and
// unreferenced schemas go; a property named like prose, required lists,
// the responses' media types, parameters, security and extensions stay.
func TestValidationSpecKeepsWhatValidationReads(t *testing.T) {
	parts, err := validationSpec([]byte(validationInput), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 {
		t.Fatalf("%d parts", len(parts))
	}
	want := `{"components":{"schemas":{"Body":{"properties":{"description":{"type":"string"},"inner":{"$ref":"#/components/schemas/Inner"}},"required":["description"],"type":"object"},"Inner":{"type":"integer"}},` +
		`"securitySchemes":{"token":{"scheme":"bearer","type":"http"}}},` +
		`"info":{"title":"t","version":"1"},"openapi":"3.0.3",` +
		`"paths":{"/x":{"post":{"operationId":"x","parameters":[{"in":"query","name":"kind","schema":{"enum":["a"],"type":"string"}}],` +
		`"requestBody":{"content":{"application/json":{"schema":{"$ref":"#/components/schemas/Body"}}}},` +
		`"responses":{"default":{"content":{"application/json":{},"text/html":{}}}},"security":[{"token":[]}],"x-registrar-legacy-auth":true}},` +
		`"/y":{"get":{"operationId":"y","parameters":[{"in":"query","name":"n","schema":{"$ref":"#/components/schemas/Inner"}}],"responses":{}}}}}`
	assertJSON(t, parts[0], want)
}

// TestValidationSpecPartsShareOutThePaths: every path is in exactly one
// part, and each part holds the schemas its own paths refer to, no more.
func TestValidationSpecPartsShareOutThePaths(t *testing.T) {
	parts, err := validationSpec([]byte(validationInput), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 {
		t.Fatalf("%d parts", len(parts))
	}
	var seen []string
	for _, p := range parts {
		var doc struct {
			Paths      map[string]any `json:"paths"`
			Components struct {
				Schemas         map[string]any `json:"schemas"`
				SecuritySchemes map[string]any `json:"securitySchemes"`
			} `json:"components"`
		}
		if err := json.Unmarshal(p, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Paths) != 1 {
			t.Errorf("a part with %d paths", len(doc.Paths))
		}
		var schemas []string
		for name := range doc.Components.Schemas {
			schemas = append(schemas, name)
		}
		sort.Strings(schemas)
		for path := range doc.Paths {
			seen = append(seen, path)
			want := map[string][]string{"/x": {"Body", "Inner"}, "/y": {"Inner"}}[path]
			if !reflect.DeepEqual(schemas, want) {
				t.Errorf("the part with %s holds schemas %v, want %v", path, schemas, want)
			}
		}
		if doc.Components.SecuritySchemes["token"] == nil {
			t.Error("a part without the security schemes")
		}
	}
	sort.Strings(seen)
	if !reflect.DeepEqual(seen, []string{"/x", "/y"}) {
		t.Errorf("paths across parts: %v", seen)
	}
}

// TestValidationSourceIsGo: the generated file's strings are the parts.
func TestValidationSourceIsGo(t *testing.T) {
	src := string(validationSource([][]byte{[]byte(`{"a":"\"b\"\n"}`), []byte(`{}`)}))
	for _, want := range []string{"package api", `var ValidationSpec = [2]string{`, `"{\"a\":\"\\\"b\\\"\\n\"}",`, `"{}",`} {
		if !strings.Contains(src, want) {
			t.Errorf("generated source lacks %s:\n%s", want, src)
		}
	}
}

func assertJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
