package impl_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
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
