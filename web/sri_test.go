package web

import (
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite static/index.html's import map integrity")

var (
	importMapRE = regexp.MustCompile(`(?s)<script type="importmap">\n(.*?)\n</script>`)
	preloadRE   = regexp.MustCompile(`<link rel="modulepreload" href="([^"]+)"[^>]*>`)
)

// withPreloads gives every modulepreload link of page its integrity: a
// preload fetches the module before any import, and the import map's
// integrity may not apply to it.
func withPreloads(page string) string {
	integ := Integrity()
	return preloadRE.ReplaceAllStringFunc(page, func(l string) string {
		name := preloadRE.FindStringSubmatch(l)[1]
		return `<link rel="modulepreload" href="` + name + `" integrity="` + integ[name] + `">`
	})
}

// importMap is the import map index.html should carry.
func importMap() string {
	integ := map[string]string{}
	for name, v := range Integrity() {
		integ["./"+name] = v
	}
	b, _ := json.MarshalIndent(map[string]any{"integrity": integ}, "", "  ")
	return string(b)
}

// TestImportMapIntegrity: index.html pins every module by its hash, and
// the hashes are those of the modules shipped.
func TestImportMapIntegrity(t *testing.T) {
	page, err := fs.ReadFile(FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	m := importMapRE.FindSubmatch(page)
	if m == nil {
		t.Fatal("index.html has no import map")
	}
	if i, j := strings.Index(string(page), `<script type="importmap">`), strings.Index(string(page), `rel="modulepreload"`); j >= 0 && j < i {
		t.Error("index.html preloads a module before its import map: the preload would go unchecked")
	}
	want := importMap()
	wantPage := withPreloads(strings.Replace(string(page), string(m[1]), want, 1))
	if string(page) == wantPage {
		return
	}
	if *update {
		out := wantPage
		if err := os.WriteFile("static/index.html", []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("index.html's import map or preload integrity is out of date; run: go test ./web -run TestImportMapIntegrity -update\nwant:\n%s", want)
}
