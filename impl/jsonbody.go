package impl

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
)

// validJSONText reports whether a JSON body is valid UTF-8 with no lone
// surrogate escaped in a string (\ud800 without its pair, which Go would
// silently turn into U+FFFD); overlong forms are invalid UTF-8.
func validJSONText(body []byte) bool {
	if !utf8.Valid(body) {
		return false
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		i++
		if i >= len(body) || body[i] != 'u' {
			continue // an escape of one character (\\, \", \n...)
		}
		r, ok := hex4(body, i+1)
		if !ok {
			return false
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return false // a low surrogate without its high one
		case r >= 0xD800 && r <= 0xDBFF:
			if i+6 >= len(body) || body[i+1] != '\\' || body[i+2] != 'u' {
				return false
			}
			low, ok := hex4(body, i+3)
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	return r, true
}

// nullsAsAbsent removes, at every level, the properties a body sets to
// null that its schema marks optional and not nullable: clients send
// null for "not given" (matrix-js-sdk's "auth": null), and the spec's
// optional means the same. A null for a required or nullable property
// stays, for validation to judge. A body without "null" is returned as is.
func nullsAsAbsent(body []byte, schema *openapi3.Schema) []byte {
	if schema == nil || !bytes.Contains(body, []byte("null")) {
		return body
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return body // not JSON: validation says so
	}
	if !stripNulls(v, schema) {
		return body
	}
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

// stripNulls removes optional nulls from v in place; it reports whether
// it removed any.
func stripNulls(v any, schema *openapi3.Schema) bool {
	changed := false
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			prop, required := property(schema, k)
			if val == nil {
				if !required && (prop == nil || !prop.Nullable) {
					delete(v, k)
					changed = true
				}
				continue
			}
			if prop != nil && stripNulls(val, prop) {
				changed = true
			}
		}
	case []any:
		if schema.Items != nil && schema.Items.Value != nil {
			for _, item := range v {
				if stripNulls(item, schema.Items.Value) {
					changed = true
				}
			}
		}
	}
	return changed
}

// property finds name's schema in schema or the members of its allOf, and
// whether one of them requires it.
func property(schema *openapi3.Schema, name string) (*openapi3.Schema, bool) {
	var found *openapi3.Schema
	required := false
	for _, r := range schema.Required {
		if r == name {
			required = true
		}
	}
	if p := schema.Properties[name]; p != nil && p.Value != nil {
		found = p.Value
	}
	for _, member := range schema.AllOf {
		if member.Value == nil {
			continue
		}
		p, req := property(member.Value, name)
		if found == nil {
			found = p
		}
		required = required || req
	}
	return found, required
}
