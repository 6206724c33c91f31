package role

import (
	"flag"
	"strings"
)

// listValue is a repeatable string flag bound to a []string. The first
// value given replaces the default; later ones append.
type listValue struct {
	p   *[]string
	set bool
}

func (l *listValue) String() string {
	if l == nil || l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l *listValue) Set(s string) error {
	if !l.set {
		*l.p = nil
		l.set = true
	}
	*l.p = append(*l.p, s)
	return nil
}

// Get lets package config see a repeatable flag (a YAML list).
func (l *listValue) Get() any { return append([]string(nil), *l.p...) }

// listVar binds a repeatable flag to p; p's value is the default.
func listVar(fs *flag.FlagSet, p *[]string, name, usage string) {
	fs.Var(&listValue{p: p}, name, usage)
}
