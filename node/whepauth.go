package node

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/ersmesh/ersmesh/signalwire"
	"github.com/ersmesh/ersmesh/trust"
)

// A WHEP viewer proves a secret (the room's, to watch a protected room;
// the stream's talk secret, to talk) in its POST's Ersmesh-Secret-Proof
// header, which its bridge relays as the join's SecretProof (package trust
// says why no device challenge is needed). The device checks it against
// the DTLS fingerprint of the offer it answers, before it creates a
// PeerConnection; from then on the session is like an ERS one that proved
// that fingerprint: every fingerprint of the offer is the proven one, and
// the DTLS gate holds media and talk back until the negotiated certificate
// is that one.

// authorizeWHEP reads the viewer's offer (the bridge sends it right after
// the join) and checks the join's proof against it. It keeps the offer in
// s.firstOffer for the run loop, sets s.fingerprint when a proof held, and
// decides whether the viewer may talk.
func (s *session) authorizeWHEP(join *signalwire.Message) error {
	m, err := s.recvOffer()
	if err != nil {
		return err
	}
	s.firstOffer = m
	var sd struct {
		SDP string `json:"sdp"`
	}
	if err := json.Unmarshal(m.Payload, &sd); err != nil {
		return refuse(signalwire.CodeBadOffer, "offer payload: %v", err)
	}
	roomSecret := s.dev.secret(join.Room)
	talkSecret := s.dev.cfg.TalkSecrets[s.stream]
	if join.SecretProof == "" {
		if roomSecret != "" {
			return refuse(signalwire.CodeUnauthorized, "%v: room %q is protected by a room secret: prove it in the %s header (docs/protocol.md), or watch with the ersmesh player", errUnauthorized, join.Room, trust.WHEPProofHeader)
		}
		s.decideTalk(false, false)
		return nil
	}
	p, err := trust.ParseWHEPProof(join.SecretProof)
	if err != nil {
		return refuse(signalwire.CodeUnauthorized, "%v: %v", errUnauthorized, err)
	}
	fp, err := offerFingerprint(sd.SDP)
	if err != nil {
		return refuse(signalwire.CodeUnauthorized, "%v: %v", errUnauthorized, err)
	}
	if wait, ok := s.dev.proofs.backingOff(join.Room, s.bridge); ok {
		s.dev.trustRefused(refusedBackoff)
		s.dev.proofs.log.Warn(join.Room, "WHEP secret proof refused unchecked: too many wrong ones lately", "room", join.Room, "bridge", s.bridge)
		return refuse(signalwire.CodeUnauthorized, "%v: too many wrong secrets lately; try again in %v", errUnauthorized, wait.Round(time.Second))
	}
	now := time.Now()
	if !p.Fresh(now) {
		// Not a guess at the secret: nothing was checked.
		s.dev.trustRefused(refusedStale)
		return refuse(signalwire.CodeUnauthorized, "%v: the proof was made at %s, more than %v from the device's clock (%s)", errUnauthorized,
			time.UnixMilli(p.UnixMilli).UTC().Format(time.RFC3339), trust.WHEPProofWindow, now.UTC().Format(time.RFC3339))
	}
	check := func(secret, mac string) (given, ok bool) {
		if secret == "" || mac == "" {
			return false, false // nothing to prove, or not proven
		}
		return true, trust.CheckWHEPMAC(secret, join.Room, join.Stream, fp, p.UnixMilli, mac)
	}
	roomGiven, roomOK := check(roomSecret, p.Room)
	talkGiven, talkOK := check(talkSecret, p.Talk)
	if roomGiven && !roomOK || talkGiven && !talkOK {
		what := "room secret"
		if roomOK || !roomGiven {
			what = "talk secret"
		}
		s.dev.proofs.wrong(join.Room, s.bridge)
		s.dev.trustRefused(refusedProof)
		s.dev.proofs.log.Warn(join.Room, "wrong WHEP secret proof", "room", join.Room, "bridge", s.bridge, "secret", what)
		return refuse(signalwire.CodeUnauthorized, "%v: wrong %s (or a proof made for another offer, room or stream)", errUnauthorized, what)
	}
	if roomSecret != "" && !roomOK {
		return refuse(signalwire.CodeUnauthorized, "%v: room %q is protected by a room secret: the proof needs room=", errUnauthorized, join.Room)
	}
	if roomOK || talkOK {
		// Good once: the same proof again is a bridge replaying it.
		if err := s.dev.whepProofs.first(trust.WHEPProofMessage(join.Room, join.Stream, fp, p.UnixMilli), now); err != nil {
			s.dev.trustRefused(refusedReplay)
			s.dev.proofs.log.Warn(join.Room, "WHEP secret proof refused", "room", join.Room, "bridge", s.bridge, "err", err)
			return refuse(signalwire.CodeUnauthorized, "%v: %v", errUnauthorized, err)
		}
		s.fingerprint = fp
	}
	s.decideTalk(roomOK, talkOK)
	return nil
}

// recvOffer reads the viewer's offer, the first signal of an answer-mode
// session.
func (s *session) recvOffer() (*signalwire.Message, error) {
	for {
		m, err := s.conn.Recv(authTimeout)
		if err != nil {
			return nil, fmt.Errorf("no offer from the viewer (%v)", err)
		}
		switch {
		case m.Kind == signalwire.KindPing:
			continue
		case m.Kind == signalwire.KindLeave:
			return nil, fmt.Errorf("viewer left before its offer")
		case m.Kind == signalwire.KindSignal && m.Type == "offer":
			return m, nil
		}
		return nil, refuse(signalwire.CodeBadOffer, "the first signal of a WHEP session must be its offer, not %s %q", m.Kind, m.Type)
	}
}

// offerFingerprint returns the DTLS fingerprint of a viewer's offer. Every
// fingerprint line, at session and media level, must be the same one:
// pion picks one of them by rules of its own, and a proof bound to another
// would be walked around.
func offerFingerprint(offer string) (string, error) {
	if len(offer) > trust.MaxSDP {
		return "", fmt.Errorf("offer of %d bytes (limit %d)", len(offer), trust.MaxSDP)
	}
	var o sdp.SessionDescription
	if err := o.UnmarshalString(offer); err != nil {
		return "", fmt.Errorf("offer does not parse: %w", err)
	}
	fp := ""
	check := func(attrs []sdp.Attribute) error {
		for _, at := range attrs {
			if !strings.EqualFold(at.Key, "fingerprint") {
				continue
			}
			got := trust.NormalizeFingerprint(at.Value)
			if fp != "" && got != fp {
				return fmt.Errorf("the offer carries two DTLS fingerprints (%q and %q)", fp, got)
			}
			fp = got
		}
		return nil
	}
	if err := check(o.Attributes); err != nil {
		return "", err
	}
	for _, md := range o.MediaDescriptions {
		if err := check(md.Attributes); err != nil {
			return "", err
		}
	}
	if fp == "" {
		return "", fmt.Errorf("the offer carries no DTLS fingerprint")
	}
	return fp, nil
}

// offerSendsAudio reports whether a viewer's offer has an audio section
// the viewer sends on (sendrecv or sendonly): it wants to talk.
func offerSendsAudio(offer string) bool {
	var o sdp.SessionDescription
	if o.UnmarshalString(offer) != nil {
		return false
	}
	for _, md := range o.MediaDescriptions {
		if md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		dir := "sendrecv"
		for _, at := range md.Attributes {
			switch at.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				dir = at.Key
			}
		}
		if dir == "sendrecv" || dir == "sendonly" {
			return true
		}
	}
	return false
}

// viewerSendsNoAudio rewrites a viewer's offer as if none of its audio
// sections sent: sendrecv becomes recvonly, sendonly inactive.
func viewerSendsNoAudio(offer string) (string, error) {
	var o sdp.SessionDescription
	if err := o.UnmarshalString(offer); err != nil {
		return "", err
	}
	for _, md := range o.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		dir, at := "sendrecv", -1
		for i, a := range md.Attributes {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				dir, at = a.Key, i
			}
		}
		to := map[string]string{"sendrecv": "recvonly", "sendonly": "inactive"}[dir]
		switch {
		case to == "":
		case at >= 0:
			md.Attributes[at] = sdp.NewPropertyAttribute(to)
		default:
			md.Attributes = append(md.Attributes, sdp.NewPropertyAttribute(to))
		}
	}
	b, err := o.Marshal()
	return string(b), err
}

// decideTalk settles whether the viewer may talk, from the secrets it
// proved: the stream's talk secret when it has one, else the room secret.
// A stream of a room with neither has nobody who may talk.
func (s *session) decideTalk(roomProven, talkProven bool) {
	if s.talkSink() == nil {
		return
	}
	switch {
	case s.dev.cfg.TalkSecrets[s.stream] != "":
		s.mayTalk = talkProven
		s.talkWhy = "only viewers who proved the talk secret may talk to this camera"
	case s.dev.secret(s.room) != "":
		s.mayTalk = roomProven
		s.talkWhy = "only viewers who proved the room secret may talk to this camera"
	default:
		s.talkWhy = "only viewers who proved the room secret may talk to this camera, and this room has none"
	}
}

// maxWHEPProofs bounds the proofs a device remembers. Only proofs that
// verified are kept, so only holders of a secret can fill it; when full,
// new proofs are refused until old ones expire, rather than forgotten
// while still fresh (which would let them be replayed).
const maxWHEPProofs = 4096

// proofMemory remembers the WHEP proofs used within their freshness, so
// that each is good once.
type proofMemory struct {
	mu   sync.Mutex
	seen map[[sha256.Size]byte]time.Time // proof message hash → when it may be forgotten
}

// first records msg and reports whether it had not been used before.
func (m *proofMemory) first(msg []byte, now time.Time) error {
	key := sha256.Sum256(msg)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[[sha256.Size]byte]time.Time{}
	}
	if _, ok := m.seen[key]; ok {
		return fmt.Errorf("this proof was used before (a replay)")
	}
	if len(m.seen) >= maxWHEPProofs {
		for k, until := range m.seen {
			if now.After(until) {
				delete(m.seen, k)
			}
		}
		if len(m.seen) >= maxWHEPProofs {
			return fmt.Errorf("too many WHEP proofs in the last %v; try again later", 2*trust.WHEPProofWindow)
		}
	}
	// A proof is fresh up to a window after its time, which is at most a
	// window after now.
	m.seen[key] = now.Add(2 * trust.WHEPProofWindow)
	return nil
}
