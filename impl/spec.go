package impl

import (
	"encoding/json"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"

	"registrar/api"
)

// loadSpec parses the embedded spec as request handling needs it, once
// per process: request handling only reads it, so every server of the
// process shares it.
var loadSpec = sync.OnceValues(func() (*openapi3.T, error) {
	raw, err := api.GetSpecJSON()
	if err != nil {
		return nil, err
	}
	trimmed, err := validationSpec(raw)
	if err != nil {
		return nil, err
	}
	return openapi3.NewLoader().LoadFromData(trimmed)
})

// PreloadSpec starts parsing the embedded spec in the background (the
// largest part of starting), so that it overlaps reading the
// configuration and opening the database; NewServer waits for it.
func PreloadSpec() { go func() { _, _ = loadSpec() }() }

// validationSpec is the spec without what validating requests never
// reads, which is half of it and of the time to parse it: prose
// (descriptions, summaries, examples), the schemas of responses (each
// response keeps its media types, which tell pages from JSON), and the
// component schemas nothing left refers to.
func validationSpec(raw []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, item := range paths {
		ops, _ := item.(map[string]any)
		for _, op := range ops {
			if o, ok := op.(map[string]any); ok {
				if responses, ok := o["responses"].(map[string]any); ok {
					for code, r := range responses {
						responses[code] = mediaTypesOnly(r)
					}
				}
			}
		}
	}
	dropProse(doc, false)
	if components, ok := doc["components"].(map[string]any); ok {
		if schemas, ok := components["schemas"].(map[string]any); ok {
			used := map[string]bool{}
			collectRefs(paths, schemas, used)
			for name := range schemas {
				if !used[name] {
					delete(schemas, name)
				}
			}
		}
	}
	return json.Marshal(doc)
}

// mediaTypesOnly is a response reduced to its media types.
func mediaTypesOnly(r any) any {
	out := map[string]any{}
	if rm, ok := r.(map[string]any); ok {
		if content, ok := rm["content"].(map[string]any); ok {
			types := map[string]any{}
			for mediaType := range content {
				types[mediaType] = map[string]any{}
			}
			out["content"] = types
		}
	}
	return out
}

// nameMaps are the keys whose values map names (of properties, paths,
// media types...) to objects: a name there is data, not prose.
var nameMaps = map[string]bool{"properties": true, "patternProperties": true, "schemas": true, "paths": true,
	"responses": true, "content": true, "headers": true, "securitySchemes": true, "parameters": true,
	"requestBodies": true, "examples": true, "links": true, "callbacks": true, "encoding": true}

// prose are the keys validation never reads.
var prose = []string{"description", "summary", "example", "examples", "externalDocs"}

// dropProse removes the prose keys from every object but name maps
// (names is true for one), whose entries it descends into.
func dropProse(node any, names bool) {
	switch n := node.(type) {
	case map[string]any:
		if !names {
			for _, k := range prose {
				delete(n, k)
			}
		}
		for k, v := range n {
			dropProse(v, !names && nameMaps[k])
		}
	case []any:
		for _, v := range n {
			dropProse(v, false)
		}
	}
}

// collectRefs marks every component schema node refers to, and those
// they refer to.
func collectRefs(node any, schemas map[string]any, used map[string]bool) {
	switch n := node.(type) {
	case map[string]any:
		if ref, ok := n["$ref"].(string); ok {
			if name, ok := strings.CutPrefix(ref, "#/components/schemas/"); ok && !used[name] {
				used[name] = true
				collectRefs(schemas[name], schemas, used)
			}
		}
		for _, v := range n {
			collectRefs(v, schemas, used)
		}
	case []any:
		for _, v := range n {
			collectRefs(v, schemas, used)
		}
	}
}
