package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// swagger12 is an API declaration using what the Matrix v1 documents
// use, and the rest of 1.2's parameter and type forms.
const swagger12 = `{
  "swaggerVersion": "1.2", "apiVersion": "1.0.0",
  "basePath": "http://localhost:8008/_matrix/client/api/v1",
  "resourcePath": "/things", "consumes": ["application/json"], "produces": ["application/json"],
  "apis": [
    {"path": "/things", "operations": [
      {"method": "GET", "nickname": "list_things", "summary": "List.", "notes": "Notes.", "type": "ThingList"},
      {"method": "POST", "nickname": "make_thing", "summary": "Make.", "type": "Thing",
       "parameters": [
         {"paramType": "body", "name": "body", "required": true, "type": "Thing", "description": "A thing"},
         {"paramType": "query", "name": "limit", "type": "integer", "format": "int32", "defaultValue": "10", "minimum": "1"},
         {"paramType": "header", "name": "X-Tag", "type": "string", "enum": ["a", "b"]}],
       "responseMessages": [{"code": 400, "message": "Bad thing"}, {"code": 400, "message": "Missing keys"},
         {"code": 409, "message": "Exists", "responseModel": "Thing"}]}]},
    {"path": "/things/{thingId}", "operations": [
      {"method": "DELETE", "nickname": "delete_thing", "type": "void",
       "parameters": [{"paramType": "path", "name": "thingId", "type": "string"}]}]},
    {"path": "/upload", "operations": [
      {"method": "POST", "nickname": "upload", "type": "void",
       "parameters": [{"paramType": "form", "name": "name", "type": "string", "required": true},
                      {"paramType": "form", "name": "tags", "type": "array", "items": {"type": "string"}}]}]}],
  "models": {
    "Thing": {"id": "Thing", "required": ["name"], "properties": {
      "name": {"type": "string", "description": "Its name."},
      "size": {"type": "integer", "format": "int64"},
      "parts": {"type": "array", "items": {"$ref": "Part"}},
      "labels": {"type": "array", "items": {"$ref": "string"}},
      "_other_keys_": {"description": "Anything else."}}},
    "Part": {"id": "Part", "properties": {"ok": {"type": "boolean"}}},
    "ThingList": {"id": "ThingList", "properties": {"things": {"type": "array", "items": {"$ref": "Thing"}}}}}
}`

func TestConvertSwagger12(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"bundle.yaml": "inputs: [v1.json, two.yaml]\noutput: out.yaml\nschemas:\n  defs/a.yaml: A\n  defs/b.yaml: B\n",
		"v1.json":     swagger12,
		"two.yaml":    swagger2,
		"defs/a.yaml": "type: object\n",
		"defs/b.yaml": "type: object\n",
	})
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromFile(filepath.Join(dir, "out.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	things := doc.Paths.Value("/_matrix/client/api/v1/things")
	if things == nil || things.Get == nil || things.Post == nil || doc.Paths.Value("/base/thing") == nil {
		t.Fatalf("paths: %v", doc.Paths.InMatchingOrder())
	}
	if things.Get.OperationID != "list_things" || things.Get.Description != "Notes." || things.Post.OperationID != "make_thing" {
		t.Errorf("operations: %q %q %q", things.Get.OperationID, things.Get.Description, things.Post.OperationID)
	}
	if ref := things.Get.Responses.Value("200").Value.Content.Get("application/json").Schema.Ref; ref != "#/components/schemas/ThingList" {
		t.Errorf("GET 200 schema %q", ref)
	}
	post := things.Post
	body := post.RequestBody.Value
	if !body.Required || body.Content.Get("application/json").Schema.Ref != "#/components/schemas/Thing" {
		t.Errorf("body %+v", body)
	}
	limit := post.Parameters.GetByInAndName("query", "limit")
	if limit == nil || limit.Required || limit.Schema.Value.Type.Permits("integer") == false || limit.Schema.Value.Default != float64(10) ||
		*limit.Schema.Value.Min != 1 || limit.Schema.Value.Format != "int32" {
		t.Errorf("limit %+v", limit)
	}
	if tag := post.Parameters.GetByInAndName("header", "X-Tag"); tag == nil || !reflect.DeepEqual(tag.Schema.Value.Enum, []any{"a", "b"}) {
		t.Errorf("X-Tag %+v", tag)
	}
	if d := *post.Responses.Value("400").Value.Description; d != "Bad thing; Missing keys" {
		t.Errorf("400 %q", d)
	}
	if ref := post.Responses.Value("409").Value.Content.Get("application/json").Schema.Ref; ref != "#/components/schemas/Thing" {
		t.Errorf("409 schema %q", ref)
	}
	del := doc.Paths.Value("/_matrix/client/api/v1/things/{thingId}").Delete
	if p := del.Parameters.GetByInAndName("path", "thingId"); p == nil || !p.Required || del.Responses.Value("200").Value.Content != nil {
		t.Errorf("delete %+v", del)
	}
	form := doc.Paths.Value("/_matrix/client/api/v1/upload").Post.RequestBody.Value.Content.Get("application/x-www-form-urlencoded").Schema.Value
	if !reflect.DeepEqual(form.Required, []string{"name"}) || form.Properties["tags"].Value.Items.Value.Type.Permits("string") == false {
		t.Errorf("form %+v", form)
	}
	thing := doc.Components.Schemas["Thing"].Value
	if !reflect.DeepEqual(thing.Required, []string{"name"}) || thing.Properties["parts"].Value.Items.Ref != "#/components/schemas/Part" ||
		!thing.Properties["labels"].Value.Items.Value.Type.Permits("string") || thing.Properties["size"].Value.Format != "int64" ||
		thing.Properties["_other_keys_"].Value.Type != nil || thing.Properties["_other_keys_"].Value.Description != "Anything else." {
		t.Errorf("Thing %+v", thing.Properties)
	}
}

func TestConvertSwagger12FailsLoudly(t *testing.T) {
	for name, tc := range map[string]struct{ from, to, want string }{
		"unknown paramType":  {`"paramType": "header"`, `"paramType": "cookie"`, `unknown paramType "cookie"`},
		"dangling model":     {`"items": {"$ref": "Part"}`, `"items": {"$ref": "Piece"}`, `model Thing: property parts: items: "Piece" is neither a primitive nor a model`},
		"dangling body type": {`"required": true, "type": "Thing"`, `"required": true, "type": "Thingy"`, `parameter body: "Thingy" is neither`},
		"missing nickname":   {`"nickname": "upload", `, ``, `a nickname is required`},
		"resource listing":   {`"operations": [`, `"x": [`, `resource listing`},
		"model id mismatch":  {`"Part": {"id": "Part"`, `"Part": {"id": "Bit"`, `model Part: its id is "Bit"`},
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(swagger12, tc.from) {
				t.Fatalf("%q not in the fixture", tc.from)
			}
			dir := writeFiles(t, map[string]string{
				"bundle.yaml": "inputs: [v1.json]\noutput: out.yaml\n",
				"v1.json":     strings.Replace(swagger12, tc.from, tc.to, 1),
			})
			err := run(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestLegacyDocumentsAreTheSeeds: spec/legacy holds the v1 document
// (seed 003) as given, and the v2_alpha one (seed 000) with the line
// breaks and indentation its copy had lost restored and nothing else: its
// words, joined by single spaces, are the copy's bytes. The seeds are
// checked by their SHA-256, so the test needs no copy of them.
func TestLegacyDocumentsAreTheSeeds(t *testing.T) {
	for file, want := range map[string]string{
		"v1_registration.json":       "d3a229d276f3e907d377dc08c03192a8f81cc80dea062f334fd6a03ddbf6444a",
		"v2_alpha_registration.yaml": "749e29016102221960e16c8abe98c1d02a073796e340be66dfceca5c7ccb0135",
	} {
		ours, err := os.ReadFile(filepath.Join("..", "legacy", file))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(file, ".yaml") {
			ours = []byte(strings.Join(strings.Fields(string(ours)), " "))
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(ours)); got != want {
			t.Errorf("%s: sha256 %s, the seed's is %s", file, got, want)
		}
	}
}
