package web

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

var placeholderRE = regexp.MustCompile(`\{\{\.[A-Za-z]+\}\}`)

// placeholders are a message's placeholders, sorted, per plural form.
func placeholders(v any) map[string]string {
	out := map[string]string{}
	switch m := v.(type) {
	case string:
		ph := placeholderRE.FindAllString(m, -1)
		sort.Strings(ph)
		out[""] = strings.Join(ph, ",")
	case map[string]any:
		for form, text := range m {
			ph := placeholderRE.FindAllString(text.(string), -1)
			sort.Strings(ph)
			out[form] = strings.Join(ph, ",")
		}
	}
	return out
}

// TestEveryMessageInEveryLanguage: each language's catalogue has every key
// of every other, with the same placeholders and plural forms, and no
// empty message.
func TestEveryMessageInEveryLanguage(t *testing.T) {
	catalogues := map[string]map[string]any{}
	for _, tag := range Languages {
		b, err := os.ReadFile("locales/" + tag.String() + ".toml")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := toml.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		catalogues[tag.String()] = m
	}
	en := catalogues["en"]
	for lang, m := range catalogues {
		for key, v := range en {
			other, ok := m[key]
			if !ok {
				t.Errorf("%s lacks %s", lang, key)
				continue
			}
			want, got := placeholders(v), placeholders(other)
			if len(want) != len(got) {
				t.Errorf("%s %s: plural forms %v, English has %v", lang, key, got, want)
			}
			for form, ph := range want {
				if got[form] != ph {
					t.Errorf("%s %s%s: placeholders %q, English has %q", lang, key, form, got[form], ph)
				}
			}
			if s, ok := other.(string); ok && strings.TrimSpace(s) == "" {
				t.Errorf("%s %s is empty", lang, key)
			}
		}
		for key := range m {
			if _, ok := en[key]; !ok {
				t.Errorf("%s has %s, which English does not", lang, key)
			}
		}
	}
	for _, tag := range Languages {
		ids, err := MessageIDs(tag.String())
		if err != nil || len(ids) != len(en) {
			t.Errorf("%s: %d IDs (%v), want %d", tag, len(ids), err, len(en))
		}
	}
}

func TestTranslationAndPlurals(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		lang string
		ago  time.Duration
		want string
	}{
		{"en", 30 * time.Second, "just now"}, {"en", time.Minute, "1 minute ago"}, {"en", 5 * time.Minute, "5 minutes ago"},
		{"de", 3 * time.Hour, "vor 3 Stunden"}, {"fr", 2 * 24 * time.Hour, "il y a 2 jours"}, {"de", 24 * time.Hour, "vor 1 Tag"},
		{"xx", time.Hour, "1 hour ago"},
	} {
		if got := Ago(tc.lang, now.Add(-tc.ago), now); got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.lang, tc.ago, got, tc.want)
		}
	}
	if got := T("de", "signin_intro", "Server", "example.org"); got != "Melde dich mit deinem Konto auf example.org an." {
		t.Errorf("placeholder: %q", got)
	}
	if got := T("fr", "no_such_message"); got != "no_such_message" || !strings.Contains(strings.Join(Missing(), ","), "no_such_message") {
		t.Errorf("a missing message shows %q and is listed in %v", got, Missing())
	}
}

func TestPickLanguage(t *testing.T) {
	for _, tc := range []struct{ query, cookie, header, want string }{
		{"", "", "", "en"}, {"", "", "de-AT,de;q=0.9,en;q=0.5", "de"}, {"", "", "fr-CA", "fr"}, {"", "", "ja, zh;q=0.8", "en"},
		{"", "fr", "de", "fr"}, {"de", "fr", "en", "de"}, {"xx", "zz", "fr", "fr"},
	} {
		if got := PickLanguage(tc.query, tc.cookie, tc.header); got != tc.want {
			t.Errorf("%+v: %s", tc, got)
		}
	}
}

// TestBrandColourKeepsContrast: whatever colour the operator picks, text
// and buttons in it reach WCAG AA contrast on light and dark surfaces.
func TestBrandColourKeepsContrast(t *testing.T) {
	light := regexp.MustCompile(`^\n:root \{ --primary: (#[0-9a-f]{6}); --on-primary: #ffffff; \}`)
	dark := regexp.MustCompile(`prefers-color-scheme: dark\) \{ :root \{ --primary: (#[0-9a-f]{6}); --on-primary: (#[0-9a-f]{6})`)
	for _, colour := range []string{"#ffcc00", "#000000", "#ffffff", "#0b6b50", "#7b2cbf", "#ff0000", "#00ff00", "#1a1a2e"} {
		css := brandCSS(colour)
		l, d := light.FindStringSubmatch(css), dark.FindStringSubmatch(css)
		if l == nil || d == nil {
			t.Fatalf("%s: %q", colour, css)
		}
		lc, _ := parseHex(l[1])
		dc, _ := parseHex(d[1])
		on, _ := parseHex(d[2])
		if c := contrast(lc, white); c < 4.5 {
			t.Errorf("%s on light: %s has contrast %.2f", colour, l[1], c)
		}
		if c := contrast(dc, darkSurface); c < 4.5 {
			t.Errorf("%s on dark: %s has contrast %.2f", colour, d[1], c)
		}
		if c := contrast(dc, on); c < 4.5 {
			t.Errorf("%s dark button text: contrast %.2f", colour, c)
		}
	}
	if brandCSS("") != "" || brandCSS("red") != "" {
		t.Error("no colour, no override")
	}
}

func TestAgentNames(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0":                                                "Firefox on Linux",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15": "Safari on macOS",
		"Element X/1.9.4 (iPhone; iOS 18.1; Scale/3.00)":                                                                        "Element X on iOS",
		"Element/1.11.85 (Linux; Android 14; Pixel 8)":                                                                          "Element on Android",
		"mautrix-go/v0.22.0": "mautrix-go",
		"":                   "",
	} {
		if got := ParseAgent(ua).Name("en"); got != want {
			t.Errorf("%q: %q, want %q", ua, got, want)
		}
	}
}
