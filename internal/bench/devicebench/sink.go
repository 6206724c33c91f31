package devicebench

import (
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// sink is the media end every receiver shares, whatever server it watches:
// it counts the bytes its tracks bring.
type sink struct {
	bytes   atomic.Int64
	once    sync.Once
	flowing chan struct{} // closed at the first media byte
}

func newSink() sink { return sink{flowing: make(chan struct{})} }

// read counts a track's bytes until it ends.
func (s *sink) read(tr *webrtc.TrackRemote) {
	buf := make([]byte, 1600)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		s.bytes.Add(int64(n))
		s.once.Do(func() { close(s.flowing) })
	}
}

func (s *sink) received() int64 { return s.bytes.Load() }
