package relay

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/ersmesh/ersmesh/trust"
)

// TypeSig is the record type of a SIG record: below the EMS types (249-255),
// so that only a player that asked for a signed stream ever sees one.
const TypeSig byte = 248

// Sizes of a SIG record.
const (
	SigPayloadSize = 130                // version, flags, epoch, seq, moovSeq, hash, signature
	SigRecordSize  = 4 + SigPayloadSize // with its EMS record header
	signedSize     = 66                 // the payload before the signature
	EpochSize      = 16
)

// Flags of a SIG record.
const (
	FlagKey  byte = 1 // the group is a keyframe's: a decoder may start here
	FlagMoov byte = 2 // the unit covers a MOOV record
)

// version is the only SIG version there is.
const version = 1

// streamDomain separates stream signatures from every other signature the
// device key makes (offers, answers, room records, assignments).
const streamDomain = "ersmesh/stream/v1"

// MaxSeq bounds seq and moovSeq: a player in JavaScript holds them as
// numbers.
const MaxSeq = 1<<53 - 1

// Epoch identifies one run of a device's stream.
type Epoch [EpochSize]byte

// String is the epoch as relayAssign carries it: 32 lowercase hex digits.
func (e Epoch) String() string { return hex.EncodeToString(e[:]) }

// ParseEpoch reads an epoch written by String.
func ParseEpoch(s string) (Epoch, error) {
	var e Epoch
	if len(s) != 2*EpochSize {
		return e, fmt.Errorf("epoch %q is not %d hex digits", s, 2*EpochSize)
	}
	if _, err := hex.Decode(e[:], []byte(s)); err != nil {
		return e, fmt.Errorf("epoch %q is not hex: %w", s, err)
	}
	for _, c := range s {
		if c >= 'A' && c <= 'F' {
			return e, fmt.Errorf("epoch %q is not lowercase hex", s)
		}
	}
	return e, nil
}

// Header is a SIG record's payload without the record header.
type Header struct {
	Flags   byte
	Epoch   Epoch
	Seq     uint64
	MoovSeq uint64
	Hash    [sha256.Size]byte
	Sig     [64]byte
}

// Key and Moov read the flags.
func (h *Header) Key() bool  { return h.Flags&FlagKey != 0 }
func (h *Header) Moov() bool { return h.Flags&FlagMoov != 0 }

// ErrMalformed wraps every framing error of SIG records and units.
var ErrMalformed = errors.New("relay: malformed signed stream")

// ParseHeader reads a SIG record's payload.
func ParseHeader(p []byte) (Header, error) {
	var h Header
	if len(p) != SigPayloadSize {
		return h, fmt.Errorf("%w: SIG payload of %d bytes, want %d", ErrMalformed, len(p), SigPayloadSize)
	}
	if p[0] != version {
		return h, fmt.Errorf("%w: SIG version %d", ErrMalformed, p[0])
	}
	h.Flags = p[1]
	if h.Flags&^(FlagKey|FlagMoov) != 0 || h.Flags == FlagKey|FlagMoov {
		return h, fmt.Errorf("%w: SIG flags %#x", ErrMalformed, h.Flags)
	}
	copy(h.Epoch[:], p[2:18])
	h.Seq = binary.BigEndian.Uint64(p[18:26])
	h.MoovSeq = binary.BigEndian.Uint64(p[26:34])
	if h.Seq == 0 || h.Seq > MaxSeq || h.MoovSeq == 0 || h.MoovSeq > h.Seq {
		return h, fmt.Errorf("%w: SIG seq %d, moovSeq %d", ErrMalformed, h.Seq, h.MoovSeq)
	}
	if h.Moov() && h.MoovSeq != h.Seq {
		return h, fmt.Errorf("%w: a MOOV unit's moovSeq %d is not its seq %d", ErrMalformed, h.MoovSeq, h.Seq)
	}
	copy(h.Hash[:], p[34:66])
	copy(h.Sig[:], p[66:130])
	return h, nil
}

// signed is the SIG payload's first 66 bytes.
func (h *Header) signed() []byte {
	b := make([]byte, 0, signedSize)
	b = append(b, version, h.Flags)
	b = append(b, h.Epoch[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	b = binary.BigEndian.AppendUint64(b, h.MoovSeq)
	return append(b, h.Hash[:]...)
}

// Record is the SIG record: header and payload.
func (h *Header) Record() []byte {
	b := make([]byte, 0, SigRecordSize)
	b = append(b, TypeSig, 0, 0, SigPayloadSize)
	b = append(b, h.signed()...)
	return append(b, h.Sig[:]...)
}

// StreamMessage is what the device signs for a unit of stream: the domain,
// the stream name and the SIG payload's first 66 bytes, framed as package
// trust frames (4-byte big-endian lengths).
func StreamMessage(stream string, h *Header) []byte {
	return trust.Framed(streamDomain, stream, string(h.signed()))
}

// Signer signs one stream's units with the device's key. Its methods are
// called by the stream's one goroutine (under the stream's lock).
type Signer struct {
	key    crypto.PrivKey
	stream string
	epoch  Epoch
}

// NewSigner returns a signer for stream with a fresh random epoch.
func NewSigner(key crypto.PrivKey, stream string, epoch Epoch) *Signer {
	return &Signer{key: key, stream: stream, epoch: epoch}
}

// Epoch is the signer's epoch.
func (s *Signer) Epoch() Epoch { return s.epoch }

// Sign returns the SIG record for covered, the exact bytes of one MOOV
// record (FlagMoov) or one BEGIN..END group.
func (s *Signer) Sign(flags byte, seq, moovSeq uint64, covered []byte) ([]byte, error) {
	h := Header{Flags: flags, Epoch: s.epoch, Seq: seq, MoovSeq: moovSeq, Hash: sha256.Sum256(covered)}
	sig, err := s.key.Sign(StreamMessage(s.stream, &h))
	if err != nil {
		return nil, fmt.Errorf("sign unit %d: %w", seq, err)
	}
	if len(sig) != len(h.Sig) {
		return nil, fmt.Errorf("sign unit %d: a %d-byte signature is not Ed25519's", seq, len(sig))
	}
	copy(h.Sig[:], sig)
	return h.Record(), nil
}
