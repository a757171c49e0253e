package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

//go:embed static
var staticFS embed.FS

// The asset paths the pages load.
const (
	StaticPrefix = "/_registrar/static/"
	StylePath    = StaticPrefix + "registrar.css"
	ScriptPath   = StaticPrefix + "registrar.js"
	// LogoPath is the branding logo, fetched by registrar and served from
	// here.
	LogoPath = StaticPrefix + "logo"
)

// Branding is how the pages present the service (MAS's branding section,
// with a logo and a colour).
type Branding struct {
	// ServiceName names the service (the server name when empty).
	ServiceName string `yaml:"service_name"`
	// LogoURI is an http(s) image (fetched and served by registrar) or a
	// path of this site, shown in every page's header.
	LogoURI string `yaml:"logo_uri"`
	// PrimaryColor is a #rrggbb colour for links and buttons (adjusted
	// for contrast where it is too light or too dark).
	PrimaryColor string `yaml:"primary_color"`
	// PolicyURI, TOSURI: the privacy policy and terms, linked in every
	// footer; Imprint is a line of text (a company's name and address).
	PolicyURI string `yaml:"policy_uri"`
	TOSURI    string `yaml:"tos_uri"`
	Imprint   string `yaml:"imprint"`
}

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// Validate reports the problems of the branding, each naming its option.
func (b Branding) Validate() []string {
	var out []string
	if b.PrimaryColor != "" && !colorRE.MatchString(b.PrimaryColor) {
		out = append(out, fmt.Sprintf("branding.primary_color %q must be #rrggbb", b.PrimaryColor))
	}
	for name, u := range map[string]string{"logo_uri": b.LogoURI, "policy_uri": b.PolicyURI, "tos_uri": b.TOSURI} {
		if u != "" && !SafeRedirect(u) && (!strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//")) {
			out = append(out, fmt.Sprintf("branding.%s %q must be an http(s) URL or a path of this site", name, u))
		}
	}
	sort.Strings(out)
	return out
}

var (
	registeredMu sync.Mutex
	registered   []string
)

// Register adds page templates (each a {{define}}) to those every Site
// renders; packages call it when they initialise. It returns defs.
func Register(defs string) string {
	registeredMu.Lock()
	defer registeredMu.Unlock()
	registered = append(registered, defs)
	return defs
}

// Site renders the pages: the layout and every registered template, in
// each language, with an operator's replacements from a directory.
type Site struct {
	info   SiteInfo
	sets   map[string]*template.Template
	assets map[string]asset
	// LogoReady reports whether the branding logo can be served (nil:
	// always); a logo that cannot be fetched is left out.
	LogoReady func(ctx context.Context) bool
}

type asset struct {
	body []byte
	typ  string
}

// NewSite compiles the pages; customDir, when set, holds NAME.html files
// that replace the templates of those names (Synapse's
// custom_template_directory). A template that does not parse, or that
// replaces none, is an error naming its file.
func NewSite(b Branding, serverName, customDir string) (*Site, error) {
	if problems := b.Validate(); len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	s := &Site{sets: map[string]*template.Template{}, assets: map[string]asset{}}
	css, err := staticFS.ReadFile("static/registrar.css")
	if err != nil {
		return nil, err
	}
	js, err := staticFS.ReadFile("static/registrar.js")
	if err != nil {
		return nil, err
	}
	css = append(css, brandCSS(b.PrimaryColor)...)
	s.assets["registrar.css"] = asset{css, "text/css; charset=utf-8"}
	s.assets["registrar.js"] = asset{js, "text/javascript; charset=utf-8"}
	name := b.ServiceName
	if name == "" {
		name = serverName
	}
	s.info = SiteInfo{Name: name, ServerName: serverName, StyleURL: StylePath + "?v=" + version(css), ScriptURL: ScriptPath + "?v=" + version(js),
		PolicyURI: b.PolicyURI, TOSURI: b.TOSURI, Imprint: b.Imprint}
	switch {
	case strings.HasPrefix(b.LogoURI, "/"):
		s.info.LogoURL = b.LogoURI
	case b.LogoURI != "":
		s.info.LogoURL = LogoPath
	}
	if err := s.compile(customDir); err != nil {
		return nil, err
	}
	return s, nil
}

func version(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

func (s *Site) compile(customDir string) error {
	registeredMu.Lock()
	defs := strings.Join(registered, "\n")
	registeredMu.Unlock()
	overrides, err := readOverrides(customDir)
	if err != nil {
		return err
	}
	for _, tag := range Languages {
		lang := tag.String()
		set, err := template.New("").Funcs(funcs(lang)).Parse(layout)
		if err == nil {
			_, err = set.Parse(defs)
		}
		if err != nil {
			return fmt.Errorf("web: built-in templates: %w", err)
		}
		for _, o := range overrides {
			if set.Lookup(o.name) == nil {
				return fmt.Errorf("custom_template_directory: %s replaces no template (the templates are %s)", o.file, templateNames(set))
			}
			if _, err := set.New(o.name).Parse(o.text); err != nil {
				return fmt.Errorf("custom_template_directory: %s: %w", o.file, err)
			}
		}
		s.sets[lang] = set
	}
	return nil
}

type override struct{ file, name, text string }

func readOverrides(dir string) ([]override, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("custom_template_directory: %w", err)
	}
	var out []override
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".html" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("custom_template_directory: %w", err)
		}
		out = append(out, override{file: filepath.Join(dir, e.Name()), name: strings.TrimSuffix(e.Name(), ".html"), text: string(b)})
	}
	return out, nil
}

func templateNames(t *template.Template) string {
	var out []string
	for _, x := range t.Templates() {
		if n := x.Name(); n != "" && !strings.HasPrefix(n, "_") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// funcs are the templates' functions in lang: t translates.
func funcs(lang string) template.FuncMap {
	return template.FuncMap{"t": func(id string, data ...any) string { return T(lang, id, data...) }}
}

// Render executes template name in the language of ctx's page request,
// with the frame of v filled in.
func (s *Site) Render(ctx context.Context, name string, v Framed) ([]byte, error) {
	r := RequestOf(ctx)
	f := v.frame()
	f.Lang, f.Site = r.Lang, s.info
	if f.Site.LogoURL == LogoPath && s.LogoReady != nil && !s.LogoReady(ctx) {
		f.Site.LogoURL = ""
	}
	here := f.Here
	if here == "" {
		here = r.Here
	}
	f.Languages = LanguageLinks(here, r.Lang)
	set := s.sets[r.Lang]
	if set == nil {
		set = s.sets["en"]
	}
	var buf bytes.Buffer
	if err := set.ExecuteTemplate(&buf, name, v); err != nil {
		return nil, fmt.Errorf("rendering page %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// Name is the service's name: its branding, or the server name.
func (s *Site) Name() string { return s.info.Name }

// Asset is a static file of the pages (registrar.css, registrar.js) and
// its media type.
func (s *Site) Asset(name string) ([]byte, string, bool) {
	a, ok := s.assets[name]
	return a.body, a.typ, ok
}
