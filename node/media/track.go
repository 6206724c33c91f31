package media

import (
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// boundTrack is one srtp viewer's track: one PeerConnection binds it, and
// its viewer's writer goroutine alone writes to it. Pion's static track
// negotiates the codec; the packets then go straight to the binding's
// write stream, without the static track's lock, packet pool and error
// slice per packet, which serve tracks with many bindings.
//
// It also notices when its packets start to go out. An offerer's pion
// binds at SetRemoteDescription, before ICE and DTLS, and until SRTP is up
// it drops what is written, silently (it returns 0 bytes and no error): a
// GOP burst written then would be lost.
type boundTrack struct {
	*webrtc.TrackLocalStaticRTP
	mu    sync.Mutex // guards the bind/unbind sequence
	b     atomic.Pointer[binding]
	bound atomic.Bool // bound once: the viewer's queue is worth filling
	live  atomic.Bool // a packet went out
}

// binding is what a write needs of the TrackLocalContext.
type binding struct {
	id     string
	ssrc   uint32
	pt     uint8
	stream webrtc.TrackLocalWriter
}

func newBoundTrack(c webrtc.RTPCodecCapability, id, streamID string) (*boundTrack, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(c, id, streamID)
	if err != nil {
		return nil, err
	}
	return &boundTrack{TrackLocalStaticRTP: t}, nil
}

// Bind implements webrtc.TrackLocal.
func (t *boundTrack) Bind(c webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, err := t.TrackLocalStaticRTP.Bind(c)
	if err != nil {
		return p, err
	}
	t.b.Store(&binding{id: c.ID(), ssrc: uint32(c.SSRC()), pt: uint8(p.PayloadType), stream: c.WriteStream()})
	t.bound.Store(true)
	return p, nil
}

// Unbind implements webrtc.TrackLocal.
func (t *boundTrack) Unbind(c webrtc.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b := t.b.Load(); b != nil && b.id == c.ID() {
		t.b.Store(nil)
	}
	return t.TrackLocalStaticRTP.Unbind(c)
}

// WriteRTP implements webrtc.TrackLocalWriter for the test harnesses that
// write to a track directly; the viewer's writer uses write.
func (t *boundTrack) WriteRTP(p *rtp.Packet) error {
	h := p.Header
	_, err := t.write(&h, p.Payload)
	return err
}

// write sends one packet to the binding with its SSRC and payload type; h
// is the caller's copy. Nothing is sent while the track is unbound.
func (t *boundTrack) write(h *rtp.Header, payload []byte) (int, error) {
	b := t.b.Load()
	if b == nil {
		return 0, nil
	}
	h.SSRC, h.PayloadType = b.ssrc, b.pt
	n, err := b.stream.WriteRTP(h, payload)
	if n > 0 && !t.live.Load() {
		t.live.Store(true)
	}
	return n, err
}
