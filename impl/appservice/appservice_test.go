package appservice

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "as.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNamespacesAndIndex(t *testing.T) {
	f := write(t, "id: bridge\nas_token: at\nhs_token: ht\nsender_localpart: bot\nnamespaces:\n  users:\n    - regex: '@irc_.*:x'\n      exclusive: true\n    - regex: '@shared_.*:x'\n")
	services, err := Load([]string{f})
	if err != nil {
		t.Fatal(err)
	}
	idx := NewIndex(services)
	as := idx.ByToken("at")
	if as == nil || idx.ByToken("other") != nil || !idx.Any() {
		t.Fatal("index by token")
	}
	for user, want := range map[string][2]bool{
		"@irc_alice:x": {true, true}, "@shared_bob:x": {true, false}, "@bot:x": {true, false}, "@x@irc_a:x": {false, false},
	} {
		if as.Interested(user, "@bot:x") != want[0] || as.Exclusive(user) != want[1] {
			t.Errorf("%s: interested %v exclusive %v", user, as.Interested(user, "@bot:x"), as.Exclusive(user))
		}
	}
	if idx.ExclusiveOwner("@irc_z:x") != as || idx.ExclusiveOwner("@shared_z:x") != nil {
		t.Error("exclusive owner")
	}
}

func TestLoadRefusals(t *testing.T) {
	ok := "id: a\nas_token: t1\nhs_token: h\nsender_localpart: s\n"
	for name, tc := range map[string]struct {
		files []string
		want  string
	}{
		"missing fields":  {[]string{write(t, "id: a\n")}, "are required"},
		"shared id":       {[]string{write(t, ok), write(t, strings.Replace(ok, "t1", "t2", 1))}, "share the id"},
		"shared as_token": {[]string{write(t, ok), write(t, strings.Replace(ok, "id: a", "id: b", 1))}, "share an as_token"},
		"bad regex":       {[]string{write(t, ok+"namespaces:\n  users:\n    - regex: '('\n")}, "not a valid regular expression"},
		"not yaml":        {[]string{write(t, "id: [")}, "as.yaml"},
	} {
		if _, err := Load(tc.files); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
