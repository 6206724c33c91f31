package relay

import (
	"crypto/sha256"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Problems a child reports about its parent (relayReport's problem), and
// that Link.Check returns.
const (
	ProblemUnsigned  = "unsigned"
	ProblemMalformed = "malformed"
	ProblemEpoch     = "epoch"
	ProblemHash      = "hash"
	ProblemSignature = "signature"
	ProblemReplay    = "replay"
	ProblemGap       = "gap"
	ProblemInit      = "init"
	ProblemStale     = "stale"
	ProblemStall     = "stall"
	ProblemFailed    = "failed"
	ProblemClosed    = "closed"
)

// Integrity reports whether a problem is the parent altering, dropping or
// replaying the stream (the device bans it), rather than failing to deliver
// (the device only rests it).
func Integrity(code string) bool {
	switch code {
	case ProblemUnsigned, ProblemMalformed, ProblemEpoch, ProblemHash, ProblemSignature,
		ProblemReplay, ProblemGap, ProblemInit, ProblemStale:
		return true
	}
	return false
}

func knownProblem(code string) bool {
	return Integrity(code) || code == ProblemStall || code == ProblemFailed || code == ProblemClosed
}

// Problem is what is wrong with a link's stream.
type Problem struct {
	Code   string // one of the Problem constants
	Detail string
}

func (p *Problem) Error() string { return "relay: " + p.Code + ": " + p.Detail }

func problem(code, format string, args ...any) *Problem {
	return &Problem{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Verifier holds what a player knows of one signed stream across the links
// it receives it over (the device, then parents): the device's key, the
// epoch, the MOOV in use and the last unit appended. One goroutine uses it.
type Verifier struct {
	key       crypto.PubKey
	stream    string
	epoch     Epoch
	haveEpoch bool
	moov      uint64 // seq of the MOOV in use, 0 before any
	appended  uint64 // highest seq appended
}

// NewVerifier checks units of stream signed by device, whose Ed25519 key
// is inside its peer ID.
func NewVerifier(device peer.ID, stream string) (*Verifier, error) {
	pub, err := device.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("relay: peer ID %s carries no public key: %w", device, err)
	}
	if pub.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("relay: peer ID %s is not an Ed25519 key", device)
	}
	return &Verifier{key: pub, stream: stream}, nil
}

// SetEpoch fixes the stream's epoch (from a relayAssign).
func (v *Verifier) SetEpoch(e Epoch) { v.epoch, v.haveEpoch = e, true }

// Appended is the highest seq appended so far.
func (v *Verifier) Appended() uint64 { return v.appended }

// Link is one source of the stream: the device or one parent.
type Link struct {
	v        *Verifier
	last     uint64 // seq of the link's previous unit, 0 before any
	lastMoov uint64 // seq of the link's last MOOV unit
}

// NewLink starts checking a new source of the stream.
func (v *Verifier) NewLink() *Link { return &Link{v: v} }

// Verdict says what to do with a unit that passed the checks.
type Verdict struct {
	// Init: a MOOV unit the player does not use yet: initialise with it.
	Init bool
	// Append: a group the player has not appended: append it.
	Append bool
}

// Check verifies u in the order of docs/relay.md §1 and updates the state;
// an error is a *Problem and means the link is bad.
func (l *Link) Check(u Unit) (Verdict, error) {
	v := l.v
	h := &u.Header
	if v.haveEpoch && h.Epoch != v.epoch {
		return Verdict{}, problem(ProblemEpoch, "unit %d is of epoch %s, the stream's is %s", h.Seq, h.Epoch, v.epoch)
	}
	if sha256.Sum256(u.Covered) != h.Hash {
		return Verdict{}, problem(ProblemHash, "unit %d's bytes do not match their hash", h.Seq)
	}
	if ok, err := v.key.Verify(StreamMessage(v.stream, h), h.Sig[:]); err != nil || !ok {
		return Verdict{}, problem(ProblemSignature, "unit %d's signature does not verify", h.Seq)
	}
	if h.Seq <= l.last {
		return Verdict{}, problem(ProblemReplay, "unit %d after unit %d", h.Seq, l.last)
	}
	if l.last == 0 && !h.Moov() {
		return Verdict{}, problem(ProblemGap, "the link starts with unit %d, not with a MOOV", h.Seq)
	}
	if l.last != 0 && h.Seq != l.last+1 && !h.Moov() && !h.Key() {
		return Verdict{}, problem(ProblemGap, "unit %d after unit %d, and it is not a keyframe", h.Seq, l.last)
	}
	if !h.Moov() && h.MoovSeq != l.lastMoov {
		return Verdict{}, problem(ProblemInit, "unit %d needs MOOV %d, the link's is %d", h.Seq, h.MoovSeq, l.lastMoov)
	}
	if !v.haveEpoch {
		v.epoch, v.haveEpoch = h.Epoch, true
	}
	l.last = h.Seq
	var vd Verdict
	if h.Moov() {
		l.lastMoov = h.Seq
		vd.Init = h.Seq != v.moov
		v.moov = h.Seq
		return vd, nil
	}
	if h.Seq > v.appended {
		vd.Append = true
		v.appended = h.Seq
	}
	return vd, nil
}
