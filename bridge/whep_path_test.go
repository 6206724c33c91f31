package bridge

import (
	"strings"
	"testing"
)

func TestParseWHEPPath(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		path, room, stream, session string
		ok                          bool
	}{
		{"/whep/lobby", "lobby", "", "", true},
		{"/whep/lobby/cam", "lobby", "cam", "", true},
		{"/whep/session/" + id, "session", id, id, true},
		{"/whep/session/nothex", "session", "nothex", "", true},
		{"/whep/front.door_1~x-y", "front.door_1~x-y", "", "", true},
		{"/whep/", "", "", "", false},
		{"/whep/lobby/", "", "", "", false},
		{"/whep/lobby/cam/x", "", "", "", false},
		{"/whep/bad room", "", "", "", false},
		{"/whep/lobby/bad stream", "", "", "", false},
		{"/other/lobby", "", "", "", false},
		{"/whep/" + strings.Repeat("a", 500), "", "", "", false},
	} {
		p, err := parseWHEPPath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.path, err, tc.ok)
			continue
		}
		if tc.ok && (p.room.String() != tc.room || p.stream != tc.stream || p.session != tc.session) {
			t.Errorf("%q: got room %q stream %q session %q", tc.path, p.room.String(), p.stream, p.session)
		}
	}
}

func FuzzParseWHEPPath(f *testing.F) {
	for _, s := range []string{"/whep/lobby", "/whep/lobby/cam", "/whep/session/0123456789abcdef0123456789abcdef", "/whep/x@12D3KooWRyiyF2wcCWDMFhR1k4pdpWZV3MggMtBbDfxaugLzwYg4", "/whep//", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseWHEPPath(s)
		if err != nil {
			return
		}
		if p.session != "" && !isSessionID(p.session) {
			t.Fatalf("%q: session %q is not an id", s, p.session)
		}
		if p.room.String() == "" {
			if p.session == "" {
				t.Fatalf("%q: accepted with neither room nor session", s)
			}
			return
		}
		// What was parsed rebuilds the path it came from.
		rebuilt := "/whep/" + p.room.String()
		if p.stream != "" {
			if !validStreamName(p.stream) {
				t.Fatalf("%q: bad stream %q accepted", s, p.stream)
			}
			rebuilt += "/" + p.stream
		}
		q, err := parseWHEPPath(rebuilt)
		if err != nil || q.room.String() != p.room.String() || q.stream != p.stream {
			t.Fatalf("%q parsed as %q, which parses as %+v (%v)", s, rebuilt, q, err)
		}
	})
}
