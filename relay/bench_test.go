package relay

import (
	"testing"

	"github.com/ersmesh/ersmesh/internal/testutil"
)

// BenchmarkSign is the device's cost per unit: once per frame per stream,
// whatever the number of viewers.
func BenchmarkSign(b *testing.B) {
	key, _ := testutil.Key(b)
	s := NewSigner(key, "cam", Epoch{1})
	covered := make([]byte, 20<<10) // a frame of a 5 Mbit/s stream at 30 fps
	b.SetBytes(int64(len(covered)))
	for i := range b.N {
		if _, err := s.Sign(0, uint64(i+2), 1, covered); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheck is a player's cost per unit: hash and signature.
func BenchmarkCheck(b *testing.B) {
	key, id := testutil.Key(b)
	f := newFakeStream(b, key)
	moov := f.moov()
	units := make([][]byte, 64)
	for i := range units {
		units[i] = f.group(true)
	}
	var r Reader
	var parsed []Unit
	for _, raw := range append([][]byte{moov}, units...) {
		r.Feed(raw, func(u Unit) error { parsed = append(parsed, u); return nil })
	}
	b.ResetTimer()
	for i := range b.N {
		v, _ := NewVerifier(id, "cam")
		l := v.NewLink()
		l.Check(parsed[0])
		if _, err := l.Check(parsed[1+i%64]); err != nil {
			b.Fatal(err)
		}
	}
}
