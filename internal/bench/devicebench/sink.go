package devicebench

import (
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// sink is the media end every receiver shares, whatever server it watches:
// a PeerConnection that counts the bytes its tracks bring.
type sink struct {
	pc    *webrtc.PeerConnection
	bytes atomic.Int64
}

// open creates the PeerConnection; flowing closes at the first media byte.
func (s *sink) open(api *webrtc.API) (flowing <-chan struct{}, err error) {
	if s.pc, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, err
	}
	first := make(chan struct{})
	var once sync.Once
	s.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1600)
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			s.bytes.Add(int64(n))
			once.Do(func() { close(first) })
		}
	})
	return first, nil
}

func (s *sink) received() int64 { return s.bytes.Load() }
