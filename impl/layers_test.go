package impl_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// layers is the import order inside impl/: a package may import only
// packages of lower layers (and leaves only leaves). The README's
// "Architecture" section draws the same picture.
var layers = map[string]int{
	"matrix": 0, "secrets": 0, "passwords": 0, "ratelimit": 0, "tokencache": 0, "appservice": 0, "web": 0, "canonical": 0,
	"devices": 0, "seen": 0, "metrics": 0, "logging": 0, "homeserver": 0, "images": 0,
	"uia":      1,
	"config":   2,
	"accounts": 3, "threepid": 3, "regtokens": 3, "upstream": 3, "ldapauth": 3, "factors": 3,
	"useradmin": 4, "oauth": 4, "synapseimport": 4, "testkit": 5,
}

func TestImportsFlowOneWay(t *testing.T) {
	dirs, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, d := range dirs {
		if !d.IsDir() || d.Name() == "testdata" {
			continue
		}
		layer, ok := layers[d.Name()]
		if !ok {
			t.Errorf("impl/%s has no layer: add it to layers and to the README's Architecture", d.Name())
			continue
		}
		seen++
		files, _ := filepath.Glob(filepath.Join(d.Name(), "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if path == "registrar/impl" {
					t.Errorf("%s imports the handlers", f)
					continue
				}
				dep, ok := strings.CutPrefix(path, "registrar/impl/")
				if !ok {
					continue
				}
				if layers[dep] > layer || (layers[dep] == layer && layer > 0) {
					t.Errorf("%s (layer %d) imports impl/%s (layer %d)", f, layer, dep, layers[dep])
				}
			}
		}
	}
	if seen < len(layers) {
		t.Errorf("only %d of %d packages found", seen, len(layers))
	}
}
