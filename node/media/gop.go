package media

import (
	"time"

	"github.com/pion/rtp"
)

// Frame is one video frame prepared once for every viewer: packetized for
// RTP and muxed into an fMP4 segment in the EMS record framing. Its slices
// are shared by all viewers and never modified after the frame is made.
type Frame struct {
	Key bool
	TS  uint32        // RTP timestamp, 90 kHz
	At  time.Time     // when the source delivered it: TS on the wall clock, for sender reports
	RTP []*rtp.Packet // payloads shared; viewers copy the header
	EMS []byte        // BEGIN..END records; nil while the fMP4 init is unknown
	Sig []byte        // EMS's SIG record for signed viewers (docs/relay.md); nil unsigned
}

func (f *Frame) size() int {
	n := len(f.EMS)
	for _, p := range f.RTP {
		n += len(p.Payload) + 12
	}
	return n
}

// gopCache holds the frames since the last keyframe, so that a new viewer
// starts on a keyframe at once. The stream's goroutine adds to it under the
// stream's lock; viewers' writers read snapshots without any lock. A
// snapshot stays valid: frames are only appended past every snapshot's
// length, and a new GOP starts a new slice instead of clearing the old.
type gopCache struct {
	frames []*Frame
	bytes  int
	full   bool // the GOP outgrew the cache: new viewers wait for the next keyframe
}

func (g *gopCache) add(f *Frame) {
	if f.Key {
		g.frames, g.bytes, g.full = make([]*Frame, 0, 64), 0, false
	}
	if g.full {
		return
	}
	if len(g.frames) >= maxGOPFrames || g.bytes+f.size() > maxGOPBytes {
		g.frames, g.bytes, g.full = nil, 0, true
		return
	}
	if len(g.frames) > 0 || f.Key {
		g.frames = append(g.frames, f)
		g.bytes += f.size()
	}
}

// snapshot is the cached GOP if it ends with last, else nil: what a viewer
// may burst before last. Its capacity is cut so that nobody appends to it.
func (g *gopCache) snapshot(last *Frame) []*Frame {
	n := len(g.frames)
	if g.full || n == 0 || g.frames[n-1] != last {
		return nil
	}
	return g.frames[:n:n]
}

// usable is the cached GOP, nil when a new viewer has to wait for a keyframe.
func (g *gopCache) usable() []*Frame {
	if g.full {
		return nil
	}
	return g.frames
}
