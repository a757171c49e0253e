package impl_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchRequest drives one request through the handler as net/http would
// hand it over (body without GetBody, Content-Length set).
func benchRequest(b *testing.B, h http.Handler, method, target, body string, header ...string) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		var req *http.Request
		if body != "" {
			req = httptest.NewRequest(method, target, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		} else {
			req = httptest.NewRequest(method, target, nil)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			b.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
	}
}

// BenchmarkBareHTTP is the baseline: a plain net/http handler writing a
// small JSON object, through the same harness.
func BenchmarkBareHTTP(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"versions":["v1.7"]}`))
	})
	benchRequest(b, h, "GET", "/_matrix/client/versions", "")
}

// BenchmarkVersions is the cheapest validated GET through the full stack.
func BenchmarkVersions(b *testing.B) {
	env := newBenchEnv(b)
	benchRequest(b, env.server, "GET", "/_matrix/client/versions", "")
}

// BenchmarkAvailable is a validated GET with a query parameter and one
// indexed lookup.
func BenchmarkAvailable(b *testing.B) {
	env := newBenchEnv(b)
	benchRequest(b, env.server, "GET", "/_matrix/client/v3/register/available?username=alice", "")
}

// BenchmarkRegisterRejected is a validated 148-byte POST refused by the
// username rules before any write.
func BenchmarkRegisterRejected(b *testing.B) {
	env := newBenchEnv(b)
	body := `{"username":"_alice","password":"correct-horse-battery-staple-1","auth":{"type":"m.login.dummy"},"device_id":"ABC","initial_device_display_name":"x"}`
	benchRequest(b, env.server, "POST", "/_matrix/client/v3/register", body)
}

// BenchmarkRegisterFirstChallenge is the first POST /register of a flow:
// validation, username lookup, one small session insert, the 401.
func BenchmarkRegisterFirstChallenge(b *testing.B) {
	env := newBenchEnv(b)
	body := `{"username":"alice","password":"correct-horse-battery-staple-1","device_id":"ABC","initial_device_display_name":"x"}`
	benchRequest(b, env.server, "POST", "/_matrix/client/v3/register", body)
}

func newBenchEnv(b *testing.B) *testEnv { return newEnv(b) }

// BenchmarkWhoami is the cheapest authenticated call: it stands for the
// cost of authenticating any request (token cache warm).
func BenchmarkWhoami(b *testing.B) {
	env := newBenchEnv(b)
	token := env.register("bencher", "pw-bench-1").str("access_token")
	benchRequest(b, env.server, "GET", "/_matrix/client/v3/account/whoami", "", "Authorization", "Bearer "+token)
}
