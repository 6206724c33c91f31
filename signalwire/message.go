package signalwire

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ProtocolID is the libp2p protocol of a signalling stream.
const ProtocolID = "/ersmesh/signal/1.0.0"

// Kind says what a Message is.
type Kind string

// The kinds of message on a signalling stream.
const (
	// KindJoin is the bridge's first message: a viewer wants a stream.
	KindJoin Kind = "join"
	// KindAccept is the device's answer to a join it will serve.
	KindAccept Kind = "accept"
	// KindReject is the device's answer to a join it refuses; Reason says why.
	KindReject Kind = "reject"
	// KindSignal carries one ERS signalling message (Type, SID, Payload).
	KindSignal Kind = "signal"
	// KindPing keeps an idle session alive; it needs no answer.
	KindPing Kind = "ping"
	// KindLeave ends the session; Reason may say why. With Code
	// CodeDetach it ends only this stream's relay (see KindResume).
	KindLeave Kind = "leave"
	// KindResume is a bridge's first message instead of a join: a viewer
	// whose session came through another bridge re-attaches its signalling
	// here (Room, SID). The device answers with a "resumeChallenge" signal,
	// relays the viewer's "resumeProof", then accepts or rejects.
	KindResume Kind = "resume"
)

// Limits on what a peer may send. They bound memory per session, not
// protocol features: an SDP offer with many candidates is a few KiB.
const (
	MaxMessageSize = 64 << 10
	maxShortField  = 256
	maxToken       = 1024
	maxNonce       = 64
	maxResumeKey   = 128
	maxSecretProof = 256 // trust.MaxWHEPProof
	maxRelay       = 128
	maxReason      = 512
	maxICEServers  = 16
	maxICEURLs     = 8
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid signalling message")

// ICEServer is an RTCIceServer as the browser and pion know it.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Message is one message on a signalling stream. Which fields are set depends
// on Kind; Validate checks that.
type Message struct {
	Kind Kind `json:"kind"`

	// Join: who is asking for what.
	Session   string `json:"session,omitempty"` // the viewer's id at the bridge, for logs
	Room      string `json:"room,omitempty"`
	Stream    string `json:"stream,omitempty"`
	Transport string `json:"transport,omitempty"` // "srtp" or "fmp4"
	Token     string `json:"token,omitempty"`
	// Nonce is the player's fresh value the device binds its offer
	// signature to (package trust), so that no bridge can replay an offer.
	Nonce      string      `json:"nonce,omitempty"`
	ICEServers []ICEServer `json:"iceServers,omitempty"`
	// ViewerOffers says the viewer brings its own offer (WHEP): the bridge
	// sends it as the session's first signal and the device answers,
	// instead of the device offering (the ERS flow).
	ViewerOffers bool `json:"viewerOffers,omitempty"`
	// ResumeKey is the viewer's public key (base64 of an uncompressed
	// P-256 point) that a later resume must prove possession of; the join's
	// Nonce is then its hash, so the device's signed offer binds it and no
	// bridge can swap in a key of its own (package trust, resume.go).
	ResumeKey string `json:"resumeKey,omitempty"`
	// SecretProof is a WHEP client's proof of the room secret or the
	// stream's talk secret (its Ersmesh-Secret-Proof header, package
	// trust), relayed untouched: the device checks it against the DTLS
	// fingerprint of the offer it answers.
	SecretProof string `json:"secretProof,omitempty"`
	// Relay is the fingerprint of the viewer's DTLS certificate when it
	// speaks the relay protocol (docs/relay.md): it may then be served by
	// another viewer.
	Relay string `json:"relay,omitempty"`

	// Signal: an ERS message; Payload is relayed untouched.
	Type    string          `json:"type,omitempty"` // offer, answer, candidate, ...
	SID     string          `json:"sid,omitempty"`  // the WebRTC session id the player echoes
	Payload json.RawMessage `json:"payload,omitempty"`

	// Reject and Leave. Code, when set, is one of the Code constants (or a
	// newer one a bridge may not know): it lets a bridge map a refusal onto
	// a status, such as an HTTP status for WHEP, without parsing Reason.
	Reason string `json:"reason,omitempty"`
	Code   string `json:"code,omitempty"`
}

// Codes of a reject or leave.
const (
	// CodeNotFound: the device does not serve this room or stream.
	CodeNotFound = "not-found"
	// CodeUnauthorized: the room needs a token and the join carried none.
	CodeUnauthorized = "unauthorized"
	// CodeForbidden: the join's token does not open this room.
	CodeForbidden = "forbidden"
	// CodeUnsupported: the device does not support what the join asks for
	// (a transport, or answering the viewer's offer).
	CodeUnsupported = "unsupported"
	// CodeBadOffer: the viewer's offer cannot be used (malformed SDP, no
	// video to receive).
	CodeBadOffer = "bad-offer"
	// CodeFull: neither the device's uplink nor any relaying viewer can
	// take another viewer (docs/relay.md).
	CodeFull = "full"
	// CodeDetach, on a bridge's leave: the bridge stops relaying (it shuts
	// down, or the viewer's socket dropped without a leave) but the viewer
	// may re-attach its session through another bridge (KindResume): the
	// device keeps the PeerConnection while it is connected.
	CodeDetach = "detach"
)

// maxCode bounds a code; codes are short lowercase words joined by "-".
const maxCode = 32

// Signal types a device or player may send. Others are refused so that a
// bridge cannot be used to smuggle arbitrary events.
var signalTypes = map[string]bool{
	"offer": true, "answer": true, "candidate": true,
	"connectivityError": true, "mute": true, "unmute": true,
	// Room-secret authorisation (package trust): the device's challenge,
	// the player's proof.
	"challenge": true, "auth": true,
	// Resuming a session through another bridge: the device's challenge,
	// the viewer's signature over it; and the viewer asking for an ICE
	// restart (the device then sends a new offer for the same session).
	"resumeChallenge": true, "resumeProof": true, "restart": true,
	// Talkback (node/talkback.go): the device tells a viewer what became
	// of its audio (talking, busy, refused, released, failed).
	"talkback": true,
	// Relaying (docs/relay.md): the device assigns parents and children,
	// routes their negotiation, and hears their capacity and reports.
	"relayAssign": true, "relayChild": true, "relaySignal": true,
	"relayEnd": true, "relayReady": true, "relayReport": true,
}

// Validate reports whether m is well formed for its kind.
func (m *Message) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	for name, v := range map[string]string{
		"session": m.Session, "room": m.Room, "stream": m.Stream,
		"transport": m.Transport, "type": m.Type, "sid": m.SID,
	} {
		if len(v) > maxShortField {
			return bad("%s is longer than %d bytes", name, maxShortField)
		}
	}
	if len(m.Nonce) > maxNonce {
		return bad("nonce is longer than %d bytes", maxNonce)
	}
	if len(m.ResumeKey) > maxResumeKey {
		return bad("resume key is longer than %d bytes", maxResumeKey)
	}
	if len(m.SecretProof) > maxSecretProof {
		return bad("secret proof is longer than %d bytes", maxSecretProof)
	}
	if len(m.Relay) > maxRelay {
		return bad("relay fingerprint is longer than %d bytes", maxRelay)
	}
	if len(m.Token) > maxToken {
		return bad("token is longer than %d bytes", maxToken)
	}
	if len(m.Reason) > maxReason {
		return bad("reason is longer than %d bytes", maxReason)
	}
	if len(m.Code) > maxCode {
		return bad("code is longer than %d bytes", maxCode)
	}
	for _, r := range m.Code {
		if (r < 'a' || r > 'z') && r != '-' {
			return bad("code %q is not lowercase letters and dashes", m.Code)
		}
	}
	if len(m.ICEServers) > maxICEServers {
		return bad("more than %d ICE servers", maxICEServers)
	}
	for _, s := range m.ICEServers {
		if len(s.URLs) == 0 || len(s.URLs) > maxICEURLs {
			return bad("an ICE server needs 1 to %d urls", maxICEURLs)
		}
		for _, u := range s.URLs {
			if len(u) > maxShortField {
				return bad("ICE server url is longer than %d bytes", maxShortField)
			}
		}
		if len(s.Username) > maxShortField || len(s.Credential) > maxShortField {
			return bad("ICE server credentials are longer than %d bytes", maxShortField)
		}
	}
	switch m.Kind {
	case KindJoin:
		if m.Room == "" {
			return bad("join without a room")
		}
		switch m.Transport {
		case "", "srtp", "fmp4":
		default:
			return bad("unknown transport %q", m.Transport)
		}
	case KindResume:
		if m.Room == "" || m.SID == "" {
			return bad("resume without a room or session id")
		}
	case KindSignal:
		if !signalTypes[m.Type] {
			return bad("unknown signal type %q", m.Type)
		}
		if len(m.Payload) > 0 && !json.Valid(m.Payload) {
			return bad("payload is not JSON")
		}
	case KindAccept, KindReject, KindPing, KindLeave:
	default:
		return bad("unknown kind %q", m.Kind)
	}
	return nil
}
