package web

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed locales/*.toml
var localeFS embed.FS

// Languages are the pages' languages, the first the fallback.
var Languages = []language.Tag{language.English, language.German, language.French}

// LanguageNames are the languages as their speakers name them.
var LanguageNames = map[string]string{"en": "English", "de": "Deutsch", "fr": "Français"}

var matcher = language.NewMatcher(Languages)

// PickLanguage is a request's language: the lang query parameter, then the
// language cookie, then Accept-Language; English when none is supported.
func PickLanguage(query, cookie, acceptLanguage string) string {
	for _, explicit := range []string{query, cookie} {
		if _, ok := LanguageNames[explicit]; ok {
			return explicit
		}
	}
	tag, _ := language.MatchStrings(matcher, acceptLanguage)
	base, _ := tag.Base()
	if _, ok := LanguageNames[base.String()]; ok {
		return base.String()
	}
	return "en"
}

// LanguageCookie is the cookie that keeps the language a person chose.
const LanguageCookie = "registrar_lang"

// Request is what a page needs of its request: its language, and for the
// language switcher the page's own address (GET pages only; a form's
// answer names its page in Frame.Here).
type Request struct {
	Lang string
	// Here is the path and query of a GET page, "" otherwise.
	Here string
}

type requestKey struct{}

// WithRequest returns ctx carrying a page request.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestOf is the page request ctx carries (English when none).
func RequestOf(ctx context.Context) Request {
	r, _ := ctx.Value(requestKey{}).(Request)
	if r.Lang == "" {
		r.Lang = "en"
	}
	return r
}

// Lang is the language of the page request ctx carries.
func Lang(ctx context.Context) string { return RequestOf(ctx).Lang }

var bundle = sync.OnceValue(func() *i18n.Bundle {
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	entries, err := fs.ReadDir(localeFS, "locales")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		if _, err := b.LoadMessageFileFS(localeFS, "locales/"+e.Name()); err != nil {
			panic(fmt.Sprintf("web: %s: %v", e.Name(), err))
		}
	}
	return b
})

var localizers = sync.OnceValue(func() map[string]*i18n.Localizer {
	out := map[string]*i18n.Localizer{}
	for _, tag := range Languages {
		out[tag.String()] = i18n.NewLocalizer(bundle(), tag.String(), "en")
	}
	return out
})

// MessageIDs lists the catalogue's message IDs in one language.
func MessageIDs(lang string) ([]string, error) {
	b, err := localeFS.ReadFile("locales/" + lang + ".toml")
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

var missing sync.Map

// Missing lists the message IDs asked for that no catalogue has (each
// shown as itself); a test asserts there are none.
func Missing() []string {
	var out []string
	missing.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	sort.Strings(out)
	return out
}

// T translates message id into lang, with data's pairs (name, value...)
// for its placeholders; a pair named Count also picks the plural form. A
// message missing in lang falls back to English; one missing everywhere
// shows its ID (and is listed by Missing).
func T(lang, id string, data ...any) string {
	loc := localizers()[lang]
	if loc == nil {
		loc = localizers()["en"]
	}
	cfg := &i18n.LocalizeConfig{MessageID: id}
	if len(data) > 0 {
		td := map[string]any{}
		for i := 0; i+1 < len(data); i += 2 {
			name := fmt.Sprint(data[i])
			td[name] = data[i+1]
			if name == "Count" {
				cfg.PluralCount = data[i+1]
			}
		}
		cfg.TemplateData = td
	}
	out, err := loc.Localize(cfg)
	if err != nil && out == "" {
		missing.Store(id, true)
		return id
	}
	return out
}

// Ago says how long ago then was, as of now, in lang ("5 minutes ago").
func Ago(lang string, then, now time.Time) string {
	d := now.Sub(then)
	switch {
	case d < time.Minute:
		return T(lang, "time_just_now")
	case d < time.Hour:
		return T(lang, "time_minutes_ago", "Count", int(d/time.Minute))
	case d < 24*time.Hour:
		return T(lang, "time_hours_ago", "Count", int(d/time.Hour))
	case d < 60*24*time.Hour:
		return T(lang, "time_days_ago", "Count", int(d/(24*time.Hour)))
	}
	return T(lang, "time_months_ago", "Count", int(d/(30*24*time.Hour)))
}

// FormatTime is an exact time in lang, in UTC.
func FormatTime(lang string, t time.Time) string {
	layouts := map[string]string{"en": "2 January 2006, 15:04 MST", "de": "2.1.2006, 15:04 MST", "fr": "2/1/2006 15:04 MST"}
	layout, ok := layouts[lang]
	if !ok {
		layout = layouts["en"]
	}
	return t.UTC().Format(layout)
}

// LanguageLink is an entry of the language switcher.
type LanguageLink struct {
	Code, Name, URL string
	Current         bool
}

// LanguageLinks are the switcher's links: the page at here (a path and
// query) in each language.
func LanguageLinks(here, current string) []LanguageLink {
	if here == "" {
		return nil
	}
	path, rawQuery, _ := strings.Cut(here, "?")
	q, _ := url.ParseQuery(rawQuery)
	var out []LanguageLink
	for _, tag := range Languages {
		code := tag.String()
		q.Set("lang", code)
		out = append(out, LanguageLink{Code: code, Name: LanguageNames[code], URL: path + "?" + q.Encode(), Current: code == current})
	}
	return out
}
