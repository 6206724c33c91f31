package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }
func (l *list) Get() any           { return []string(*l) }

type vals struct {
	http  *string
	ttl   *time.Duration
	caps  *int
	debug *bool
	rooms list
}

func newSet() (*flag.FlagSet, *vals) {
	fs := flag.NewFlagSet("ersmesh test", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	v := &vals{}
	v.http = fs.String("http", ":4545", "HTTP `address`")
	v.ttl = fs.Duration("record-ttl", 2*time.Minute, "record lifetime")
	v.caps = fs.Int("max-conns", 64, "cap")
	v.debug = fs.Bool("debug", false, "debug")
	fs.Var(&v.rooms, "room", "room (repeatable)")
	Register(fs)
	return fs, v
}

func write(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) *Options {
	return &Options{Getenv: func(k string) string { return m[k] }, Out: new(bytes.Buffer)}
}

func TestPrecedence(t *testing.T) {
	p := write(t, "http: ':1111'\nrecord-ttl: 30s\nmax-conns: 5\nroom: [a, b]\ndebug: true\n")
	fs, v := newSet()
	err := Parse(fs, []string{"--config", p, "--max-conns", "7"}, env(map[string]string{"ERSMESH_RECORD_TTL": "45s", "ERSMESH_ROOM": "x y"}))
	if err != nil {
		t.Fatal(err)
	}
	if *v.http != ":1111" || *v.ttl != 45*time.Second || *v.caps != 7 || !*v.debug || strings.Join(v.rooms, ",") != "x,y" {
		t.Errorf("got http %s ttl %s caps %d debug %v rooms %v", *v.http, *v.ttl, *v.caps, *v.debug, v.rooms)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	p := write(t, "room: [a]\n")
	fs, v := newSet()
	if err := Parse(fs, nil, env(map[string]string{"ERSMESH_CONFIG": p})); err != nil {
		t.Fatal(err)
	}
	if strings.Join(v.rooms, ",") != "a" {
		t.Errorf("rooms %v", v.rooms)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := map[string]struct{ file, want string }{
		"unknown key":     {"htp: x\n", `unknown key "htp"`},
		"bad duration":    {"record-ttl: soon\n", `key "record-ttl"`},
		"bad int":         {"max-conns: many\n", `key "max-conns"`},
		"list for scalar": {"http: [a, b]\n", `key "http": line 1: takes one value`},
		"not a mapping":   {"- a\n- b\n", "must be a mapping"},
		"duplicate":       {"http: a\nhttp: b\n", "given twice"},
		"bad yaml":        {"http: [\n", "c.yaml"},
		"config key":      {"config: other.yaml\n", `unknown key "config"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			fs, _ := newSet()
			err := Parse(fs, []string{"--config", write(t, c.file)}, env(nil))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
	fs, _ := newSet()
	err := Parse(fs, nil, env(map[string]string{"ERSMESH_MAX_CONNS": "lots"}))
	if err == nil || !strings.Contains(err.Error(), "ERSMESH_MAX_CONNS") {
		t.Errorf("bad environment value: %v", err)
	}
	fs, _ = newSet()
	if err := Parse(fs, []string{"--config", "/nonexistent.yaml"}, env(nil)); err == nil {
		t.Error("missing file accepted")
	}
	fs, _ = newSet()
	big := write(t, "http: '"+strings.Repeat("a", MaxFileSize)+"'\n")
	if err := Parse(fs, []string{"--config", big}, env(nil)); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("oversized file: %v", err)
	}
}

// TestPrintRoundTrip: what --print-config prints, loaded as a config file,
// gives the same configuration.
func TestPrintRoundTrip(t *testing.T) {
	fs, _ := newSet()
	opts := env(map[string]string{"ERSMESH_ROOM": "front back", "ERSMESH_HTTP": "127.0.0.1:9"})
	err := Parse(fs, []string{"--print-config", "--record-ttl", "90s"}, opts)
	if !errors.Is(err, ErrPrinted) {
		t.Fatalf("Parse: %v, want ErrPrinted", err)
	}
	printed := opts.Out.(*bytes.Buffer).String()
	for _, want := range []string{"record-ttl: 1m30s", "- front", "- back", `http: "127.0.0.1:9"`, "# HTTP address"} {
		if !strings.Contains(printed, want) {
			t.Errorf("printed config lacks %q:\n%s", want, printed)
		}
	}
	fs2, v := newSet()
	if err := Parse(fs2, []string{"--config", write(t, printed)}, env(nil)); err != nil {
		t.Fatalf("reloading the printed config: %v\n%s", err, printed)
	}
	if *v.ttl != 90*time.Second || *v.http != "127.0.0.1:9" || strings.Join(v.rooms, ",") != "front,back" {
		t.Errorf("round trip gave ttl %s http %s rooms %v", *v.ttl, *v.http, v.rooms)
	}
}
