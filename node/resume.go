package node

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/signalwire"
	"github.com/ersmesh/ersmesh/trust"
)

// A viewer's session belongs to the viewer and the device, not to the
// bridge that introduced them. When its signalling stream drops (the
// bridge died, restarts, or lost the viewer's socket) and the
// PeerConnection is still up, the session goes on without signalling and
// waits for the viewer to re-attach it through any bridge (a resume,
// authenticated by the viewer's resume key: trust/resume.go). Signalling
// is needed again only for an ICE restart.

// maxDetached bounds how long a session waits for its viewer to re-attach.
// A viewer that is gone for good is noticed sooner by the PeerConnection
// (DTLS close, or ICE failing): this is a backstop.
var maxDetached = 10 * time.Minute

// resumeTimeout bounds the wait for the viewer's proof on a resume stream.
const resumeTimeout = 15 * time.Second

// attachment is a resumed signalling stream handed to its session.
type attachment struct {
	conn   *signalwire.Conn
	bridge peer.ID
	viewer string        // the viewer's id at the new bridge, for logs
	taken  chan struct{} // closed by the session once it owns conn
}

// resumeKey returns the viewer's resume key when the join offers one that
// the join's nonce binds (so that the device's signed offer covers it), or
// nil: such a session ends with its signalling stream, as before.
func resumeKey(join *signalwire.Message) *ecdsa.PublicKey {
	if join.ResumeKey == "" || join.ViewerOffers || join.Nonce != trust.ResumeNonce(join.ResumeKey) {
		return nil
	}
	k, err := trust.ParseResumeKey(join.ResumeKey)
	if err != nil {
		return nil
	}
	return k
}

// whepResumeKey returns the resume key a viewer's offer carries
// (trust.ResumeKeyOfOffer), or nil. The device's signed answer binds the
// offer, and so the key, as a signed offer binds an ERS viewer's nonce.
func whepResumeKey(offer string) *ecdsa.PublicKey {
	k, err := trust.ParseResumeKey(trust.ResumeKeyOfOffer(offer))
	if err != nil {
		return nil
	}
	return k
}

// current is the session's signalling stream, nil while detached.
func (s *session) current() *signalwire.Conn {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.conn
}

// currentBridge is the bridge relaying the session now (or last).
func (s *session) currentBridge() peer.ID {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.bridge
}

var errDetached = errors.New("no bridge relays this session right now")

// send sends m to the viewer through the current bridge, if any. Callers
// other than the run goroutine use it, never s.conn directly.
func (s *session) send(m *signalwire.Message) error {
	c := s.current()
	if c == nil {
		return errDetached
	}
	return c.Send(m)
}

// end makes the session end: it tells the current bridge m (if not nil),
// and unblocks the run goroutine, which closes everything; a detached
// session stops waiting for its viewer.
func (s *session) end(m *signalwire.Message) {
	s.quitOnce.Do(func() { close(s.quit) })
	if c := s.current(); c != nil {
		if m != nil {
			c.Send(m)
		}
		c.Interrupt()
	}
}

func (s *session) ending() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// resumable reports whether the session may outlive its signalling stream:
// the viewer can prove a resume key and its PeerConnection is up.
//
// A WHEP viewer's session has a resume key when its offer carries one
// (the ersmesh player's does); other WHEP clients need no signalling once
// they play, so their sessions go on detached too (nobody can re-attach
// them: they end when the PeerConnection does).
func (s *session) resumable() bool {
	if s.ending() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resumeKey == nil && !s.stat.Answering {
		return false
	}
	st := s.stat.State
	return s.stat.everConnected && st != webrtc.PeerConnectionStateFailed.String() && st != webrtc.PeerConnectionStateClosed.String()
}

// waitResume runs on the session's goroutine after its stream is gone: the
// session has no signalling until the viewer re-attaches it. It reports
// whether it was (and s.conn is the new stream, already accepted).
func (s *session) waitResume() bool {
	s.cmu.Lock()
	s.conn = nil
	s.cmu.Unlock()
	s.setDetached(true)
	s.log.Info("signalling stream lost; the peer connection goes on, waiting for the viewer to re-attach")
	t := time.NewTimer(maxDetached)
	defer t.Stop()
	for {
		select {
		case a := <-s.attach:
			if err := a.conn.Send(&signalwire.Message{Kind: signalwire.KindAccept}); err != nil {
				s.log.Info("resumed stream broke before its accept", "err", err)
				a.conn.Reset()
				close(a.taken)
				continue
			}
			s.cmu.Lock()
			s.conn, s.bridge = a.conn, a.bridge
			s.cmu.Unlock()
			close(a.taken)
			s.setDetached(false)
			// s.log keeps the first bridge's attributes: pion's callbacks
			// read it from their own goroutines, so it is never replaced.
			s.log.Info("viewer re-attached its session", "via", a.bridge, "viewer", a.viewer)
			return true
		case <-s.quit:
			return false
		case <-s.ctx.Done():
			return false
		case <-t.C:
			s.log.Info("viewer did not re-attach its session in time", "after", maxDetached)
			return false
		}
	}
}

// lookupSession returns the resumable session with WebRTC session id sid.
func (d *Device) lookupSession(sid string) *session {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.resumable[sid]
}

// resume handles a stream that opens with a resume: the device challenges
// the viewer, through this bridge, to sign a fresh value with its resume
// key, and hands the stream to the session on success. The signature is
// bound to this challenge, so a bridge that relays it cannot use it again.
func (d *Device) resume(conn *signalwire.Conn, from peer.ID, m *signalwire.Message) {
	log := d.log.With("bridge", from, "session", m.Session, "room", m.Room)
	reject := func(code, format string, args ...any) {
		reason := fmt.Sprintf(format, args...)
		log.Info("resume refused", "reason", reason)
		conn.Send(&signalwire.Message{Kind: signalwire.KindReject, Code: code, Reason: reason})
		conn.Close()
	}
	defer context.AfterFunc(d.ctx, conn.Interrupt)()
	s := d.lookupSession(m.SID)
	if s == nil || s.room != m.Room {
		reject(signalwire.CodeNotFound, "no session %q of room %q on this device", trim(m.SID, 64), trim(m.Room, 140))
		return
	}
	challenge := trust.NewNonce()
	payload, _ := json.Marshal(map[string]string{"challenge": challenge})
	if err := conn.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "resumeChallenge", SID: m.SID, Payload: payload}); err != nil {
		conn.Reset()
		return
	}
	deadline := time.Now().Add(resumeTimeout)
	for {
		r, err := conn.Recv(time.Until(deadline))
		if err != nil {
			log.Info("no resume proof", "err", err)
			conn.Reset()
			return
		}
		if r.Kind == signalwire.KindLeave {
			conn.Close()
			return
		}
		if r.Kind != signalwire.KindSignal || r.Type != "resumeProof" {
			continue // pings, candidates: nothing to act on yet
		}
		var p ersproto.ResumeProof
		if json.Unmarshal(r.Payload, &p) != nil || !trust.CheckResumeProof(s.resumeKey, s.room, s.sid, challenge, p.Signature) {
			reject(signalwire.CodeForbidden, "unauthorized: the resume proof does not verify for this session")
			return
		}
		break
	}
	a := &attachment{conn: conn, bridge: from, viewer: m.Session, taken: make(chan struct{})}
	// A session still attached elsewhere (its old bridge is alive but lost
	// the viewer) lets go of that stream and takes this one. The stream is
	// taken before the attachment is handed over: a detached session may
	// take the attachment at once, and must not lose the new stream.
	old := s.current()
	select {
	case s.attach <- a:
	default:
		reject(signalwire.CodeUnsupported, "another resume of this session is under way")
		return
	}
	if old != nil {
		old.Interrupt()
	}
	select {
	case <-a.taken:
		return // the session owns conn now (or reset it)
	case <-s.done:
		select {
		case <-a.taken:
			return
		default:
		}
		reject(signalwire.CodeNotFound, "the session ended")
	}
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// restartICE sends the viewer a new offer for the same session with fresh
// ICE credentials (the viewer asked: its network path changed). An offer
// still outstanding (its answer lost with a bridge, say) is replaced.
func (s *session) restartICE(pc *webrtc.PeerConnection) error {
	switch pc.SignalingState() {
	case webrtc.SignalingStateStable, webrtc.SignalingStateHaveLocalOffer:
	default:
		return nil
	}
	offer, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return fmt.Errorf("ICE restart offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("ICE restart offer: %w", err)
	}
	sd := *pc.LocalDescription()
	sd.SDP = withSessionInfo(sd.SDP, s.note)
	payload, err := s.signOffer(sd.SDP)
	if err != nil {
		return err
	}
	s.offerSDP = sd.SDP // the answer is checked against it (answercheck.go)
	s.countRestart()
	s.log.Info("restarting ICE at the viewer's request")
	if err := s.send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "offer", SID: s.sid, Payload: payload}); err != nil {
		s.log.Info("send ICE restart offer", "err", err) // the stream's end is the run loop's to handle
	}
	return nil
}
