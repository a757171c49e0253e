package impl_test

import (
	"io"
	"net/http"
	"registrar/impl/config"
	"testing"
)

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

// BenchmarkVersionsAccessLog is BenchmarkVersions with the access log on
// (the default), written as JSON: the log's cost per request.
func BenchmarkVersionsAccessLog(b *testing.B) {
	env := newEnv(b, func(c *config.Config) { c.AccessLog = true })
	env.logs = io.Discard
	env.open()
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

// BenchmarkRegisterFirstChallenge is the first POST /register of a flow
// without a password: validation, username lookup, the 401 (no write: the
// session is stored when a stage first completes or it keeps a password).
func BenchmarkRegisterFirstChallenge(b *testing.B) {
	env := newBenchEnv(b)
	body := `{"username":"alice","device_id":"ABC","initial_device_display_name":"x"}`
	benchRequest(b, env.server, "POST", "/_matrix/client/v3/register", body)
}

// BenchmarkRegisterFirstChallengeKeepingPassword is the first POST
// /register with a password: the 401 and the session stored with the
// password sealed (one write).
func BenchmarkRegisterFirstChallengeKeepingPassword(b *testing.B) {
	env := newEnv(b, func(c *config.Config) { c.UIAuth.MaxSessionsPerAddress = 0 })
	body := `{"username":"alice","password":"correct-horse-battery-staple-1","device_id":"ABC","initial_device_display_name":"x"}`
	benchRequest(b, env.server, "POST", "/_matrix/client/v3/register", body)
}

// BenchmarkWhoami is the cheapest authenticated call: it stands for the
// cost of authenticating any request (token cache warm).
func BenchmarkWhoami(b *testing.B) {
	env := newBenchEnv(b)
	token := env.register("bencher", "pw-bench-1").str("access_token")
	benchRequest(b, env.server, "GET", "/_matrix/client/v3/account/whoami", "", "Authorization", "Bearer "+token)
}

// BenchmarkLoginWrongPassword times a failed login to a known user and to
// an unknown one (bcrypt at cost 8): the two should take the same time
// (TestUnknownUserCostsWhatAWrongPasswordCosts asserts the same work).
func BenchmarkLoginWrongPassword(b *testing.B) {
	env := newEnv(b, func(c *config.Config) { c.PasswordConfig.Algorithm = "bcrypt"; c.BcryptRounds = 8 })
	env.register("known", "pw-known-1")
	for _, user := range []string{"known", "unknown"} {
		b.Run(user, func(b *testing.B) {
			benchRequest(b, env.server, "POST", "/_matrix/client/v3/login", loginBody(user, "wrong-password"))
		})
	}
}
