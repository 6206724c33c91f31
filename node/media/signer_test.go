package media

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
)

// TestSignedViewerAfterAPause: the stream signs while a signed viewer
// watches, stops when it leaves, and is asked to sign again when another
// joins within the same GOP (the device's relayStream.want): the newcomer's
// queue, the MOOV and then the cached GOP, carries its signed units in
// increasing seq order, with the MOOV first.
func TestSignedViewerAfterAPause(t *testing.T) {
	s := newTestStream(t)
	var wanted atomic.Bool
	sign := func(key, moov bool, seq, moovSeq uint64, covered []byte) []byte {
		if !wanted.Load() {
			return nil
		}
		return binary.BigEndian.AppendUint64(nil, seq)
	}
	wanted.Store(true)
	s.SetSigner(sign)
	feed(s, 0, 35) // keyframes at 0 and 30: the GOP holds 30..34, signed
	wanted.Store(false)
	feed(s, 35, 5) // the viewer left: 35..39 unsigned
	wanted.Store(true)
	s.SetSigner(sign) // the next signed viewer
	v, err := s.SubscribeFMP4()
	if err != nil {
		t.Fatal(err)
	}
	defer s.UnsubscribeFMP4(v)
	var seqs []uint64
	first := true
	for range len(v.C) {
		c := <-v.C
		if first && (c.Data[0] != 250 || c.Sig == nil) {
			t.Fatal("the queue does not start with a signed MOOV")
		}
		first = false
		if c.Sig != nil {
			seqs = append(seqs, binary.BigEndian.Uint64(c.Sig))
		}
	}
	if len(seqs) < 2 {
		t.Fatalf("signed units queued: %v, want the MOOV and the signed part of the GOP", seqs)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("signed units queued in the order %v: a viewer refuses unit %d after unit %d", seqs, seqs[i], seqs[i-1])
		}
	}
}
