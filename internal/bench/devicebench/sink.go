package devicebench

import (
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// sink is the media end every receiver shares, whatever server it watches:
// it counts the bytes its tracks bring, and for video the RTP packets, the
// frames (packets with the marker bit) and the packets lost (gaps in the
// sequence numbers), so a run shows that every receiver really got the
// stream and not only that the server sent it.
type sink struct {
	bytes   atomic.Int64
	video   seqCounter
	once    sync.Once
	flowing chan struct{} // closed at the first media byte
}

// Counts is what a receiver got so far.
type Counts struct {
	Bytes   int64 `json:"bytes"`
	Packets int64 `json:"video_packets"`
	Frames  int64 `json:"video_frames"`
	Lost    int64 `json:"video_lost"`
}

// Sub is c less an earlier reading.
func (c Counts) Sub(o Counts) Counts {
	return Counts{Bytes: c.Bytes - o.Bytes, Packets: c.Packets - o.Packets, Frames: c.Frames - o.Frames, Lost: c.Lost - o.Lost}
}

func newSink() sink { return sink{flowing: make(chan struct{})} }

// read counts a track's bytes until it ends.
func (s *sink) read(tr *webrtc.TrackRemote) {
	video := tr.Kind() == webrtc.RTPCodecTypeVideo
	buf := make([]byte, 1600)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		s.bytes.Add(int64(n))
		if video {
			s.video.add(buf[:n])
		}
		s.once.Do(func() { close(s.flowing) })
	}
}

func (s *sink) received() int64 { return s.bytes.Load() }

func (s *sink) counts() Counts {
	p, f, l := s.video.load()
	return Counts{Bytes: s.bytes.Load(), Packets: p, Frames: f, Lost: l}
}

// seqCounter counts RTP packets, frames and sequence gaps of one track. One
// goroutine adds (the track's reader); others load.
type seqCounter struct {
	packets, frames, lost atomic.Int64
	started               bool
	next                  uint16 // the sequence number expected next
}

// add counts the RTP packet p (header as sent: version, marker, sequence
// number in bytes 2–3). A packet older than the one expected (reordered
// or repeated) is counted but does not move the expectation, nor does it
// count a frame: a frame's last packet resent after a NACK must not count
// the frame twice. A gap counts its missing packets as lost. The receivers NACK (pion's default
// interceptors): a retransmission that arrives later is counted as a
// packet but does not undo the loss, so lost is what was missing when a
// later packet came, the network's loss and not the player's.
func (c *seqCounter) add(p []byte) {
	if len(p) < 12 || p[0]>>6 != 2 {
		return
	}
	c.packets.Add(1)
	marker := p[1]&0x80 != 0
	seq := uint16(p[2])<<8 | uint16(p[3])
	if !c.started {
		c.started, c.next = true, seq+1
		if marker {
			c.frames.Add(1)
		}
		return
	}
	gap := seq - c.next // modulo 2^16
	if gap >= 1<<15 {   // behind what was expected: late, repeated or resent
		return
	}
	if marker {
		c.frames.Add(1)
	}
	c.lost.Add(int64(gap))
	c.next = seq + 1
}

func (c *seqCounter) load() (packets, frames, lost int64) {
	return c.packets.Load(), c.frames.Load(), c.lost.Load()
}
