package node

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/internal/keylimit"
	"github.com/ersmesh/ersmesh/internal/ratelog"
	"github.com/ersmesh/ersmesh/signalwire"
	"github.com/ersmesh/ersmesh/trust"
)

// authTimeout bounds the wait for a viewer's room-secret proof.
const authTimeout = 15 * time.Second

// errUnauthorized prefixes every refusal of a viewer's proof; the bridge
// passes the reason on and our player stops retrying on this word.
var errUnauthorized = errors.New("unauthorized")

// authorize runs the room-secret check when the room has a secret, or
// the stream a talk secret: the device sends a fresh challenge; the viewer
// answers with its DTLS fingerprint and HMAC(secret, room, challenge,
// fingerprint), and the same keyed with the talk secret if it has that.
// It returns the proven fingerprint, which the viewer's answer must then
// carry, so a bridge that saw the proof cannot use it with a certificate
// of its own, and whether the talk secret was proven. It returns "" for
// rooms without a secret whose viewer proved no talk secret.
func (s *session) authorize(join *signalwire.Message) (fingerprint string, talk bool, err error) {
	secret := s.dev.secret(join.Room)
	talkSecret := ""
	if s.talkSink() != nil {
		talkSecret = s.dev.cfg.TalkSecrets[s.stream]
	}
	if secret == "" && talkSecret == "" {
		return "", false, nil
	}
	challenge := trust.NewNonce()
	// "secret" says whether watching needs the room secret (a room open to
	// watch may still have a stream with a talk secret); "talk" whether a
	// talk proof is taken.
	payload, _ := json.Marshal(map[string]any{"challenge": challenge, "room": join.Room, "secret": secret != "", "talk": talkSecret != ""})
	if err := s.conn.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "challenge", SID: s.sid, Payload: payload}); err != nil {
		return "", false, err
	}
	for {
		m, err := s.conn.Recv(authTimeout)
		if err != nil {
			return "", false, fmt.Errorf("%w: no proof of the room secret from the viewer (%v)", errUnauthorized, err)
		}
		switch {
		case m.Kind == signalwire.KindPing:
			continue
		case m.Kind == signalwire.KindLeave:
			return "", false, fmt.Errorf("viewer left before proving the room secret")
		case m.Kind == signalwire.KindSignal && m.Type == "auth":
		default:
			continue // a candidate or event before the proof: nothing to act on yet
		}
		var p ersproto.Auth
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.Fingerprint == "" || len(p.Fingerprint) > 256 || len(p.Proof) > 256 || len(p.TalkProof) > 256 {
			return "", false, fmt.Errorf("%w: malformed proof of the room secret", errUnauthorized)
		}
		if secret == "" && (talkSecret == "" || p.TalkProof == "") {
			return "", false, nil // watching needs no secret, and the viewer proves none
		}
		// While the room or the bridge backs off, no proof is checked:
		// a right one refused like a wrong one tells a guesser nothing.
		if wait, ok := s.dev.proofs.backingOff(join.Room, s.bridge); ok {
			s.dev.trustRefused(refusedBackoff)
			s.dev.proofs.log.Warn(join.Room, "room-secret proof refused unchecked: too many wrong ones lately", "room", join.Room, "bridge", s.bridge)
			return "", false, fmt.Errorf("%w: too many wrong room secrets lately; try again in %v", errUnauthorized, wait.Round(time.Second))
		}
		if secret != "" && !trust.CheckProof(secret, join.Room, challenge, p.Fingerprint, p.Proof) {
			s.dev.proofs.wrong(join.Room, s.bridge)
			s.dev.trustRefused(refusedProof)
			s.dev.proofs.log.Warn(join.Room, "wrong room-secret proof", "room", join.Room, "bridge", s.bridge)
			return "", false, fmt.Errorf("%w: wrong room secret", errUnauthorized)
		}
		talk := talkSecret != "" && p.TalkProof != ""
		if talk && !trust.CheckProof(talkSecret, join.Room, challenge, p.Fingerprint, p.TalkProof) {
			// A wrong talk secret is a guess like a wrong room secret.
			s.dev.proofs.wrong(join.Room, s.bridge)
			s.dev.trustRefused(refusedProof)
			s.dev.proofs.log.Warn(join.Room, "wrong talk-secret proof", "room", join.Room, "bridge", s.bridge)
			return "", false, fmt.Errorf("%w: wrong talk secret", errUnauthorized)
		}
		return trust.NormalizeFingerprint(p.Fingerprint), talk, nil
	}
}

// signedOffer is the offer payload: the SDP description as ERS players
// read it, plus the device's signature over room, stream, the viewer's
// nonce and the SDP (package trust), which ERS players ignore. An answer
// to a viewer's offer (WHEP) has the same form, its signature over room,
// stream, the hash of the viewer's offer and the SDP.
type signedOffer struct {
	Type      string `json:"type"`
	SDP       string `json:"sdp"`
	Signature string `json:"signature,omitempty"`
}

func (s *session) signOffer(sdp string) ([]byte, error) {
	sig, err := trust.SignOffer(s.dev.key, s.room, s.stream, s.nonce, sdp)
	if err != nil {
		return nil, err
	}
	return json.Marshal(signedOffer{Type: "offer", SDP: sdp, Signature: sig})
}

func (s *session) signAnswer(viewerOffer, sdp string) ([]byte, error) {
	sig, err := trust.SignAnswer(s.dev.key, s.room, s.stream, viewerOffer, sdp)
	if err != nil {
		return nil, err
	}
	return json.Marshal(signedOffer{Type: "answer", SDP: sdp, Signature: sig})
}

// Why the device refused a viewer or a bridge's input on grounds of trust,
// as the "reason" label of ersmesh_device_trust_refused_total.
const (
	refusedProof       = "wrong_proof"      // a wrong room-secret proof
	refusedBackoff     = "backoff"          // a proof while its room or bridge is backing off
	refusedAnswer      = "answer"           // an answer unlike our offer, or with another fingerprint
	refusedCertificate = "dtls_certificate" // the negotiated certificate is not the proven one
	refusedICEServer   = "ice_server"       // a STUN/TURN URL naming a local or private address
	refusedCandidate   = "ice_candidate"    // a trickled candidate naming one
	refusedStale       = "stale_proof"      // a WHEP proof made too long ago (or ahead)
	refusedReplay      = "replayed_proof"   // a WHEP proof used before
)

var refusedReasons = []string{refusedProof, refusedBackoff, refusedAnswer, refusedCertificate, refusedICEServer, refusedCandidate, refusedStale, refusedReplay}

// trustCounters counts refusals by reason; read by the metrics collector.
type trustCounters struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (d *Device) trustRefused(reason string, n ...int) {
	d.trust.mu.Lock()
	defer d.trust.mu.Unlock()
	if d.trust.n == nil {
		d.trust.n = map[string]uint64{}
	}
	if len(n) == 0 {
		d.trust.n[reason]++
		return
	}
	d.trust.n[reason] += uint64(n[0])
}

// TrustRefusals returns how often the device refused a viewer or a
// bridge's input on grounds of trust, by reason.
func (d *Device) TrustRefusals() map[string]uint64 {
	d.trust.mu.Lock()
	defer d.trust.mu.Unlock()
	out := make(map[string]uint64, len(refusedReasons))
	for _, r := range refusedReasons {
		out[r] = d.trust.n[r]
	}
	return out
}

// Defaults of ProofLimits. An honest viewer gets its secret right at once
// or after a typo or two; a guesser needs thousands of tries for a PIN.
// With these, one bridge tests at most one guess every 10 s and all
// bridges together one every 3 s, after a first few: a 6-digit PIN takes
// about 17 days on average, a generated 128-bit secret forever.
const (
	DefaultWrongProofsPerRoomEvery   = 3 * time.Second
	DefaultWrongProofsPerRoomBurst   = 10
	DefaultWrongProofsPerBridgeEvery = 10 * time.Second
	DefaultWrongProofsPerBridgeBurst = 5
)

// ProofLimits bound the wrong room-secret proofs the device checks: a
// token bucket per room and one per bridge (the libp2p peer that relayed
// the proof). Each wrong proof takes a token; while either bucket is
// empty, every proof for that room or from that bridge is refused
// unchecked, right or wrong, so that the refusals tell a guesser nothing.
// Zero values mean the defaults.
type ProofLimits struct {
	PerRoomEvery, PerBridgeEvery time.Duration // one token back per
	PerRoomBurst, PerBridgeBurst int
}

func (l ProofLimits) withDefaults() ProofLimits {
	l.PerRoomEvery = cmp.Or(l.PerRoomEvery, DefaultWrongProofsPerRoomEvery)
	l.PerRoomBurst = cmp.Or(l.PerRoomBurst, DefaultWrongProofsPerRoomBurst)
	l.PerBridgeEvery = cmp.Or(l.PerBridgeEvery, DefaultWrongProofsPerBridgeEvery)
	l.PerBridgeBurst = cmp.Or(l.PerBridgeBurst, DefaultWrongProofsPerBridgeBurst)
	return l
}

// proofGuard keeps the buckets of ProofLimits, in keylimit tables (whose
// size is bounded: bridges choose their peer IDs, owners their rooms).
type proofGuard struct {
	rooms   *keylimit.Limiter[string]
	bridges *keylimit.Limiter[peer.ID]
	log     *ratelog.Keyed[string]
	lim     ProofLimits
}

func newProofGuard(l ProofLimits, log *slog.Logger) *proofGuard {
	l = l.withDefaults()
	return &proofGuard{
		rooms: keylimit.New(keylimit.Config[string]{Rate: rate.Every(l.PerRoomEvery), Burst: l.PerRoomBurst,
			MaxKeys: 4096, WhenFull: keylimit.Forget}),
		bridges: keylimit.New(keylimit.Config[peer.ID]{Rate: rate.Every(l.PerBridgeEvery), Burst: l.PerBridgeBurst,
			MaxKeys: 16384, WhenFull: keylimit.Forget}),
		log: ratelog.NewKeyed[string](log, time.Minute, time.Second, 20, 1024),
		lim: l,
	}
}

// backingOff reports whether proofs for room through bridge are refused
// now, and for about how long. It takes no token.
func (g *proofGuard) backingOff(room string, bridge peer.ID) (time.Duration, bool) {
	now := time.Now()
	if g.rooms.Tokens(room, now) < 1 {
		return g.lim.PerRoomEvery, true
	}
	if g.bridges.Tokens(bridge, now) < 1 {
		return g.lim.PerBridgeEvery, true
	}
	return 0, false
}

// wrong takes a token from both buckets for a wrong proof.
func (g *proofGuard) wrong(room string, bridge peer.ID) {
	g.rooms.Allow(room)
	g.bridges.Allow(bridge)
}

// weakSecret reports whether a room secret looks chosen by a person: short
// enough that offline guessing (by a bridge that relayed one proof) could
// find it, backoff or not. Generated secrets (ersmesh secret) are 22
// characters.
func weakSecret(s string) bool { return len(s) < 16 }

func (d *Device) warnWeakSecret(room, secret string) {
	if weakSecret(secret) {
		d.log.Warn("room secret is short: a bridge that relayed one viewer's proof can test guesses offline, as fast as it can compute; use ersmesh secret for a 128-bit one", "room", room, "length", len(secret))
	}
}
