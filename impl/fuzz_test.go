package impl_test

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzRegister feeds /register arbitrary bodies: no panic, no 500, every
// error a Matrix error.
func FuzzRegister(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, false)
	}
	env := newEnv(f)
	f.Fuzz(func(t *testing.T, body string, guest bool) {
		path := registerURL
		if guest {
			path += "?kind=guest"
		}
		r := env.doQuiet("POST", path, body)
		checkMatrixResponse(t, body, r)
	})
}

// FuzzLogin feeds /login arbitrary bodies.
func FuzzLogin(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	env := newEnv(f)
	env.register("alice", "pw")
	f.Fuzz(func(t *testing.T, body string) {
		checkMatrixResponse(t, body, env.doQuiet("POST", loginURL, body))
	})
}

// FuzzQueryStrings sends every operation arbitrary query strings (and
// bodies), with and without an admin's token: each answer is what the
// operation declares (checkDeclaredResponse).
func FuzzQueryStrings(f *testing.F) {
	for i, q := range querySeeds {
		f.Add(uint(i), q, `{}`, i%2 == 0)
	}
	env := newEnv(f)
	token := env.adminToken("fuzzadmin")
	ops := specOperations(f)
	f.Fuzz(func(t *testing.T, which uint, query, body string, withToken bool) {
		op := ops[which%uint(len(ops))]
		var header []string
		if withToken {
			header = bearer(token)
		}
		target := op.path
		if query != "" {
			target += "?" + query
		}
		if _, err := url.ParseRequestURI(target); err != nil || strings.ContainsFunc(query, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' }) {
			return // not a request line a client can send
		}
		checkDeclaredResponse(t, op, op.method+" "+target, env.doQuiet(op.method, target, body, header...))
	})
}
