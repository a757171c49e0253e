package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"registrar/impl/config"
	"strings"
	"testing"
)

// get answers GET url's status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// serveWithConfig runs serve with a config file holding yaml.
func serveWithConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registrar.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServe(t, map[string]string{"REGISTRAR_CONFIG": path})
}

func TestMetricsAreServedOnlyOnTheMetricsListener(t *testing.T) {
	for _, pprofOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("enable_pprof=%v", pprofOn), func(t *testing.T) {
			port := freePort(t)
			client := "http://" + serveWithConfig(t, fmt.Sprintf(`
server_name: example.org
enable_metrics: true
enable_pprof: %v
listeners:
  - {port: 8008, type: http, resources: [{names: [client, federation]}]}
  - {port: %d, bind_addresses: ['127.0.0.1'], type: metrics}
`, pprofOn, port))
			metrics := fmt.Sprintf("http://127.0.0.1:%d", port)
			for _, path := range []string{"/metrics", "/_synapse/metrics", "/debug/pprof/", "/_matrix/client/v3/metrics"} {
				if code, body := get(t, client+path); code != 404 || !strings.Contains(body, `"M_UNRECOGNIZED"`) {
					t.Errorf("client listener %s: %d %.200s", path, code, body)
				}
			}
			for _, path := range []string{"/metrics", "/_synapse/metrics"} {
				if code, body := get(t, metrics+path); code != 200 || !strings.Contains(body, "registrar_build_info{") ||
					!strings.Contains(body, "registrar_go_sql_open_connections") {
					t.Errorf("metrics listener %s: %d %.200s", path, code, body)
				}
			}
			if code, _ := get(t, metrics+"/_matrix/client/versions"); code != 404 {
				t.Errorf("the metrics listener serves the client API: %d", code)
			}
			want := 404
			if pprofOn {
				want = 200
			}
			if code, _ := get(t, metrics+"/debug/pprof/"); code != want {
				t.Errorf("/debug/pprof/ on the metrics listener: %d, want %d", code, want)
			}
			if code, body := get(t, client+"/health"); code != 200 || body != "OK" {
				t.Errorf("/health: %d %q", code, body)
			}
		})
	}
}

func TestAMetricsResourceServesSynapsesPathOnTheClientListener(t *testing.T) {
	client := "http://" + serveWithConfig(t, `
server_name: example.org
enable_metrics: true
listeners:
  - {port: 8008, type: http, resources: [{names: [client, metrics]}]}
`)
	if code, body := get(t, client+"/_synapse/metrics"); code != 200 || !strings.Contains(body, "registrar_build_info{") {
		t.Errorf("/_synapse/metrics: %d %.200s", code, body)
	}
	if code, _ := get(t, client+"/metrics"); code != 404 {
		t.Errorf("/metrics: %d", code)
	}
	if code, _ := get(t, client+"/_matrix/client/versions"); code != 200 {
		t.Errorf("/versions: %d", code)
	}
}

func TestMetricsAreOffByDefault(t *testing.T) {
	client := "http://" + startServe(t, map[string]string{})
	for _, path := range []string{"/metrics", "/_synapse/metrics", "/debug/pprof/"} {
		if code, _ := get(t, client+path); code != 404 {
			t.Errorf("%s: %d", path, code)
		}
	}
}

func TestLogFormatFromTheEnvironment(t *testing.T) {
	for format, want := range map[string]string{"text": "level=INFO msg=hello", "json": `"level":"INFO","msg":"hello"`} {
		cfg, err := config.Load("", envFrom(map[string]string{"REGISTRAR_LOG_FORMAT": format, "REGISTRAR_DATA_DIRECTORY": t.TempDir()}))
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		log, _ := newLogger(cfg, &out)
		log.Info("hello")
		if !strings.Contains(out.String(), want) {
			t.Errorf("log_format %s: %q", format, out.String())
		}
	}
}
