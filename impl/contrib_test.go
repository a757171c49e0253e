package impl_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// promtool returns promtool's path; it skips the test when promtool is
// missing, except in CI, which installs it.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is required in CI (Debian package prometheus)")
		}
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	return path
}

// servedFamilies are the metric families a server serves once it has
// run the scripted sequence and failed a UIA stage.
func servedFamilies(t *testing.T) (map[string]bool, string) {
	t.Helper()
	sink := newSMTPSink(t)
	env := scriptedEnv(t, sink)
	scriptedSequence(t, env, sink)
	token := env.register("erin", "erin's password").expect(t, 200, "").str("access_token")
	env.do("POST", "/_matrix/client/v3/account/password", jsonBody(map[string]any{"new_password": "x",
		"auth": passwordAuth("erin", "not erin's password", "")}), bearer(token)...).expect(t, 401, "M_FORBIDDEN")
	_, raw := env.scrape()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for name := range families {
		names[name] = true
	}
	return names, raw
}

var metricRef = regexp.MustCompile(`\bregistrar_[a-z0-9_]+`)

// TestContribReferencesServedMetrics keeps the Grafana dashboard and the
// alert rules in step with the metrics: every registrar_ series they
// query is one the server serves.
func TestContribReferencesServedMetrics(t *testing.T) {
	served, _ := servedFamilies(t)
	var dashboard struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	raw, err := os.ReadFile("../contrib/grafana/registrar.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	exprs := map[string]string{}
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			exprs["dashboard panel "+p.Title] += target.Expr + "\n"
		}
	}
	if len(exprs) < 8 {
		t.Fatalf("the dashboard has %d panels with queries", len(exprs))
	}
	alerts, err := os.ReadFile("../contrib/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	exprs["alerts.yaml"] = string(alerts)
	for where, expr := range exprs {
		for _, ref := range metricRef.FindAllString(expr, -1) {
			family := ref
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(ref, suffix); ok && served[base] {
					family = base
				}
			}
			if !served[family] {
				t.Errorf("%s queries %s, which the server does not serve", where, ref)
			}
		}
	}
}

func TestPromtoolAcceptsTheMetricsAndTheRules(t *testing.T) {
	tool := promtool(t)
	_, raw := servedFamilies(t)
	check := exec.Command(tool, "check", "metrics")
	check.Stdin = strings.NewReader(raw)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if out, err := exec.Command(tool, "check", "rules", "../contrib/prometheus/alerts.yaml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := exec.Command(tool, "test", "rules", "../contrib/prometheus/alerts_test.yaml").CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

// proxyRequests are requests and where the reverse proxy must send them
// when registrar authenticates for Synapse.
var proxyRequests = []struct {
	method, path string
	registrar    bool
}{
	{"POST", "/_matrix/client/v3/login", true},
	{"GET", "/_matrix/client/r0/login", true},
	{"POST", "/_matrix/client/v1/login/get_token", true},
	{"POST", "/_matrix/client/v3/logout/all", true},
	{"POST", "/_matrix/client/v3/refresh", true},
	{"POST", "/_matrix/client/v3/register", true},
	{"GET", "/_matrix/client/v3/register/available", true},
	{"POST", "/_matrix/client/v3/register/email/requestToken", true},
	{"GET", "/_matrix/client/v1/register/m.login.registration_token/validity", true},
	{"POST", "/_matrix/client/v3/account/password", true},
	{"POST", "/_matrix/client/v3/account/deactivate", true},
	{"GET", "/_matrix/client/v3/account/3pid", true},
	{"POST", "/_matrix/client/v3/account/3pid/add", true},
	{"POST", "/_matrix/client/v3/delete_devices", true},
	{"DELETE", "/_matrix/client/v3/devices/ABCDEF", true},
	{"GET", "/_matrix/client/v3/devices/ABCDEF", false},
	{"PUT", "/_matrix/client/v3/devices/ABCDEF", false},
	{"GET", "/_matrix/client/v3/devices", false},
	{"GET", "/_matrix/client/v3/auth/m.login.password/fallback/web", true},
	{"GET", "/_matrix/client/v1/auth_metadata", true},
	{"GET", "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata", true},
	{"PUT", "/_matrix/client/v1/admin/lock/@a:example.org", true},
	{"GET", "/_registrar/account", true},
	{"POST", "/oauth2/introspect", true},
	{"GET", "/.well-known/openid-configuration", true},
	{"GET", "/.well-known/matrix/client", true},
	{"POST", "/_synapse/admin/v1/reset_password/@a:example.org", true},
	{"POST", "/_synapse/admin/v1/register", true},
	{"GET", "/_synapse/admin/v1/registration_tokens", true},
	{"POST", "/_synapse/admin/v1/users/@a:example.org/login", true},
	{"PUT", "/_synapse/admin/v1/users/@a:example.org/admin", true},
	{"GET", "/_synapse/admin/v2/users/@a:example.org", false},
	{"GET", "/_matrix/client/v3/account/whoami", false},
	{"GET", "/_matrix/client/v3/sync", false},
	{"POST", "/_matrix/client/v3/createRoom", false},
	{"GET", "/_matrix/client/versions", false},
	{"GET", "/_matrix/client/v3/capabilities", false},
	{"GET", "/_matrix/client/v3/profile/@a:example.org", false},
}

// TestReverseProxiesRouteAlike reads the routes of contrib/nginx and
// contrib/caddy and checks each sends every request above where it must;
// the configurations themselves are checked by nginx -t and caddy
// validate when those are installed (CI installs both). The end-to-end
// test in cmd/registrar runs the real nginx with its file.
func TestReverseProxiesRouteAlike(t *testing.T) {
	nginx, err := os.ReadFile("../contrib/nginx/registrar.conf")
	if err != nil {
		t.Fatal(err)
	}
	caddy, err := os.ReadFile("../contrib/caddy/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	nginxRoute := nginxRouter(t, string(nginx))
	caddyRoute := caddyRouter(t, string(caddy))
	for _, r := range proxyRequests {
		if got := nginxRoute(r.method, r.path); got != r.registrar {
			t.Errorf("nginx sends %s %s to registrar: %v, want %v", r.method, r.path, got, r.registrar)
		}
		if got := caddyRoute(r.method, r.path); got != r.registrar {
			t.Errorf("caddy sends %s %s to registrar: %v, want %v", r.method, r.path, got, r.registrar)
		}
	}
	if path, err := exec.LookPath("caddy"); err == nil {
		if out, err := exec.Command(path, "validate", "--config", "../contrib/caddy/Caddyfile", "--adapter", "caddyfile").CombinedOutput(); err != nil {
			t.Errorf("caddy validate: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Error("caddy is required in CI (Debian package caddy)")
	}
}

// nginxRouter interprets the file's locations as nginx does for these
// paths: an exact match, else the first matching regular expression, else
// the longest prefix; proxy_pass to registrar, or through the map to
// registrar for DELETE.
func nginxRouter(t *testing.T, conf string) func(method, path string) bool {
	locRE := regexp.MustCompile(`(?m)^\s*location\s+(=|~)?\s*(\S+)\s*\{\s*\n\s*proxy_pass http://(\$?\w+);`)
	type loc struct {
		kind, pattern, upstream string
		re                      *regexp.Regexp
	}
	var locs []loc
	for _, m := range locRE.FindAllStringSubmatch(conf, -1) {
		l := loc{kind: m[1], pattern: m[2], upstream: m[3]}
		if l.kind == "~" {
			l.re = regexp.MustCompile(l.pattern)
		}
		locs = append(locs, l)
	}
	if len(locs) < 10 {
		t.Fatalf("only %d locations found in the nginx file", len(locs))
	}
	to := func(upstream, method string) bool {
		if upstream == "$device_upstream" {
			return method == "DELETE"
		}
		return upstream == "registrar"
	}
	return func(method, path string) bool {
		for _, l := range locs {
			if l.kind == "=" && l.pattern == path {
				return to(l.upstream, method)
			}
		}
		for _, l := range locs {
			if l.re != nil && l.re.MatchString(path) {
				return to(l.upstream, method)
			}
		}
		best := loc{}
		for _, l := range locs {
			if l.kind == "" && strings.HasPrefix(path, l.pattern) && len(l.pattern) > len(best.pattern) {
				best = l
			}
		}
		return to(best.upstream, method)
	}
}

// caddyRouter interprets the Caddyfile's named matchers and handle
// blocks: the first handle whose matcher matches (a path_regexp, a path
// list with * globs, a method) decides; the last, unnamed one is
// Synapse.
func caddyRouter(t *testing.T, conf string) func(method, path string) bool {
	type matcher struct {
		methods []string
		regexps []*regexp.Regexp
		paths   []string
	}
	matchers := map[string]*matcher{}
	current := ""
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if strings.HasPrefix(f[0], "@") {
			current = f[0]
			matchers[current] = &matcher{}
			f = f[1:]
			if len(f) > 0 && f[0] == "{" {
				continue
			}
		}
		if current == "" || len(f) == 0 {
			continue
		}
		m := matchers[current]
		switch f[0] {
		case "path_regexp":
			m.regexps = append(m.regexps, regexp.MustCompile(f[len(f)-1]))
		case "path":
			m.paths = append(m.paths, f[1:]...)
		case "method":
			m.methods = append(m.methods, f[1:]...)
		case "}":
			current = ""
			continue
		}
		if !strings.HasSuffix(line, "{") && strings.HasPrefix(strings.TrimSpace(line), "@") {
			current = ""
		}
	}
	handleRE := regexp.MustCompile(`(?m)^\s*handle (@\w+) \{\s*\n\s*reverse_proxy 127\.0\.0\.1:8008`)
	var toRegistrar []string
	for _, m := range handleRE.FindAllStringSubmatch(conf, -1) {
		toRegistrar = append(toRegistrar, m[1])
	}
	if len(toRegistrar) < 5 {
		t.Fatalf("only %d handle blocks to registrar found in the Caddyfile", len(toRegistrar))
	}
	matches := func(m *matcher, method, path string) bool {
		if len(m.methods) > 0 && !slices.Contains(m.methods, method) {
			return false
		}
		for _, re := range m.regexps {
			if re.MatchString(path) {
				return true
			}
		}
		for _, p := range m.paths {
			if p == path || strings.HasSuffix(p, "*") && strings.HasPrefix(path, strings.TrimSuffix(p, "*")) {
				return true
			}
		}
		return false
	}
	return func(method, path string) bool {
		for _, name := range toRegistrar {
			m := matchers[name]
			if m == nil {
				t.Fatalf("handle %s has no matcher", name)
			}
			if matches(m, method, path) {
				return true
			}
		}
		return false
	}
}
