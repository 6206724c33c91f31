package bridge

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/ersmesh/ersmesh/room"
)

// whepPath is what a /whep/ URL path names: a room and maybe a stream (for
// POST), or a session (for PATCH and DELETE).
type whepPath struct {
	room    room.Name
	stream  string
	session string
}

// parseWHEPPath reads /whep/{room}, /whep/{room}/{stream} and
// /whep/session/{id}. A path may name both a room and a session
// ("/whep/session/abc"): the method decides which is meant.
func parseWHEPPath(p string) (whepPath, error) {
	var w whepPath
	rest, ok := strings.CutPrefix(p, "/whep/")
	if !ok {
		return w, errors.New("WHEP URLs start with /whep/")
	}
	if len(rest) > 400 {
		return w, errors.New("WHEP URL path is too long")
	}
	segs := strings.Split(rest, "/")
	if len(segs) > 2 || segs[0] == "" {
		return w, errors.New("WHEP URLs are /whep/<room> or /whep/<room>/<stream>")
	}
	if len(segs) == 2 && segs[0] == "session" && isSessionID(segs[1]) {
		w.session = segs[1]
	}
	name, err := room.ParseName(segs[0])
	if err != nil {
		if w.session != "" {
			return w, nil
		}
		return w, fmt.Errorf("bad room name: %w", err)
	}
	w.room = name
	if len(segs) == 2 {
		if !validStreamName(segs[1]) {
			if w.session != "" {
				return w, nil
			}
			return w, fmt.Errorf("bad stream name %q: 1 to 128 characters of A-Z a-z 0-9 . _ ~ -", truncate(segs[1], 64))
		}
		w.stream = segs[1]
	}
	return w, nil
}

// validStreamName allows what room labels allow: stream names travel in
// URLs and logs.
func validStreamName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '~', r == '-':
		default:
			return false
		}
	}
	return true
}

func newSessionID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func isSessionID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}
