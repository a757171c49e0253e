package upstream

import (
	"fmt"
	"regexp"
	"strings"
	"text/template"
)

// Synapse's mapping templates are Jinja2: {{ user.claim }}, with filters
// ({{ user.given_name | lower }}). registrar reads that subset, the one
// Synapse's documentation uses, into Go templates; anything else in a
// template is refused when the server starts.

var (
	jinjaBlockRE = regexp.MustCompile(`\{\{(.*?)\}\}`)
	claimPathRE  = regexp.MustCompile(`^user((?:\.[A-Za-z_][A-Za-z0-9_]*)+)$`)
)

// filters are the Jinja filters the mapping templates may use.
var filters = template.FuncMap{
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"trim":  strings.TrimSpace,
	// localpart_from_email is Synapse's: what comes before the @.
	"localpart_from_email": func(s string) string {
		local, _, _ := strings.Cut(s, "@")
		return local
	},
}

// compileMapping turns a Synapse mapping template into a Go template over
// the claims (a map); "" compiles to nil.
func compileMapping(name, jinja string) (*template.Template, error) {
	if strings.TrimSpace(jinja) == "" {
		return nil, nil
	}
	var convErr error
	goText := jinjaBlockRE.ReplaceAllStringFunc(jinja, func(block string) string {
		inner := strings.TrimSpace(block[2 : len(block)-2])
		parts := strings.Split(inner, "|")
		path := claimPathRE.FindStringSubmatch(strings.TrimSpace(parts[0]))
		if path == nil {
			convErr = fmt.Errorf("%s: %q: only {{ user.claim }} with filters is supported", name, block)
			return block
		}
		out := fmt.Sprintf("{{ claim %q", strings.TrimPrefix(path[1], "."))
		for _, f := range parts[1:] {
			f = strings.TrimSpace(f)
			if _, ok := filters[f]; !ok {
				convErr = fmt.Errorf("%s: %q: unknown filter %q (lower, upper, trim, localpart_from_email)", name, block, f)
				return block
			}
			out += " | " + f
		}
		return out + " }}"
	})
	if convErr != nil {
		return nil, convErr
	}
	if strings.Contains(strings.ReplaceAll(goText, "{{ claim", ""), "{{") || strings.Contains(goText, "{%") {
		return nil, fmt.Errorf("%s: %q: only {{ user.claim }} with filters is supported", name, jinja)
	}
	funcs := template.FuncMap{"claim": func(string) string { return "" }}
	for k, v := range filters {
		funcs[k] = v
	}
	return template.New(name).Funcs(funcs).Option("missingkey=zero").Parse(goText)
}

// render executes a mapping template over claims; a missing claim is "".
func render(t *template.Template, claims map[string]any) (string, error) {
	if t == nil {
		return "", nil
	}
	clone, err := t.Clone()
	if err != nil {
		return "", err
	}
	clone.Funcs(template.FuncMap{"claim": func(path string) string { return claimString(claims, path) }})
	var b strings.Builder
	if err := clone.Execute(&b, nil); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// claimValue follows a dotted path into the claims.
func claimValue(claims map[string]any, path string) (any, bool) {
	var cur any = claims
	for _, key := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[key]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// claimString is a claim as text: a string, a number as written, a
// boolean; "" for anything else or nothing.
func claimString(claims map[string]any, path string) string {
	v, ok := claimValue(claims, path)
	if !ok {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case fmt.Stringer:
		return x.String()
	case bool, float64, int64:
		return fmt.Sprint(x)
	}
	return ""
}
