package node

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/relay"
	"github.com/ersmesh/ersmesh/signalwire"
	"github.com/ersmesh/ersmesh/trust"
)

// session is one viewer: one signalling stream from a bridge and one
// PeerConnection. Its run goroutine (the stream handler's) owns both.
type session struct {
	dev *Device
	// conn and bridge are the signalling stream and its bridge. The run
	// goroutine swaps them when the viewer re-attaches through another
	// bridge (resume.go), under cmu; other goroutines read them with
	// current and currentBridge, or send with send. conn is nil while the
	// session is detached.
	cmu    sync.Mutex
	conn   *signalwire.Conn
	bridge peer.ID
	log    *slog.Logger

	// resumeKey is the viewer's key for re-attaching (nil: the session
	// ends with its stream). attach takes resumed streams to the run
	// goroutine; quit is closed by end; done when run has returned.
	resumeKey *ecdsa.PublicKey
	attach    chan *attachment
	quit      chan struct{}
	quitOnce  sync.Once
	done      chan struct{}
	// answerFP is the DTLS fingerprint of the viewer's first answer: a
	// later answer (ICE restart) must carry the same.
	answerFP string
	// viewerOffer is a WHEP viewer's offer as applied (answer.go): an ICE
	// restart applies it again with the viewer's new credentials.
	viewerOffer string
	// ctx ends with the device, or with the session's room (StopRoom,
	// cause errRoomStopped).
	ctx    context.Context
	cancel context.CancelCauseFunc

	sid string // the WebRTC session id the player echoes in its messages

	room, stream, nonce string // what the offer's signature is bound to
	// fingerprint is the DTLS fingerprint the viewer proved the room
	// secret for; its answer must carry it. "" for rooms without a secret.
	fingerprint string
	// mayTalk says the viewer proved what lets it talk (decideTalk);
	// talkWhy is what a viewer that may not is told.
	mayTalk bool
	talkWhy string
	// firstOffer is an answer-mode viewer's offer, read before the
	// PeerConnection exists to check its proof (whepauth.go).
	firstOffer *signalwire.Message
	// gate holds the media of a room-secret session back until the DTLS
	// certificate is checked (dtlsgate.go); nil without a secret.
	gate *dtlsGate
	// offerSDP is the offer we sent, which the viewer's answer must match.
	offerSDP string
	// early holds viewer candidates that came before its answer; only the
	// run goroutine touches it.
	early []webrtc.ICECandidateInit

	// note is told to the viewer in the offer (srtp without audio, say).
	note string
	// detach ends the media delivery to this viewer (see fmp4.go, srtp.go).
	detach func()
	// fmp4, for the fmp4 transport: what starts the stream when the
	// answer asks for it (push).
	fmp4 *fmp4Viewer

	// sendMu orders our description (offer, or answer in answer mode)
	// before the candidates trickled after it. It is held across those
	// sends, so it guards nothing but offerSent and pending: a bridge slow
	// to take them holds up no reader of the session's state (mu).
	sendMu    sync.Mutex
	offerSent bool // our description went out
	pending   []*signalwire.Message

	// The talk readers (talkback.go): talkMu guards talkClosed and the
	// WaitGroup's Go against closeTalk's Wait; talkQuit is closed with it.
	talkMu     sync.Mutex
	talkClosed bool
	talkQuit   chan struct{}
	talkWG     sync.WaitGroup

	mu        sync.Mutex // guards stat, streaming, ended, resolving, and orders events
	stat      ViewerInfo // what Device.Viewers reports
	resolving int        // mDNS names being resolved (addLocalCandidate)
	streaming bool       // EventPeerStreamStarted was emitted
	ended     bool       // the PeerConnection is closed: no more stream events
}

// sessionSID returns a random id for the ERS message "sid" field.
func sessionSID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// run serves the session whose stream opened with join (any other first
// message is refused).
func (s *session) run(join *signalwire.Message) {
	s.log = s.dev.log.With("bridge", s.bridge)
	if join.Kind != signalwire.KindJoin {
		s.log.Warn("signalling stream did not start with a join", "kind", join.Kind)
		s.conn.Reset()
		return
	}
	s.log = s.log.With("session", join.Session, "room", join.Room, "stream", join.Stream)
	stream, err := s.admit(join)
	if err != nil {
		s.log.Info("viewer refused", "reason", err)
		s.conn.Send(&signalwire.Message{Kind: signalwire.KindReject, Reason: err.Error(), Code: refusalCode(err)})
		s.conn.Close()
		return
	}
	s.joined(join)
	s.room, s.nonce = join.Room, join.Nonce
	s.stream = cmp.Or(join.Stream, stream.Name()) // signed with the offer or answer
	s.sid = sessionSID()
	// Without a room secret the device decides at once whether it serves
	// the viewer itself, through a relay, or not at all (relay.go); with
	// one, only after the viewer proved it.
	secret := s.dev.secret(join.Room) != ""
	var where placement
	var assign outbox
	if !secret {
		var reason string
		where, assign, reason = s.place(join)
		if where == placeFull {
			s.log.Info("viewer refused", "reason", reason)
			s.conn.Send(&signalwire.Message{Kind: signalwire.KindReject, Reason: reason, Code: signalwire.CodeFull})
			s.conn.Close()
			return
		}
	}
	defer s.dev.relay.leave(s)
	if !s.dev.serves(join.Room) {
		// StopRoom ran between admit and joined, and did not see us.
		s.log.Info("viewer refused: room stopped")
		s.conn.Send(&signalwire.Message{Kind: signalwire.KindReject, Reason: fmt.Sprintf("room %q is not served by this device", join.Room), Code: signalwire.CodeNotFound})
		s.conn.Close()
		return
	}
	// A bridge relaying a viewer keeps its connection through trimming
	// (the hold moves with a resume).
	release := s.dev.protector.Hold(s.bridge)
	defer func() { release() }()

	// From here on, the session's context ending (Close, StopRoom) must
	// unblock Recv. Say goodbye and let the loop close the stream
	// cleanly, so the leave reaches the bridge and the player.
	stop := context.AfterFunc(s.ctx, func() {
		if errors.Is(context.Cause(s.ctx), errRoomStopped) {
			s.end(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "room stopped on the device"})
			return
		}
		s.end(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "device shutting down"})
	})
	defer stop()

	if err := s.conn.Send(&signalwire.Message{Kind: signalwire.KindAccept}); err != nil {
		s.log.Warn("send accept", "err", err)
		s.conn.Reset()
		return
	}
	s.log.Info("viewer joined", "transport", transportOf(join))
	// No PeerConnection, and so no media, before the viewer is authorised.
	if join.ViewerOffers {
		err = s.authorizeWHEP(join)
	} else {
		var talk bool
		if s.fingerprint, talk, err = s.authorize(join); err == nil {
			s.decideTalk(s.dev.secret(join.Room) != "" && s.fingerprint != "", talk)
		}
	}
	if err == nil && secret {
		var reason string
		if where, assign, reason = s.place(join); where == placeFull {
			s.log.Info("viewer refused", "reason", reason)
			s.conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: reason, Code: signalwire.CodeFull})
			s.conn.Close()
			return
		}
	}
	if err != nil {
		s.log.Warn("viewer refused", "reason", err)
		s.conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: err.Error(), Code: refusalCode(err)})
		s.conn.Close()
		return
	}
	if where == placeRelayed {
		s.log.Info("viewer served by a relay")
		assign.flush()
		s.serveRelayed()
		return
	}
	// A WHEP viewer's key comes with its offer (answer.go): the removal is
	// deferred for both.
	defer s.dev.removeResumable(s)
	if s.resumeKey = resumeKey(join); s.resumeKey != nil {
		s.dev.addResumable(s)
	}
	pc, err := s.newPeerConnection(join, stream)
	if err != nil {
		s.log.Error("create peer connection", "err", err)
		s.conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "device could not create a peer connection"})
		s.conn.Close()
		return
	}
	s.peerCreated()
	defer func() {
		pc.Close()
		s.closeTalk()
		s.detach()
		if s.gate != nil {
			s.gate.wg.Wait()
		}
		s.peerClosed()
	}()

	// While detached there is nobody to ping; a broken stream is the run
	// loop's to notice, so pinging goes on whatever send says.
	defer signalwire.KeepAlive(signalwire.PingInterval, func(m *signalwire.Message) error {
		s.send(m)
		return nil
	})()

	if join.ViewerOffers {
		// Answer mode (WHEP): the viewer's offer, read by authorizeWHEP,
		// is answered first. See answer.go.
		defer s.watchConnect(pc)()
		if err := s.apply(pc, join, s.firstOffer); err != nil {
			s.log.Warn("cannot answer the viewer's offer", "err", err)
			s.conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: err.Error(), Code: refusalCode(err)})
			s.conn.Close()
			return
		}
	} else if err := s.offer(pc); err != nil {
		s.log.Error("send offer", "err", err)
		s.conn.Reset()
		return
	}
	msgs := rate.NewLimiter(sessionMsgRate, sessionMsgBurst)
	for {
		m, err := s.conn.Recv(signalwire.IdleTimeout)
		if err != nil {
			if s.ending() {
				s.log.Info("viewer session ended", "err", err)
				s.conn.Close() // we said goodbye: let the leave reach the bridge
				return
			}
			if errors.Is(err, signalwire.ErrInterrupted) {
				// A resume through another bridge took over (resume.go).
				s.conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Code: signalwire.CodeDetach, Reason: "the viewer re-attached through another bridge"})
				s.conn.Close()
			} else {
				s.conn.Reset()
			}
			if !s.resumable() {
				s.log.Info("viewer session ended", "err", err)
				return
			}
			if !s.waitResume() {
				return
			}
			release()
			release = s.dev.protector.Hold(s.bridge)
			continue
		}
		if !msgs.Allow() {
			s.log.Warn("viewer sends signalling messages too fast; ending its session", "limit_per_second", sessionMsgRate)
			s.conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "too many signalling messages"})
			s.conn.Close()
			return
		}
		switch m.Kind {
		case signalwire.KindLeave:
			if m.Code == signalwire.CodeDetach && s.resumable() {
				// The bridge stops relaying, not the viewer watching.
				s.log.Info("bridge let go of the session", "reason", m.Reason)
				s.conn.Close()
				if !s.waitResume() {
					return
				}
				release()
				release = s.dev.protector.Hold(s.bridge)
				continue
			}
			s.log.Info("viewer left", "reason", m.Reason)
			s.conn.Close()
			return
		case signalwire.KindPing:
		case signalwire.KindSignal:
			if err := s.apply(pc, join, m); err != nil {
				// One bad message from a viewer ends only that viewer's session.
				s.log.Warn("bad signalling message from viewer", "type", m.Type, "err", err)
				s.conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: err.Error(), Code: refusalCode(err)})
				s.conn.Close()
				return
			}
		default:
			s.log.Warn("unexpected message", "kind", m.Kind)
		}
	}
}

// admit decides whether this device serves the join, and with which stream.
func (s *session) admit(join *signalwire.Message) (*media.Stream, error) {
	if !s.dev.serves(join.Room) {
		return nil, refuse(signalwire.CodeNotFound, "room %q is not served by this device", join.Room)
	}
	if err := s.dev.authorize(join); err != nil {
		return nil, err
	}
	switch join.Transport {
	case "", "srtp", "fmp4":
	default:
		return nil, refuse(signalwire.CodeUnsupported, "transport %q is not supported by this device; use fmp4 or srtp", join.Transport)
	}
	streams := s.dev.cfg.Streams
	if join.Stream == "" && len(streams) == 1 {
		for _, st := range streams {
			return st, nil
		}
	}
	if st, ok := streams[join.Stream]; ok {
		return st, nil
	}
	names := streamNames(streams)
	sort.Strings(names)
	return nil, refuse(signalwire.CodeNotFound, "stream %q not found; this device serves: %s", join.Stream, strings.Join(names, ", "))
}

func (s *session) newPeerConnection(join *signalwire.Message, stream *media.Stream) (*webrtc.PeerConnection, error) {
	var servers []webrtc.ICEServer
	servers, refused := s.dev.ice.iceServers(s.ctx, join.ICEServers)
	if refused > 0 {
		s.dev.trustRefused(refusedICEServer, refused)
		s.dev.proofs.log.Warn("ice:"+s.bridge.String(), "refused STUN/TURN URLs from a bridge: local or private addresses, unresolvable names, or too many", "refused", refused, "limit", maxICEURLs)
	}
	// A viewer that offered (WHEP) cannot ask us for an ICE restart: fail
	// its dead path fast. Ours ask for one when their path changes: give
	// the request time to come through a bridge.
	api := s.dev.api
	if !join.ViewerOffers {
		api = s.dev.apiRestart
	}
	pc, batch, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: servers})
	if err != nil {
		return nil, err
	}
	if s.fingerprint != "" {
		s.gate = newDTLSGate(s.fingerprint, func(got string) {
			s.dev.trustRefused(refusedCertificate)
			s.log.Warn("viewer refused: its DTLS certificate is not the one it proved the room secret for", "proven", s.fingerprint, "negotiated", got)
			s.conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: errUnauthorized.Error() + ": the DTLS certificate is not the one the room secret was proven for"})
			s.conn.Interrupt()
		})
		s.gate.watch(pc)
	}
	sink := s.talkSink()
	if transportOf(join) == "fmp4" {
		s.note = fmp4Note(stream)
		s.fmp4, err = attachFMP4Viewer(pc, batch, s.dev.cfg.Streams, s.log, s.gate, s.dev.relay.signing)
		if err == nil {
			s.detach = s.fmp4.detach
		}
		if err == nil && sink != nil {
			err = addTalkReceiver(pc)
		}
	} else {
		// An ERS viewer's offer always has the section that receives, so
		// the device can tell a viewer who may not talk why in-band; a
		// WHEP viewer's answer has one only when it may talk.
		takeTalk := sink != nil && (!join.ViewerOffers || s.mayTalk)
		s.note, s.detach, err = attachSRTP(pc, batch, stream, s.log, s.gate, takeTalk)
	}
	if err != nil {
		pc.Close()
		return nil, err
	}
	if sink != nil {
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			if tr.Kind() == webrtc.RTPCodecTypeAudio {
				s.onTalkTrack(tr, sink)
			}
		})
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		payload, err := json.Marshal(map[string]any{"candidate": c.ToJSON()})
		if err != nil {
			return
		}
		s.sendCandidate(&signalwire.Message{Kind: signalwire.KindSignal, Type: "candidate", SID: s.sid, Payload: payload})
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.log.Info("peer connection", "state", st.String())
		s.setState(st)
		switch st {
		case webrtc.PeerConnectionStateConnected:
			s.streamStarted()
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			// The viewer is unreachable, or closed its side (DTLS
			// close_notify) without a word, as WHEP clients may: end the
			// session so the bridge tells the player, which can join again.
			// After the session's own pc.Close this only fails to send.
			s.end(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "peer connection " + st.String()})
		}
	})
	return pc, nil
}

// sendCandidate sends a local candidate, or holds it until the offer has
// gone out: ERS players may drop a candidate that arrives before the offer.
func (s *session) sendCandidate(m *signalwire.Message) {
	s.sendMu.Lock()
	if !s.offerSent {
		s.pending = append(s.pending, m)
		s.sendMu.Unlock()
		return
	}
	s.sendMu.Unlock()
	s.send(m)
}

func (s *session) offer(pc *webrtc.PeerConnection) error {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	sd := *pc.LocalDescription()
	sd.SDP = withSessionInfo(sd.SDP, s.note)
	s.offerSDP = sd.SDP
	payload, err := s.signOffer(sd.SDP)
	if err != nil {
		return err
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if err := s.conn.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "offer", SID: s.sid, Payload: payload}); err != nil {
		return err
	}
	s.offerSent = true
	for _, m := range s.pending {
		if err := s.conn.Send(m); err != nil {
			return err
		}
	}
	s.pending = nil
	return nil
}

// apply handles one signalling message from the viewer.
// maxEarlyCandidates bounds the candidates kept until the viewer's answer.
const maxEarlyCandidates = 64

func (s *session) addCandidate(pc *webrtc.PeerConnection, c webrtc.ICECandidateInit) {
	s.mu.Lock()
	full := s.stat.RemoteCandidates >= maxRemoteCandidates
	s.mu.Unlock()
	if full {
		return // each candidate is ICE work; no honest viewer has this many
	}
	if !s.dev.ice.candidateOK(c.Candidate) {
		s.dev.trustRefused(refusedCandidate, 1)
		s.log.Debug("refused remote candidate: a local address, or not one of this device's networks", "candidate", c.Candidate)
		return
	}
	if name := candidateAddress(c.Candidate); isLocalName(name) {
		s.addLocalCandidate(pc, c, name)
		return
	}
	if err := pc.AddICECandidate(c); err != nil {
		// A candidate we cannot use (an address family we lack) is not a
		// reason to end the session.
		s.log.Debug("ignore remote candidate", "candidate", c.Candidate, "err", err)
		return
	}
	s.countCandidate()
}

// maxResolving bounds the mDNS names a session resolves at once: a browser
// sends one or two.
const maxResolving = 8

// addLocalCandidate resolves a candidate's mDNS name with the device's one
// resolver (localnames.go) and hands pion the candidate with the address,
// in the background as pion's own resolution would: the session goes on
// meanwhile, and its end (s.ctx) ends the query. An address the policy
// refuses is refused as one sent in the clear.
func (s *session) addLocalCandidate(pc *webrtc.PeerConnection, c webrtc.ICECandidateInit, name string) {
	s.mu.Lock()
	busy := s.resolving >= maxResolving
	if !busy {
		s.resolving++
	}
	s.mu.Unlock()
	if busy {
		s.log.Debug("ignore remote candidate: too many mDNS names at once", "candidate", c.Candidate)
		return
	}
	s.dev.wg.Add(1) // the session's own count holds the group open meanwhile
	go func() {
		defer s.dev.wg.Done()
		defer func() {
			s.mu.Lock()
			s.resolving--
			s.mu.Unlock()
		}()
		a, err := s.dev.names.resolve(s.ctx, name)
		if err != nil {
			s.log.Debug("ignore remote candidate: mDNS name not resolved", "candidate", c.Candidate, "err", err)
			return
		}
		if !s.dev.ice.candidateAllowed(a) {
			s.dev.trustRefused(refusedCandidate, 1)
			s.log.Debug("refused remote candidate: its mDNS name is a local address, or not one of this device's networks", "candidate", c.Candidate, "address", a)
			return
		}
		if c.Candidate, err = withAddress(c.Candidate, a); err == nil {
			err = pc.AddICECandidate(c)
		}
		if err != nil {
			s.log.Debug("ignore remote candidate", "candidate", c.Candidate, "err", err)
			return
		}
		s.countCandidate()
	}()
}

// addLocalCandidates resolves and adds, in the background, the mDNS
// candidates that filterCandidates took out of a remote description.
func (s *session) addLocalCandidates(pc *webrtc.PeerConnection, lines []string) {
	for _, l := range lines {
		s.addLocalCandidate(pc, webrtc.ICECandidateInit{Candidate: l}, candidateAddress(l))
	}
}

func (s *session) apply(pc *webrtc.PeerConnection, join *signalwire.Message, m *signalwire.Message) error {
	switch m.Type {
	case "offer":
		return s.answer(pc, join, m)
	case "answer":
		var sd webrtc.SessionDescription
		if err := json.Unmarshal(m.Payload, &sd); err != nil {
			return fmt.Errorf("answer payload: %w", err)
		}
		if sd.Type != webrtc.SDPTypeAnswer {
			return fmt.Errorf("answer payload has type %q", sd.Type)
		}
		// Every fingerprint of the answer must be the one the viewer
		// proved the room secret for, or, for a later answer (to an ICE
		// restart), the one of the session's first answer: a bridge
		// relaying a resumed session cannot swap in its own certificate.
		want := cmp.Or(s.fingerprint, s.answerFP)
		if err := checkAnswer(s.offerSDP, sd.SDP, want); err != nil {
			s.dev.trustRefused(refusedAnswer)
			if want != "" {
				return fmt.Errorf("%w: %v", errUnauthorized, err)
			}
			return refuse(signalwire.CodeBadOffer, "%v", err)
		}
		if s.answerFP == "" {
			s.answerFP = trust.SDPFingerprint(sd.SDP)
		}
		var local []string
		sd.SDP, local = s.filterCandidates(sd.SDP)
		if err := pc.SetRemoteDescription(sd); err != nil {
			if r := explainAnswerError(s.dev.cfg.Streams[s.stream], err); r != err {
				return r
			}
			return fmt.Errorf("apply answer: %w", err)
		}
		s.addLocalCandidates(pc, local)
		for _, c := range s.early {
			s.addCandidate(pc, c)
		}
		s.early = nil
		// An ersmesh player's fmp4 answer carries the request it will send
		// on the command channel: the stream starts now and goes out as
		// soon as its channel opens (fmp4Viewer.push). Only the join's
		// stream, which the signed offer names: the answer comes through
		// the bridge, the request on the channel does not, and a bridge
		// must not get another stream played.
		var push struct {
			Request *struct {
				Name   string `json:"name"`
				Signed bool   `json:"signed"`
			} `json:"fmp4Request"`
		}
		if s.fmp4 != nil && json.Unmarshal(m.Payload, &push) == nil && push.Request != nil && push.Request.Name == s.stream {
			s.fmp4.push(fmp4Request{Name: push.Request.Name, Signed: push.Request.Signed})
		}
	case "candidate":
		var p ersproto.CandidatePayload
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			return fmt.Errorf("candidate payload: %w", err)
		}
		if p.Candidate.Candidate == "" {
			return nil // end of candidates
		}
		c := webrtc.ICECandidateInit{Candidate: p.Candidate.Candidate, SDPMid: p.Candidate.SDPMid, SDPMLineIndex: p.Candidate.SDPMLineIndex}
		if pc.RemoteDescription() == nil {
			// A viewer may trickle before its answer has arrived here: keep
			// a few for then rather than lose them.
			if len(s.early) < maxEarlyCandidates {
				s.early = append(s.early, c)
			}
			return nil
		}
		s.addCandidate(pc, c)
	case "restart":
		if join.ViewerOffers {
			return s.restartWHEP(pc, m) // the viewer's new ICE credentials (whep_restart.go)
		}
		return s.restartICE(pc)
	case relay.TypeReady, relay.TypeSignal, relay.TypeReport:
		return s.dev.relay.onMessage(s, m)
	case "connectivityError", "mute", "unmute":
		s.log.Debug("viewer event", "type", m.Type)
	}
	return nil
}

// filterCandidates removes the candidates of a remote description that the
// device's ICE policy refuses (icepolicy.go).
// It also takes out the candidates whose address is an mDNS name, which
// pion, its resolver off, would drop: they are returned for
// addLocalCandidates once the description is set.
func (s *session) filterCandidates(sdp string) (string, []string) {
	sdp, n := s.dev.ice.filterSDP(sdp)
	if n > 0 {
		s.dev.trustRefused(refusedCandidate, n)
		s.log.Debug("refused candidates in the remote description", "refused", n)
	}
	return takeLocalCandidates(sdp)
}
