package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/signalwire"
)

// answerGatherTimeout bounds how long the device waits for its own ICE
// gathering before it answers a viewer's offer. WHEP clients need a
// complete answer (the server cannot trickle to them), but an unreachable
// STUN server must not hold the answer for its full timeout: the host
// candidates are there within milliseconds, and the rest follow as
// trickled candidates for clients that can take them.
const answerGatherTimeout = 2 * time.Second

// DefaultConnectTimeout is how long a viewer that brought its own offer has
// to connect before the device ends its session: such a viewer (a WHEP
// client) may vanish without a word, and its bridge cannot tell.
const DefaultConnectTimeout = 30 * time.Second

// answer applies the viewer's offer (answer mode, signalwire.Message
// ViewerOffers) and sends one complete answer. It is the same session as the
// ERS flow, with the roles of offer and answer swapped: the PeerConnection
// is built by newPeerConnection, candidates both ways go through
// sendCandidate and apply.
func (s *session) answer(pc *webrtc.PeerConnection, join, m *signalwire.Message) error {
	if !join.ViewerOffers {
		return fmt.Errorf("the viewer sent an offer, but in this session the device offers")
	}
	if pc.RemoteDescription() != nil {
		return fmt.Errorf("a second offer: renegotiation is not supported")
	}
	var sd webrtc.SessionDescription
	if err := json.Unmarshal(m.Payload, &sd); err != nil {
		return refuse(signalwire.CodeBadOffer, "offer payload: %v", err)
	}
	if sd.Type != webrtc.SDPTypeOffer {
		return refuse(signalwire.CodeBadOffer, "offer payload has type %q", sd.Type)
	}
	viewerOffer := sd.SDP // as the viewer sent it: the answer's signature binds it
	if k := whepResumeKey(viewerOffer); k != nil {
		s.resumeKey = k
		s.dev.addResumable(s)
	}
	var local []string
	sd.SDP, local = s.filterCandidates(sd.SDP)
	if !s.mayTalk {
		// pion would answer a section the viewer sends on with one that
		// receives, track or not: the viewer is told in the answer
		// itself that its audio is not taken.
		var err error
		if sd.SDP, err = viewerSendsNoAudio(sd.SDP); err != nil {
			return refuse(signalwire.CodeBadOffer, "cannot use the offer: %v", err)
		}
	}
	if err := pc.SetRemoteDescription(sd); err != nil {
		return refuse(signalwire.CodeBadOffer, "cannot use the offer: %v", err)
	}
	s.viewerOffer = sd.SDP
	s.addLocalCandidates(pc, local)
	if st := s.dev.cfg.Streams[s.stream]; st != nil {
		// An H.265 stream's track cannot be sent to an offer without H.265:
		// say so rather than answer with no video.
		if c, _ := st.VideoCodec(); c == media.VideoH265 && !strings.Contains(strings.ToUpper(viewerOffer), " H265/90000") {
			return refuse(signalwire.CodeUnsupported, "%v", errNoH265)
		}
	}
	if !sendsVideo(pc) {
		return refuse(signalwire.CodeBadOffer, "the offer does not receive video (it needs a recvonly or sendrecv video section with H.264)")
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return refuse(signalwire.CodeBadOffer, "cannot answer the offer: %v", err)
	}
	// The promise must exist before gathering starts, which
	// SetLocalDescription does.
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return refuse(signalwire.CodeBadOffer, "cannot answer the offer: %v", err)
	}
	t := time.NewTimer(answerGatherTimeout)
	select {
	case <-gathered:
	case <-t.C:
		s.log.Debug("answering before ICE gathering finished", "waited", answerGatherTimeout)
	}
	t.Stop()
	desc := pc.LocalDescription() // with the candidates gathered so far
	if s.talkSink() != nil && offerSendsAudio(viewerOffer) {
		// Told before the answer, so the bridge can say it beside it.
		if s.mayTalk {
			s.tell(talkReady, "", "")
		} else {
			s.log.Info("talkback refused: the viewer's audio section is answered as not received", "reason", s.talkWhy)
			s.tell(talkRefused, "", s.talkWhy)
		}
	}
	payload, err := s.signAnswer(viewerOffer, desc.SDP)
	if err != nil {
		return refuse(signalwire.CodeBadOffer, "%v", err)
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if err := s.conn.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "answer", SID: s.sid, Payload: payload}); err != nil {
		return err
	}
	s.offerSent = true
	// Candidates found while we waited are in the answer already; send
	// only those that came after it was taken.
	for _, c := range s.pending {
		if !candidateIn(c, desc.SDP) {
			if err := s.conn.Send(c); err != nil {
				return err
			}
		}
	}
	s.pending = nil
	s.log.Info("answered the viewer's offer")
	return nil
}

// sendsVideo reports whether the remote offer gave our video track a media
// section to be sent on.
func sendsVideo(pc *webrtc.PeerConnection) bool {
	for _, tr := range pc.GetTransceivers() {
		if tr.Kind() != webrtc.RTPCodecTypeVideo || tr.Sender() == nil || tr.Sender().Track() == nil || tr.Mid() == "" {
			continue
		}
		switch tr.Direction() {
		case webrtc.RTPTransceiverDirectionSendonly, webrtc.RTPTransceiverDirectionSendrecv:
			return true
		}
	}
	return false
}

// candidateIn reports whether the candidate message m is a line of sdp.
func candidateIn(m *signalwire.Message, sdp string) bool {
	var p ersproto.CandidatePayload
	if json.Unmarshal(m.Payload, &p) != nil || p.Candidate.Candidate == "" {
		return false
	}
	return strings.Contains(sdp, "a="+p.Candidate.Candidate+"\r\n")
}

// watchConnect ends the session if the viewer has not connected within the
// device's ConnectTimeout. stop cancels the watch and waits for it.
func (s *session) watchConnect(pc *webrtc.PeerConnection) (stop func()) {
	timeout := s.dev.cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-quit:
			return
		case <-t.C:
		}
		s.mu.Lock()
		ok := s.stat.everConnected
		s.mu.Unlock()
		if ok {
			return // a later failure is handled by the connection state
		}
		s.log.Info("viewer did not connect in time; ending its session", "timeout", timeout)
		s.end(&signalwire.Message{Kind: signalwire.KindLeave, Reason: fmt.Sprintf("the viewer did not connect within %v", timeout)})
	}()
	return func() { close(quit); <-done }
}
