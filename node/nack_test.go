package node

import (
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
)

// lossFactory makes an interceptor that loses every nth video packet the
// first time it arrives, between the network and the viewer's NACK
// generator: a lossy link whose losses NACK must repair.
type lossFactory struct {
	every int
	mu    sync.Mutex
	n     int
	lost  map[uint16]bool
}

func (f *lossFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &lossy{f: f}, nil
}

type lossy struct {
	interceptor.NoOp
	f *lossFactory
}

func (l *lossy) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	// pion binds a remote stream before it knows the payload type, with
	// the transceiver's first codec: match the media stream, not the RTX one.
	mime := strings.ToLower(info.MimeType)
	if !strings.HasPrefix(mime, "video/") || mime == "video/rtx" {
		return r
	}
	f := l.f
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := r.Read(b, a)
			if err != nil || n < 12 {
				return n, attr, err
			}
			seq := binary.BigEndian.Uint16(b[2:4])
			f.mu.Lock()
			f.n++
			drop := f.n%f.every == 0 && !f.lost[seq]
			if drop {
				f.lost[seq] = true
			}
			f.mu.Unlock()
			if !drop {
				return n, attr, nil
			}
		}
	})
}

// TestNACKRepairsLoss: with 1 video packet in 20 lost, the srtp viewer
// still gets every frame: the device retransmits what the viewer NACKs. And
// the device sends RTCP sender reports.
func TestNACKRepairsLoss(t *testing.T) {
	tm := newTestMesh(t)
	loss := &lossFactory{every: 20, lost: map[uint16]bool{}}
	v := newTestViewer(t, tm, "viewer1", "srtp", "cam", loss)
	v.waitFor("90 frames and a sender report", 30*time.Second, func() bool { return len(v.frames) >= 90 && v.senderReports > 0 })
	loss.mu.Lock()
	lost := len(loss.lost)
	loss.mu.Unlock()
	if lost < 10 {
		t.Fatalf("only %d packets were lost: the test did not test", lost)
	}
	v.mu.Lock()
	frames := append([]uint32(nil), v.frames...)
	v.mu.Unlock()
	// A repaired frame arrives late, out of order: compare the set of
	// frames, leaving out the last ones whose repair may be under way.
	slices.Sort(frames)
	frames = slices.Compact(frames)
	frames = frames[:len(frames)-10]
	for j := 1; j < len(frames); j++ {
		if d := frames[j] - frames[j-1]; d > 3000 {
			t.Fatalf("frame at %d is %d ticks after the previous: of %d lost packets, some were not repaired", frames[j], d, lost)
		}
	}
}
