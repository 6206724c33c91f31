package relay

import (
	"encoding/json"
	"testing"

	"github.com/ersmesh/ersmesh/internal/testutil"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// FuzzReader feeds a relay's bytes to a player: whatever they are, the
// reader and the checks end in units or a Problem, never a panic, and
// never accept a unit the device did not sign.
func FuzzReader(f *testing.F) {
	key, id := testutil.Key(f)
	s := newFakeStream(f, key)
	moov, k1, p1 := s.moov(), s.group(true), s.group(false)
	f.Add(append(append(append([]byte{}, moov...), k1...), p1...), uint8(7))
	f.Add(moov[:50], uint8(3))
	f.Add([]byte{TypeSig, 0, 0, 0}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, split uint8) {
		v, err := NewVerifier(id, "cam")
		if err != nil {
			t.Fatal(err)
		}
		l := v.NewLink()
		var r Reader
		step := int(split) + 1
		for len(b) > 0 {
			n := min(step, len(b))
			err := r.Feed(b[:n], func(u Unit) error {
				_, err := l.Check(u)
				return err
			})
			if err != nil {
				return
			}
			b = b[n:]
		}
	})
}

// FuzzParse reads every relay payload type from the same bytes.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"link":"l1","parent":"r1","depth":2,"stream":"cam","epoch":"0102030405060708090a0b0c0d0e0f10","seq":7,"fingerprint":"sha-256 AA","self":"sha-256 BB","signature":"x"}`))
	f.Add([]byte(`{"link":"l1","description":{"type":"offer","sdp":"v=0"}}`))
	f.Add([]byte(`{"link":"l1","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}`))
	f.Add([]byte(`{"link":"l1","problem":"hash","detail":"unit 9"}`))
	f.Add([]byte(`{"maxChildren":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		Parse[Assign](b)
		Parse[Child](b)
		Parse[Signal](b)
		Parse[End](b)
		Parse[Ready](b)
		Parse[Report](b)
	})
}
