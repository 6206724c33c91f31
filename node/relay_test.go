package node

import (
	"testing"
	"time"
)

// tree builds members for pickParent: each entry names its parent ("" for
// a direct viewer), the children it offers and whether it is banned or
// resting.
func testTree(t *testing.T, cfg RelayConfig, spec map[string]struct {
	parent  string
	max     int
	banned  bool
	resting bool
}) (*relayTree, map[string]*member) {
	t.Helper()
	tr := &relayTree{cfg: cfg.withDefaults(), members: map[*session]*member{}, links: map[string]*relayLink{}}
	ms := map[string]*member{}
	for name, sp := range spec {
		m := &member{s: &session{}, stream: "cam", label: name, max: sp.max, banned: sp.banned, children: map[string]*relayLink{}}
		if sp.resting {
			m.restUntil = time.Now().Add(time.Minute)
		}
		ms[name] = m
		tr.members[m.s] = m
	}
	// Link in order of depth: parents first.
	var depth func(name string) int
	depth = func(name string) int {
		if spec[name].parent == "" {
			return 1
		}
		return depth(spec[name].parent) + 1
	}
	for name, sp := range spec {
		m := ms[name]
		m.depth = depth(name)
		if sp.parent != "" {
			p := ms[sp.parent]
			l := &relayLink{id: name, parent: p, child: m}
			p.children[l.id] = l
			m.parent = l
		}
	}
	return tr, ms
}

type spec = map[string]struct {
	parent  string
	max     int
	banned  bool
	resting bool
}

func TestPickParent(t *testing.T) {
	cfg := RelayConfig{Depth: 3, Fanout: 2}
	for name, tc := range map[string]struct {
		tree  spec
		child string // an existing member re-attaching, or "new"
		want  string // "" for none
	}{
		"shallowest first":     {spec{"a": {max: 3}, "b": {parent: "a", max: 3}}, "new", "a"},
		"fan-out bound":        {spec{"a": {max: 3}, "x": {parent: "a"}, "y": {parent: "a"}, "b": {parent: "a", max: 3}}, "new", "b"},
		"offer bound":          {spec{"a": {max: 1}, "x": {parent: "a"}, "b": {max: 0}}, "new", ""},
		"depth bound":          {spec{"a": {max: 1}, "b": {parent: "a", max: 1}, "c": {parent: "b", max: 3}}, "new", ""},
		"fewest children":      {spec{"a": {max: 2}, "x": {parent: "a"}, "b": {max: 2}}, "new", "b"},
		"banned never":         {spec{"a": {max: 3, banned: true}}, "new", ""},
		"resting last":         {spec{"a": {max: 3, resting: true}}, "new", "a"},
		"resting after others": {spec{"a": {max: 3, resting: true}, "b": {max: 3}, "bx": {parent: "b"}}, "new", "b"},
		// x re-attaches with its subtree (y below it): not under y (a
		// cycle), nor where its subtree would pass the depth bound.
		"no cycle":      {spec{"a": {max: 0}, "x": {parent: "a", max: 2}, "y": {parent: "x", max: 2}}, "x", ""},
		"subtree depth": {spec{"a": {max: 3}, "b": {parent: "a", max: 3}, "x": {parent: "b", max: 2}, "y": {parent: "x"}}, "x", "a"},
	} {
		t.Run(name, func(t *testing.T) {
			tr, ms := testTree(t, cfg, tc.tree)
			m := ms[tc.child]
			if m == nil {
				m = &member{s: &session{}, stream: "cam", label: "new", children: map[string]*relayLink{}}
			} else {
				// Re-attaching: it has lost its parent.
				delete(m.parent.parent.children, m.parent.id)
				m.parent = nil
			}
			got := tr.pickParent(m)
			if (got == nil) != (tc.want == "") || got != nil && got.label != tc.want {
				label := "none"
				if got != nil {
					label = got.label
				}
				t.Fatalf("picked %s, want %q", label, tc.want)
			}
		})
	}
}
