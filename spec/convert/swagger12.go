package main

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Swagger 1.2 (the Matrix v1 API's form): an API declaration lists its
// operations under apis[].operations, names each with a nickname,
// describes parameters by paramType and answers by type and
// responseMessages, and defines its schemas under models, referenced by
// id. fromSwagger12 turns one declaration into an OpenAPI 3.0.3 document
// (a generic map) that loadInput then treats as any 3.x input.

// swagger12Primitives are the 1.2 data types that are not models, with
// their OpenAPI 3 form.
var swagger12Primitives = map[string]map[string]any{
	"integer": {"type": "integer"},
	"number":  {"type": "number"},
	"string":  {"type": "string"},
	"boolean": {"type": "boolean"},
	"File":    {"type": "string", "format": "binary"},
}

// isSwagger12 reports whether a document is Swagger 1.2.
func isSwagger12(doc map[string]any) bool {
	v, _ := doc["swaggerVersion"].(string)
	return v == "1.2"
}

func fromSwagger12(doc map[string]any) (map[string]any, error) {
	apis, _ := doc["apis"].([]any)
	for _, a := range apis {
		if api, _ := a.(map[string]any); api != nil && api["operations"] == nil {
			return nil, errors.New("a Swagger 1.2 resource listing: name its API declarations in bundle.yaml instead")
		}
	}
	models, _ := doc["models"].(map[string]any)
	c := &swagger12Converter{models: models}
	base, err := swagger12BasePath(doc)
	if err != nil {
		return nil, err
	}
	schemas := map[string]any{}
	for _, id := range sortedKeys(models) {
		s, err := c.model(id)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", id, err)
		}
		schemas[id] = s
	}
	consumes, produces := firstString(doc["consumes"], "application/json"), firstString(doc["produces"], "application/json")
	paths := map[string]any{}
	for i, a := range apis {
		api, _ := a.(map[string]any)
		p, _ := api["path"].(string)
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("apis[%d]: path %q must start with /", i, p)
		}
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		ops, _ := api["operations"].([]any)
		for j, o := range ops {
			op, _ := o.(map[string]any)
			method := strings.ToLower(fmt.Sprint(op["method"]))
			if _, dup := item[method]; dup {
				return nil, fmt.Errorf("%s: method %s is declared twice", p, op["method"])
			}
			converted, err := c.operation(op, firstString(op["consumes"], consumes), firstString(op["produces"], produces))
			if err != nil {
				return nil, fmt.Errorf("%s operations[%d]: %w", p, j, err)
			}
			item[method] = converted
		}
	}
	title, _ := doc["resourcePath"].(string)
	version, _ := doc["apiVersion"].(string)
	out := map[string]any{
		"openapi":    "3.0.3",
		"info":       map[string]any{"title": "Swagger 1.2 API declaration " + title, "version": version},
		"servers":    []any{map[string]any{"url": base}},
		"paths":      paths,
		"components": map[string]any{"schemas": schemas},
	}
	return out, nil
}

// swagger12BasePath is the path of the declaration's basePath, an
// absolute URL in 1.2 (the host is the example server's, not ours).
func swagger12BasePath(doc map[string]any) (string, error) {
	raw, _ := doc["basePath"].(string)
	u, err := url.Parse(raw)
	if err != nil || u.Path == "" {
		return "", fmt.Errorf("basePath %q has no path", raw)
	}
	return strings.TrimSuffix(u.Path, "/"), nil
}

type swagger12Converter struct {
	models map[string]any
}

func (c *swagger12Converter) model(id string) (map[string]any, error) {
	m, _ := c.models[id].(map[string]any)
	if m == nil {
		return nil, errors.New("not an object")
	}
	if declared, ok := m["id"].(string); ok && declared != id {
		return nil, fmt.Errorf("its id is %q", declared)
	}
	if m["subTypes"] != nil || m["discriminator"] != nil {
		return nil, errors.New("subTypes and discriminator are not supported")
	}
	out := map[string]any{"type": "object"}
	copyKeys(out, m, "description")
	props, _ := m["properties"].(map[string]any)
	converted := map[string]any{}
	for _, name := range sortedKeys(props) {
		p, _ := props[name].(map[string]any)
		s, err := c.dataType(p)
		if err != nil {
			return nil, fmt.Errorf("property %s: %w", name, err)
		}
		converted[name] = s
	}
	if len(converted) > 0 {
		out["properties"] = converted
	}
	if req, ok := m["required"].([]any); ok && len(req) > 0 {
		out["required"] = req
	}
	return out, nil
}

// dataType converts a 1.2 data type object (a property, parameter or
// items): type or $ref, format, enum, items, defaultValue, minimum and
// maximum. One with neither type nor $ref is any value.
func (c *swagger12Converter) dataType(d map[string]any) (map[string]any, error) {
	out := map[string]any{}
	name, _ := d["type"].(string)
	if ref, ok := d["$ref"].(string); ok {
		name = ref
	}
	switch {
	case name == "":
	case name == "array":
		items, _ := d["items"].(map[string]any)
		if items == nil {
			return nil, errors.New("an array needs items")
		}
		s, err := c.dataType(items)
		if err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
		out["type"], out["items"] = "array", s
		if d["uniqueItems"] == true {
			out["uniqueItems"] = true
		}
	case c.models[name] != nil:
		out["$ref"] = "#/components/schemas/" + name
	case swagger12Primitives[name] != nil:
		// A primitive is named by type, though documents also give one
		// as a $ref ({"$ref": "string"}).
		for k, v := range swagger12Primitives[name] {
			out[k] = v
		}
	default:
		return nil, fmt.Errorf("%q is neither a primitive nor a model of this declaration", name)
	}
	copyKeys(out, d, "description", "format", "enum")
	if v, ok := d["defaultValue"]; ok {
		out["default"] = typedDefault(v, out["type"])
	}
	for _, k := range []string{"minimum", "maximum"} {
		if v, ok := d[k].(string); ok {
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				out[k] = n
			}
		}
	}
	if _, isRef := out["$ref"]; isRef && len(out) > 1 {
		// A 3.0 $ref ignores its siblings: keep them with allOf.
		ref := out["$ref"]
		delete(out, "$ref")
		out["allOf"] = []any{map[string]any{"$ref": ref}}
	}
	return out, nil
}

// typedDefault turns a 1.2 defaultValue (a string) into its type.
func typedDefault(v any, typ any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	switch typ {
	case "integer":
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	case "number":
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return n
		}
	case "boolean":
		if b, err := strconv.ParseBool(s); err == nil {
			return b
		}
	}
	return s
}

func (c *swagger12Converter) operation(op map[string]any, consumes, produces string) (map[string]any, error) {
	nickname, _ := op["nickname"].(string)
	if nickname == "" {
		return nil, errors.New("a nickname is required (it becomes the operationId)")
	}
	out := map[string]any{"operationId": nickname}
	copyKeys(out, op, "summary")
	if notes, ok := op["notes"]; ok {
		out["description"] = notes
	}
	var params []any
	form := map[string]any{"type": "object", "properties": map[string]any{}}
	var formRequired []any
	params12, _ := op["parameters"].([]any)
	for i, p := range params12 {
		param, _ := p.(map[string]any)
		name, _ := param["name"].(string)
		schema, err := c.dataType(withoutKeys(param, "description"))
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", name, err)
		}
		required := param["required"] == true
		switch kind, _ := param["paramType"].(string); kind {
		case "path", "query", "header":
			if kind == "path" {
				required = true
			}
			if param["allowMultiple"] == true {
				schema = map[string]any{"type": "array", "items": schema}
			}
			p3 := map[string]any{"name": name, "in": kind, "required": required, "schema": schema}
			copyKeys(p3, param, "description")
			params = append(params, p3)
		case "body":
			if _, dup := out["requestBody"]; dup {
				return nil, fmt.Errorf("parameter %s: a second body", name)
			}
			body := map[string]any{"required": required, "content": map[string]any{consumes: map[string]any{"schema": schema}}}
			copyKeys(body, param, "description")
			out["requestBody"] = body
		case "form":
			if d, ok := param["description"]; ok {
				schema["description"] = d
			}
			form["properties"].(map[string]any)[name] = schema
			if required {
				formRequired = append(formRequired, name)
			}
		default:
			return nil, fmt.Errorf("parameters[%d] (%s): unknown paramType %q (path, query, header, body or form)", i, name, kind)
		}
	}
	if len(form["properties"].(map[string]any)) > 0 {
		if _, dup := out["requestBody"]; dup {
			return nil, errors.New("both a body and form parameters")
		}
		if len(formRequired) > 0 {
			form["required"] = formRequired
		}
		out["requestBody"] = map[string]any{"content": map[string]any{"application/x-www-form-urlencoded": map[string]any{"schema": form}}}
	}
	if len(params) > 0 {
		out["parameters"] = params
	}
	responses, err := c.responses(op, produces)
	if err != nil {
		return nil, err
	}
	out["responses"] = responses
	return out, nil
}

// responses are the operation's answers: its type for 200 (none for
// void), then each responseMessage with its responseModel, if any.
func (c *swagger12Converter) responses(op map[string]any, produces string) (map[string]any, error) {
	out := map[string]any{}
	typ, _ := op["type"].(string)
	ok := map[string]any{"description": "OK"}
	if s, _ := op["summary"].(string); s != "" {
		ok["description"] = s
	}
	if typ != "" && typ != "void" {
		schema, err := c.dataType(withoutKeys(op, "description", "enum", "defaultValue"))
		if err != nil {
			return nil, fmt.Errorf("type: %w", err)
		}
		ok["content"] = map[string]any{produces: map[string]any{"schema": schema}}
	}
	out["200"] = ok
	messages, _ := op["responseMessages"].([]any)
	for i, m := range messages {
		msg, _ := m.(map[string]any)
		code, isNumber := msg["code"].(float64)
		if !isNumber {
			if n, isInt := msg["code"].(int); isInt {
				code, isNumber = float64(n), true
			}
		}
		if !isNumber || code < 100 || code > 599 {
			return nil, fmt.Errorf("responseMessages[%d]: code %v is not an HTTP status", i, msg["code"])
		}
		key := strconv.Itoa(int(code))
		text, _ := msg["message"].(string)
		resp, _ := out[key].(map[string]any)
		if resp == nil {
			resp = map[string]any{"description": text}
			out[key] = resp
		} else if key != "200" {
			// Several messages share a status: list them all.
			resp["description"] = resp["description"].(string) + "; " + text
		}
		if model, ok := msg["responseModel"].(string); ok {
			schema, err := c.dataType(map[string]any{"type": model})
			if err != nil {
				return nil, fmt.Errorf("responseMessages[%d]: %w", i, err)
			}
			resp["content"] = map[string]any{produces: map[string]any{"schema": schema}}
		}
	}
	return out, nil
}

func copyKeys(dst, src map[string]any, keys ...string) {
	for _, k := range keys {
		if v, ok := src[k]; ok {
			dst[k] = v
		}
	}
}

func withoutKeys(m map[string]any, keys ...string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// firstString is the first entry of a list of strings, or def.
func firstString(v any, def string) string {
	if list, ok := v.([]any); ok && len(list) > 0 {
		if s, ok := list[0].(string); ok {
			return s
		}
	}
	return def
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
