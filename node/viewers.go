package node

import (
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/signalwire"
)

// ViewerInfo describes one viewer session, for operators (and tests).
type ViewerInfo struct {
	Bridge  peer.ID // the bridge that relays the session's signalling
	Session string  // the viewer's id at that bridge
	Room    string
	Stream  string
	// Transport is fmp4 or srtp.
	Transport string
	// Answering is true when the viewer sent the offer (WHEP) and the device
	// answered; false in the ERS flow, where the device offers.
	Answering bool
	// RemoteCandidates counts the viewer's ICE candidates that reached the
	// device through signalling (trickled) and were accepted.
	RemoteCandidates int
	State            string // the PeerConnection's state; "" before it exists
	// Detached is true while no bridge relays the session's signalling
	// (its bridge went away) and the device waits for the viewer to
	// re-attach it; media flows on.
	Detached bool
	// Resumes counts re-attachments through a bridge; ICERestarts the ICE
	// restarts the viewer asked for.
	Resumes, ICERestarts int
	everConnected        bool
}

// Viewers returns a snapshot of the sessions the device is serving, joined
// or still joining, ordered by bridge and session.
func (d *Device) Viewers() []ViewerInfo {
	d.mu.Lock()
	sessions := make([]*session, 0, len(d.viewers))
	for s := range d.viewers {
		sessions = append(sessions, s)
	}
	d.mu.Unlock()
	out := make([]ViewerInfo, 0, len(sessions))
	for _, s := range sessions {
		s.mu.Lock()
		info := s.stat
		s.mu.Unlock()
		info.Bridge = s.currentBridge()
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bridge != out[j].Bridge {
			return out[i].Bridge < out[j].Bridge
		}
		return out[i].Session < out[j].Session
	})
	return out
}

func (s *session) joined(join *signalwire.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stat.Session, s.stat.Room, s.stat.Stream = join.Session, join.Room, join.Stream
	s.stat.Answering = join.ViewerOffers
	s.stat.Transport = transportOf(join)
}

func (s *session) setState(st webrtc.PeerConnectionState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stat.State = st.String()
	if st == webrtc.PeerConnectionStateConnected {
		s.stat.everConnected = true
	}
}

func (s *session) countCandidate() {
	s.mu.Lock()
	s.stat.RemoteCandidates++
	s.mu.Unlock()
}

func (s *session) setDetached(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stat.Detached && !v {
		s.stat.Resumes++
	}
	s.stat.Detached = v
}

func (s *session) countRestart() {
	s.mu.Lock()
	s.stat.ICERestarts++
	s.mu.Unlock()
}

func (d *Device) addResumable(s *session) {
	d.mu.Lock()
	d.resumable[s.sid] = s
	d.mu.Unlock()
}

func (d *Device) removeResumable(s *session) {
	d.mu.Lock()
	if d.resumable[s.sid] == s {
		delete(d.resumable, s.sid)
	}
	d.mu.Unlock()
}
