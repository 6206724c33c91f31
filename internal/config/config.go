package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds a config file: a config is a screenful, not a data set.
const MaxFileSize = 1 << 20

// Flag names this package adds to every flag set.
const (
	FileFlag  = "config"
	PrintFlag = "print-config"
)

// ErrPrinted is returned by Parse after --print-config printed the
// effective config; the command should stop without error.
var ErrPrinted = errors.New("config printed")

// EnvName is the variable for a flag: ERSMESH_ and the name in upper case
// with dashes as underscores.
func EnvName(flagName string) string {
	return "ERSMESH_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Variable is the environment variable Parse reads for the flag name: its
// EnvName, but none ("") for --print-config, which only the command line
// gives.
func Variable(flagName string) string {
	if flagName == PrintFlag {
		return ""
	}
	return EnvName(flagName)
}

// Options may be nil.
type Options struct {
	Getenv func(string) string // default os.Getenv
	Out    io.Writer           // where --print-config prints; default os.Stdout
	// Args allows arguments after the flags (a command's operands, left
	// in fs.Args()); without it an argument is an error.
	Args bool
}

// Register adds --config and --print-config to fs. Call it after the
// command's own flags, before Parse.
func Register(fs *flag.FlagSet) {
	fs.String(FileFlag, "", "YAML config `file`: keys are these flags' names; ERSMESH_<FLAG> variables override it, flags override both")
	fs.Bool(PrintFlag, false, "print the effective configuration as YAML and exit")
}

// isList reports whether a flag may be given several times: such flags
// take a YAML sequence, and space-separated values from the environment.
func isList(f *flag.Flag) bool {
	if g, ok := f.Value.(flag.Getter); ok {
		_, ok := g.Get().([]string)
		return ok
	}
	return false
}

// Parse parses args into fs (which must have had Register called), then
// fills every flag not given on the command line from the environment or
// the config file. Errors name the key or variable and the reason.
func Parse(fs *flag.FlagSet, args []string, opts *Options) error {
	if opts == nil {
		opts = &Options{}
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 && !opts.Args {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	onCLI := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCLI[f.Name] = true })

	path := fs.Lookup(FileFlag).Value.String()
	if path == "" && !onCLI[FileFlag] {
		path = getenv(EnvName(FileFlag))
	}
	file, err := readFile(path)
	if err != nil {
		return err
	}
	for key := range file {
		f := fs.Lookup(key)
		if f == nil || key == FileFlag || key == PrintFlag {
			return fmt.Errorf("config %s: unknown key %q (the keys are the flags of `%s --help`)", path, key, fs.Name())
		}
	}

	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if onCLI[f.Name] || f.Name == FileFlag || f.Name == PrintFlag {
			return
		}
		if v, ok := lookupEnv(getenv, EnvName(f.Name)); ok {
			vals := []string{v}
			if isList(f) {
				vals = strings.Fields(v)
			}
			for _, s := range vals {
				if err := f.Value.Set(s); err != nil {
					errs = append(errs, fmt.Errorf("%s=%q: %v", EnvName(f.Name), v, err))
					return
				}
			}
			return
		}
		node, ok := file[f.Name]
		if !ok {
			return
		}
		vals, err := scalars(node, isList(f))
		if err != nil {
			errs = append(errs, fmt.Errorf("config %s: key %q: %v", path, f.Name, err))
			return
		}
		for _, s := range vals {
			if err := f.Value.Set(s); err != nil {
				errs = append(errs, fmt.Errorf("config %s: key %q: %v", path, f.Name, err))
				return
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if p := fs.Lookup(PrintFlag); p != nil && p.Value.String() == "true" {
		out := opts.Out
		if out == nil {
			out = os.Stdout
		}
		if err := Print(out, fs); err != nil {
			return err
		}
		return ErrPrinted
	}
	return nil
}

// lookupEnv treats an empty variable as unset, as shells make it easy to
// export one by accident.
func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

func readFile(path string) (map[string]*yaml.Node, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, MaxFileSize)
	}
	return decode(path, b)
}

func decode(path string, b []byte) (map[string]*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	out := map[string]*yaml.Node{}
	if len(doc.Content) == 0 {
		return out, nil // empty file
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config %s: the file must be a mapping of keys to values", path)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("config %s: line %d: a key must be a name", path, k.Line)
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("config %s: line %d: key %q given twice", path, k.Line, k.Value)
		}
		out[k.Value] = m.Content[i+1]
	}
	return out, nil
}

// scalars returns a value's text, or each element's for a sequence.
func scalars(n *yaml.Node, list bool) ([]string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, nil
		}
		return []string{n.Value}, nil
	case yaml.SequenceNode:
		if !list {
			return nil, fmt.Errorf("line %d: takes one value, not a list", n.Line)
		}
		var out []string
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: list elements must be plain values", c.Line)
			}
			out = append(out, c.Value)
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: expected a value", n.Line)
}

// Print writes fs's effective values as a YAML config file.
func Print(w io.Writer, fs *flag.FlagSet) error {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != FileFlag && f.Name != PrintFlag {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	doc := &yaml.Node{Kind: yaml.MappingNode}
	for _, name := range names {
		f := fs.Lookup(name)
		val := &yaml.Node{Kind: yaml.ScalarNode, Value: f.Value.String()}
		if g, ok := f.Value.(flag.Getter); ok {
			switch v := g.Get().(type) {
			case []string:
				val = &yaml.Node{Kind: yaml.SequenceNode}
				for _, s := range v {
					val.Content = append(val.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: s})
				}
			case time.Duration:
				val.Value = v.String()
			case string:
				val.Value = v
				val.Style = yaml.DoubleQuotedStyle
			}
		}
		doc.Content = append(doc.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: name, HeadComment: oneLine(f.Usage)}, val)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "`", "")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
