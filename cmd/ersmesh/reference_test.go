package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ersmesh/ersmesh/internal/config"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md from the flags")

// referencePath is the configuration reference, from this package.
var referencePath = filepath.Join("..", "..", "docs", "configuration.md")

// TestConfigurationReference: docs/configuration.md lists every flag of
// every command, with its default and its environment variable, exactly
// as the flags define them. Run `go generate ./cmd/ersmesh` (or this test
// with -update) after changing a flag.
func TestConfigurationReference(t *testing.T) {
	got := reference()
	if *update {
		if err := os.WriteFile(referencePath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v (generate it: go generate ./cmd/ersmesh)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with the flags: run go generate ./cmd/ersmesh\n%s", referencePath, firstDiff(want, got))
	}
}

// firstDiff shows the first line that differs.
func firstDiff(old, new []byte) string {
	a, b := strings.Split(string(old), "\n"), strings.Split(string(new), "\n")
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  file:  %s\n  flags: %s", i+1, x, y)
		}
	}
	return ""
}

// reference renders the configuration reference from the commands' flag
// sets.
func reference() []byte {
	var b bytes.Buffer
	b.WriteString(`# Configuration reference

<!-- Generated from the flags by go generate ./cmd/ersmesh (TestConfigurationReference in cmd/ersmesh); do not edit. -->

Every flag of every command is also a key of the YAML file given with
` + "`--config FILE`" + ` and an environment variable: ` + "`--record-ttl 5m`" + ` is ` + "`record-ttl: 5m`" + `
in the file and ` + "`ERSMESH_RECORD_TTL=5m`" + ` in the environment. A flag on the
command line wins over the environment, which wins over the file, which wins
over the default. Repeatable flags (marked *list*) take a YAML list in the file
and space-separated values from the environment. ` + "`ersmesh <command> --print-config`" + `
prints the effective configuration as a file to start from. A bad key or value
stops the command at start, naming the key.

Defaults under ` + "`~/.config`" + ` are in the user's configuration directory (Go's
` + "`os.UserConfigDir`" + `: ` + "`$XDG_CONFIG_HOME`" + ` or ` + "`~/.config`" + ` on Linux).
`)
	home, _ := os.UserConfigDir()
	for _, c := range commands() {
		fs, _ := c.flagSet()
		fmt.Fprintf(&b, "\n## ersmesh %s\n\n%s.\n\n", c.name, upperFirst(c.summary))
		if c.operands {
			fmt.Fprintf(&b, "Arguments after the flags: see `ersmesh %s --help`.\n\n", c.name)
		}
		b.WriteString("| key | default | environment | what |\n|---|---|---|---|\n")
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			key := "`" + f.Name + "`"
			if name != "" {
				key = "`" + f.Name + " " + name + "`"
			}
			if isList(f) {
				key += " *list*"
			}
			def := f.DefValue
			if home != "" {
				def = strings.ReplaceAll(def, home, "~/.config")
			}
			if def != "" {
				def = "`" + def + "`"
			}
			env := config.Variable(f.Name)
			if env != "" {
				env = "`" + env + "`"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", key, cell(def), env, cell(usage))
		})
	}
	return b.Bytes()
}

func isList(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = g.Get().([]string)
	return ok
}

// cell escapes what would break a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
