package room

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	// Namespace is the DHT key namespace of room records: keys are
	// "/ersroom/<sha256 of the room name>", and DHT nodes route that
	// namespace to Validator.
	Namespace = "ersroom"

	// MaxRecordSize caps an encoded record. DHT nodes store records for
	// strangers, so a record must stay small; 32 addresses of a realistic
	// size fit several times over.
	MaxRecordSize = 8 << 10
	// MaxAddrs caps the addresses in a record: enough for every interface,
	// transport and relay of a device, few enough to dial them all.
	MaxAddrs = 32

	// signingDomain prefixes the bytes a device signs, so that a room
	// record signature can never be mistaken for a signature over anything
	// else the same key signs (signalling offers, libp2p handshakes).
	signingDomain = "ersmesh room record v1\x00"
)

// Record is what a device publishes for one room: who serves it, where to
// dial, and until when. It is signed by the device's key, which the Peer ID
// embeds, so any DHT node and any bridge can verify it with nothing else.
type Record struct {
	Room  string  // canonical room name (Name.String())
	Peer  peer.ID // the device serving the room; an Ed25519 peer ID
	Addrs []ma.Multiaddr
	// Seq orders records for the same room: the highest wins. NewRecord
	// uses the publication time in nanoseconds, so a republished record, or
	// one from a device that took an open room over, replaces older ones.
	Seq uint64
	// Expires is when the record stops being valid. It is kept to the
	// millisecond, the precision of the encoding.
	Expires   time.Time
	Signature []byte
}

// Key returns the DHT key of a room: the namespace and the raw SHA-256 of
// the name. Hashing gives every name a fixed-size key spread evenly over the
// DHT, whatever its length. room must be canonical (Name.String()) so that
// every spelling of an owned room lands on the same key.
func Key(room string) string {
	h := sha256.Sum256([]byte(room))
	return "/" + Namespace + "/" + string(h[:])
}

// wireRecord is the JSON encoding of a Record. Field names are short and
// stable: they are part of the protocol.
type wireRecord struct {
	Room      string   `json:"room"`
	Peer      string   `json:"peer"`
	Addrs     []string `json:"addrs"`
	Seq       uint64   `json:"seq"`
	Expires   int64    `json:"expires"` // Unix milliseconds
	Signature []byte   `json:"sig"`     // base64 (standard encoding)
}

// NewRecord builds and signs the record of room for the device holding priv:
// its peer ID, addrs, the next sequence number of this process, and an expiry
// ttl from now.
func NewRecord(priv crypto.PrivKey, room string, addrs []ma.Multiaddr, ttl time.Duration) (*Record, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("%w: the time to live must be positive, got %s", ErrBadRecord, ttl)
	}
	name, err := ParseName(room)
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("derive the peer ID of the signing key: %w", err)
	}
	now := time.Now()
	r := &Record{
		Room:    name.String(),
		Peer:    id,
		Addrs:   addrs,
		Seq:     nextSeq(now),
		Expires: now.Add(ttl),
	}
	if err := r.Sign(priv); err != nil {
		return nil, err
	}
	return r, nil
}

// lastSeq is the last sequence number handed out by this process.
var lastSeq atomic.Uint64

// nextSeq returns now in Unix nanoseconds, or one more than the previous
// value if the clock did not move (or moved back): a device republishing must
// always beat its own previous record, or DHT nodes would keep the old one.
func nextSeq(now time.Time) uint64 {
	want := uint64(now.UnixNano())
	for {
		last := lastSeq.Load()
		next := max(want, last+1)
		if lastSeq.CompareAndSwap(last, next) {
			return next
		}
	}
}

// Sign signs r with priv. If r.Peer is empty it is set to priv's peer ID;
// otherwise it must be that ID. Expires is rounded down to the millisecond
// first, the precision of the encoding, so that what is signed is exactly
// what is sent.
func (r *Record) Sign(priv crypto.PrivKey) error {
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("derive the peer ID of the signing key: %w", err)
	}
	if r.Peer == "" {
		r.Peer = id
	}
	if r.Peer != id {
		return fmt.Errorf("%w: the record names peer %s but the signing key is %s's", ErrBadRecord, r.Peer, id)
	}
	r.Expires = time.UnixMilli(r.Expires.UnixMilli())
	r.Signature = nil
	if err := r.checkFields(); err != nil {
		return err
	}
	sig, err := priv.Sign(r.signedBytes())
	if err != nil {
		return fmt.Errorf("sign the room record: %w", err)
	}
	r.Signature = sig
	return nil
}

// Verify checks r's signature against the public key embedded in r.Peer. It
// does not check expiry or ownership: Validator does.
func (r *Record) Verify() error {
	pk, err := ed25519Key(r.Peer)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if len(r.Signature) == 0 {
		return fmt.Errorf("%w: the record is not signed", ErrBadSignature)
	}
	ok, err := pk.Verify(r.signedBytes(), r.Signature)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if !ok {
		return fmt.Errorf("%w: signed by another key than %s's, or altered after signing", ErrBadSignature, r.Peer)
	}
	return nil
}

// signedBytes is the canonical encoding the signature covers: the domain,
// then every field but the signature, each length-prefixed so that no two
// records share an encoding. It does not depend on JSON, whose spelling of
// the same record can vary.
func (r *Record) signedBytes() []byte {
	var b bytes.Buffer
	b.WriteString(signingDomain)
	putBytes := func(p []byte) {
		b.Write(binary.AppendUvarint(nil, uint64(len(p))))
		b.Write(p)
	}
	putBytes([]byte(r.Room))
	putBytes([]byte(r.Peer))
	b.Write(binary.AppendUvarint(nil, uint64(len(r.Addrs))))
	for _, a := range r.Addrs {
		putBytes(a.Bytes())
	}
	b.Write(binary.BigEndian.AppendUint64(nil, r.Seq))
	b.Write(binary.BigEndian.AppendUint64(nil, uint64(r.Expires.UnixMilli())))
	return b.Bytes()
}

// checkFields checks what a record must satisfy to be encoded or decoded,
// whatever the time and whoever asks: a canonical room name, a peer that can
// sign, and bounded addresses.
func (r *Record) checkFields() error {
	name, err := ParseName(r.Room)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if name.String() != r.Room {
		return fmt.Errorf("%w: room name %q is not in canonical form (%q)", ErrBadRecord, r.Room, name.String())
	}
	if _, err := ed25519Key(r.Peer); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if len(r.Addrs) > MaxAddrs {
		return fmt.Errorf("%w: %d addresses, at most %d are allowed", ErrBadRecord, len(r.Addrs), MaxAddrs)
	}
	for i, a := range r.Addrs {
		if len(a) == 0 {
			return fmt.Errorf("%w: address %d is empty", ErrBadRecord, i+1)
		}
		// The wire carries addresses as text and the signature covers
		// their binary form: both must survive the round trip, or a
		// record would fail to verify after decoding.
		if back, err := ma.NewMultiaddr(a.String()); err != nil || !back.Equal(a) {
			return fmt.Errorf("%w: address %d (%s) does not survive encoding", ErrBadRecord, i+1, a)
		}
	}
	if r.Expires.UnixMilli() <= 0 {
		return fmt.Errorf("%w: no expiry", ErrBadRecord)
	}
	return nil
}

// Encode returns the wire form of a signed record, or an error if it breaks
// a limit (MaxRecordSize, MaxAddrs) that every DHT node would enforce.
func (r *Record) Encode() ([]byte, error) {
	if err := r.checkFields(); err != nil {
		return nil, err
	}
	if len(r.Signature) == 0 {
		return nil, fmt.Errorf("%w: the record is not signed", ErrBadRecord)
	}
	w := wireRecord{
		Room:      r.Room,
		Peer:      r.Peer.String(),
		Addrs:     make([]string, len(r.Addrs)),
		Seq:       r.Seq,
		Expires:   r.Expires.UnixMilli(),
		Signature: r.Signature,
	}
	for i, a := range r.Addrs {
		w.Addrs[i] = a.String()
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode the room record: %w", err)
	}
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, at most %d are allowed", ErrBadRecord, len(b), MaxRecordSize)
	}
	return b, nil
}

// DecodeRecord parses the wire form of a record. It checks the form (size,
// fields, limits) but not the signature, the expiry or the DHT key: that is
// Validator's job, which knows the key and the time.
func DecodeRecord(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d are allowed", ErrBadRecord, len(b), MaxRecordSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	// Fields nobody signs have no business in a record.
	dec.DisallowUnknownFields()
	var w wireRecord
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %w", ErrBadRecord, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the record", ErrBadRecord)
	}
	if len(w.Addrs) > MaxAddrs {
		return nil, fmt.Errorf("%w: %d addresses, at most %d are allowed", ErrBadRecord, len(w.Addrs), MaxAddrs)
	}
	id, err := peer.Decode(w.Peer)
	if err != nil {
		return nil, fmt.Errorf("%w: bad peer ID: %w", ErrBadRecord, err)
	}
	r := &Record{
		Room:      w.Room,
		Peer:      id,
		Addrs:     make([]ma.Multiaddr, 0, len(w.Addrs)),
		Seq:       w.Seq,
		Expires:   time.UnixMilli(w.Expires),
		Signature: w.Signature,
	}
	for i, s := range w.Addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: address %d: %w", ErrBadRecord, i+1, err)
		}
		r.Addrs = append(r.Addrs, a)
	}
	if err := r.checkFields(); err != nil {
		return nil, err
	}
	if len(r.Signature) == 0 {
		return nil, fmt.Errorf("%w: the record is not signed", ErrBadRecord)
	}
	return r, nil
}

// AddrInfo returns the peer and addresses a bridge dials to reach the device.
func (r *Record) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: r.Peer, Addrs: r.Addrs}
}
