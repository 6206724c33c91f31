package relay

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/trust"
)

// Signal types of relaying (ERS message types; signalwire signal types).
const (
	TypeAssign = "relayAssign" // device → child: your parent
	TypeChild  = "relayChild"  // device → parent: a child to offer to
	TypeSignal = "relaySignal" // viewer ⇄ device ⇄ viewer: offer, answer, candidates
	TypeEnd    = "relayEnd"    // device → viewer: a link is over
	TypeReady  = "relayReady"  // viewer → device: how many children it takes
	TypeReport = "relayReport" // child → device: its parent failed
)

// Limits of relay payloads.
const (
	MaxPayload     = 48 << 10
	MaxSDP         = 32 << 10
	maxLink        = 32
	maxLabel       = 64
	maxFingerprint = 128
	maxDetail      = 256
	maxReason      = 256
	maxStream      = 256
	// MaxChildren is the most children a viewer may offer to take.
	MaxChildren = 8
	// MaxDepth bounds depth fields: no tree is deeper.
	MaxDepth = 64
)

// Domains of the device's signatures over assignments.
const (
	assignDomain = "ersmesh/relay-assign/v1"
	childDomain  = "ersmesh/relay-child/v1"
)

// ErrInvalid wraps every validation error of a relay payload.
var ErrInvalid = errors.New("relay: invalid message")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Assign is relayAssign's payload.
type Assign struct {
	Link        string `json:"link"`
	Parent      string `json:"parent"`
	Depth       int    `json:"depth"`
	Stream      string `json:"stream"`
	Epoch       string `json:"epoch"`
	Seq         uint64 `json:"seq"`
	Fingerprint string `json:"fingerprint"` // the parent's
	Self        string `json:"self"`        // the child's own
	Signature   string `json:"signature"`
}

// Child is relayChild's payload.
type Child struct {
	Link        string `json:"link"`
	Depth       int    `json:"depth"`
	Fingerprint string `json:"fingerprint"` // the child's
	Signature   string `json:"signature"`
}

// Description is an RTCSessionDescription.
type Description struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// Candidate is an RTCIceCandidateInit; an empty Candidate ends them.
type Candidate struct {
	Candidate     string  `json:"candidate"`
	SDPMid        *string `json:"sdpMid,omitempty"`
	SDPMLineIndex *uint16 `json:"sdpMLineIndex,omitempty"`
}

// Signal is relaySignal's payload: one of Description and Candidate.
// From, in a child's answer, is the highest seq the child has appended
// (0: none): the parent starts the link at the keyframe it needs.
type Signal struct {
	Link        string       `json:"link"`
	Description *Description `json:"description,omitempty"`
	Candidate   *Candidate   `json:"candidate,omitempty"`
	From        uint64       `json:"from,omitempty"`
}

// End is relayEnd's payload.
type End struct {
	Link   string `json:"link"`
	Reason string `json:"reason,omitempty"`
}

// Ready is relayReady's payload.
type Ready struct {
	MaxChildren int `json:"maxChildren"`
}

// Report is relayReport's payload.
type Report struct {
	Link    string `json:"link"`
	Problem string `json:"problem"`
	Detail  string `json:"detail,omitempty"`
}

// validLink reports whether s is a link id: 1-32 of [A-Za-z0-9_-].
func validLink(s string) bool {
	if len(s) == 0 || len(s) > maxLink {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (a *Assign) validate() error {
	switch {
	case !validLink(a.Link):
		return invalid("link %q", a.Link)
	case len(a.Parent) > maxLabel:
		return invalid("parent label longer than %d bytes", maxLabel)
	case a.Depth < 2 || a.Depth > MaxDepth:
		return invalid("depth %d", a.Depth)
	case a.Stream == "" || len(a.Stream) > maxStream:
		return invalid("stream name of %d bytes", len(a.Stream))
	case a.Seq > MaxSeq:
		return invalid("seq %d", a.Seq)
	case a.Fingerprint == "" || len(a.Fingerprint) > maxFingerprint || len(a.Self) > maxFingerprint:
		return invalid("fingerprints of %d and %d bytes", len(a.Fingerprint), len(a.Self))
	case len(a.Signature) > 128:
		return invalid("signature of %d bytes", len(a.Signature))
	}
	if _, err := ParseEpoch(a.Epoch); err != nil {
		return invalid("%v", err)
	}
	return nil
}

func (c *Child) validate() error {
	switch {
	case !validLink(c.Link):
		return invalid("link %q", c.Link)
	case c.Depth < 2 || c.Depth > MaxDepth:
		return invalid("depth %d", c.Depth)
	case c.Fingerprint == "" || len(c.Fingerprint) > maxFingerprint:
		return invalid("fingerprint of %d bytes", len(c.Fingerprint))
	case len(c.Signature) > 128:
		return invalid("signature of %d bytes", len(c.Signature))
	}
	return nil
}

func (s *Signal) validate() error {
	if !validLink(s.Link) {
		return invalid("link %q", s.Link)
	}
	if s.From > MaxSeq {
		return invalid("from %d", s.From)
	}
	if (s.Description == nil) == (s.Candidate == nil) {
		return invalid("relaySignal needs exactly one of description and candidate")
	}
	if d := s.Description; d != nil {
		if d.Type != "offer" && d.Type != "answer" {
			return invalid("description of type %q", d.Type)
		}
		if len(d.SDP) == 0 || len(d.SDP) > MaxSDP {
			return invalid("SDP of %d bytes", len(d.SDP))
		}
	}
	if c := s.Candidate; c != nil && (len(c.Candidate) > 1024 || c.SDPMid != nil && len(*c.SDPMid) > 64) {
		return invalid("candidate too long")
	}
	return nil
}

func (e *End) validate() error {
	if !validLink(e.Link) {
		return invalid("link %q", e.Link)
	}
	if len(e.Reason) > maxReason {
		return invalid("reason longer than %d bytes", maxReason)
	}
	return nil
}

func (r *Ready) validate() error {
	if r.MaxChildren < 0 || r.MaxChildren > MaxChildren {
		return invalid("maxChildren %d (0 to %d)", r.MaxChildren, MaxChildren)
	}
	return nil
}

func (r *Report) validate() error {
	if !validLink(r.Link) {
		return invalid("link %q", r.Link)
	}
	if !knownProblem(r.Problem) {
		return invalid("unknown problem %q", r.Problem)
	}
	if len(r.Detail) > maxDetail {
		return invalid("detail longer than %d bytes", maxDetail)
	}
	return nil
}

// Payload is a relay payload type.
type Payload interface {
	Assign | Child | Signal | End | Ready | Report
}

// Parse reads one relay payload of type T (unknown fields are ignored) and
// validates it.
func Parse[T Payload](b []byte) (*T, error) {
	if len(b) > MaxPayload {
		return nil, invalid("payload of %d bytes (limit %d)", len(b), MaxPayload)
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, invalid("%v", err)
	}
	if err := any(v).(interface{ validate() error }).validate(); err != nil {
		return nil, err
	}
	return v, nil
}

// AssignMessage is what the device signs for a relayAssign to the viewer
// who joined room with nonce.
func AssignMessage(room, nonce string, a *Assign) []byte {
	return trust.Framed(assignDomain, room, a.Stream, nonce, a.Link, a.Fingerprint, a.Self, a.Epoch,
		strconv.FormatUint(a.Seq, 10), strconv.Itoa(a.Depth))
}

// ChildMessage is what the device signs for a relayChild to the viewer who
// joined room with nonce and watches stream.
func ChildMessage(room, stream, nonce string, c *Child) []byte {
	return trust.Framed(childDomain, room, stream, nonce, c.Link, c.Fingerprint, strconv.Itoa(c.Depth))
}

// SignAssign sets a's signature.
func SignAssign(key crypto.PrivKey, room, nonce string, a *Assign) error {
	sig, err := key.Sign(AssignMessage(room, nonce, a))
	if err != nil {
		return fmt.Errorf("sign relayAssign: %w", err)
	}
	a.Signature = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// SignChild sets c's signature.
func SignChild(key crypto.PrivKey, room, stream, nonce string, c *Child) error {
	sig, err := key.Sign(ChildMessage(room, stream, nonce, c))
	if err != nil {
		return fmt.Errorf("sign relayChild: %w", err)
	}
	c.Signature = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// ErrBadSignature is returned when an assignment's signature does not verify.
var ErrBadSignature = errors.New("relay: the device's signature does not verify")

// VerifyAssign checks that device signed a for the viewer who joined room
// with nonce.
func VerifyAssign(device peer.ID, room, nonce string, a *Assign) error {
	return verifySig(device, AssignMessage(room, nonce, a), a.Signature)
}

// VerifyChild checks that device signed c for the viewer who joined room
// with nonce and watches stream.
func VerifyChild(device peer.ID, room, stream, nonce string, c *Child) error {
	return verifySig(device, ChildMessage(room, stream, nonce, c), c.Signature)
}

func verifySig(device peer.ID, msg []byte, sig string) error {
	pub, err := device.ExtractPublicKey()
	if err != nil || pub.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: %s is not an Ed25519 peer ID", ErrBadSignature, device)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) != 64 {
		return fmt.Errorf("%w: malformed signature", ErrBadSignature)
	}
	if ok, err := pub.Verify(msg, raw); err != nil || !ok {
		return ErrBadSignature
	}
	return nil
}

// CheckFingerprints reports whether every a=fingerprint line of sdp, and at
// least one, is want: a link's other end must be the certificate the
// device named (docs/relay.md §2).
func CheckFingerprints(sdp, want string) error {
	want = trust.NormalizeFingerprint(want)
	n := 0
	for line := range strings.Lines(sdp) {
		line = strings.TrimRight(line, "\r\n")
		if !strings.HasPrefix(line, "a=fingerprint:") {
			continue
		}
		if got := trust.NormalizeFingerprint(line); got != want {
			return fmt.Errorf("relay: the SDP carries DTLS fingerprint %q, not %q which the device named", got, want)
		}
		n++
	}
	if n == 0 {
		return errors.New("relay: the SDP carries no DTLS fingerprint")
	}
	return nil
}
