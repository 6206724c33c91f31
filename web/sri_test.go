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

var importMapRE = regexp.MustCompile(`(?s)<script type="importmap">\n(.*?)\n</script>`)

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
	want := importMap()
	if string(m[1]) == want {
		return
	}
	if *update {
		out := strings.Replace(string(page), string(m[1]), want, 1)
		if err := os.WriteFile("static/index.html", []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("index.html's import map is out of date; run: go test ./web -run TestImportMapIntegrity -update\nwant:\n%s", want)
}
