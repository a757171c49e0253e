package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const swagger2 = `swagger: '2.0'
info: {title: t, version: "1"}
basePath: /base
consumes: [application/json]
produces: [application/json]
paths:
  /thing:
    post:
      operationId: thing
      parameters:
        - in: body
          name: body
          schema: {$ref: "defs/a.yaml"}
      responses:
        200:
          description: ok
          schema: {$ref: "defs/b.yaml"}
`

const openapi3Input = `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /other}]
paths:
  /x:
    get:
      operationId: x
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "defs/b.yaml"}
`

func TestConvertBundlesBothFormats(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"bundle.yaml": "inputs: [two.yaml, three.yaml]\noutput: out.yaml\nschemas:\n  defs/a.yaml: A\n  defs/b.yaml: B\n",
		"two.yaml":    swagger2,
		"three.yaml":  openapi3Input,
		"defs/a.yaml": "type: object\nproperties: {client_secret: {type: string}, b: {$ref: b.yaml}}\n",
		"defs/b.yaml": "type: object\nproperties: {ok: {type: boolean}}\n",
	})
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(filepath.Join(dir, "out.yaml"))
	for _, want := range []string{"openapi: 3.0.3", "/base/thing:", "/other/x:", "#/components/schemas/A", "client_secret"} {
		if !strings.Contains(string(first), want) {
			t.Errorf("bundle lacks %q:\n%s", want, first)
		}
	}
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(filepath.Join(dir, "out.yaml"))
	if string(first) != string(second) {
		t.Error("bundling twice gave different output")
	}
}

func TestConvertFailsLoudly(t *testing.T) {
	cases := map[string]map[string]string{
		"two files one name": {
			"bundle.yaml": "inputs: [two.yaml]\noutput: out.yaml\nschemas:\n  defs/a.yaml: A\n  defs/b.yaml: A\n",
		},
		"unnamed schema file": {
			"bundle.yaml": "inputs: [two.yaml]\noutput: out.yaml\nschemas:\n  defs/a.yaml: A\n",
		},
		"path defined twice": {
			"bundle.yaml": "inputs: [two.yaml, two.yaml]\noutput: out.yaml\nschemas:\n  defs/a.yaml: A\n  defs/b.yaml: B\n",
		},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			files["two.yaml"] = swagger2
			files["defs/a.yaml"] = "type: object\n"
			files["defs/b.yaml"] = "type: object\n"
			if err := run(writeFiles(t, files)); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// TestConvertSwagger2TextExamples: the early Matrix documents give
// examples as JSON text and a response's examples without a schema; the
// bundle holds the values, and no body where 2.0 defined none.
func TestConvertSwagger2TextExamples(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"bundle.yaml": "inputs: [two.yaml]\noutput: out.yaml\n",
		"two.yaml": `swagger: '2.0'
info: {title: t, version: "1"}
basePath: /old
consumes: [application/json]
produces: [application/json]
paths:
  /register:
    post:
      parameters:
        - in: body
          name: body
          schema:
            type: object
            example: |-
              {"username": "cheeky_monkey"}
            properties: {username: {type: string}}
      responses:
        200:
          description: ok
          examples:
            application/json: |-
              {"user_id": "@a:b"}
          schema: {type: object, properties: {user_id: {type: string}}}
        400:
          description: bad
          examples:
            application/json: |-
              {"errcode": "M_USER_IN_USE"}
`,
	})
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromFile(filepath.Join(dir, "out.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	op := doc.Paths.Value("/old/register").Post
	if ex := op.RequestBody.Value.Content.Get("application/json").Schema.Value.Example; !reflect.DeepEqual(ex, map[string]any{"username": "cheeky_monkey"}) {
		t.Errorf("body example %#v", ex)
	}
	if ex := op.Responses.Value("200").Value.Content.Get("application/json").Example; !reflect.DeepEqual(ex, map[string]any{"user_id": "@a:b"}) {
		t.Errorf("200 example %#v", ex)
	}
	if c := op.Responses.Value("400").Value.Content; c != nil {
		t.Errorf("400 has a body: %v", c)
	}
}
