package trust

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// offerDomain and answerDomain separate offer and answer signatures from
// each other and from anything else the device's key signs (DHT records,
// libp2p handshakes). v2 of the offer added the stream name: v1 signed
// none, so a bridge could play another stream of the device under a
// "Verified" badge.
const (
	offerDomain  = "ersmesh/offer/v2"
	answerDomain = "ersmesh/answer/v1"
)

// Limits on what is signed or checked, so a hostile peer cannot make us
// hash megabytes. An SDP offer is a few KiB.
const (
	MaxSDP   = 32 << 10
	MaxNonce = 64
	maxRoom  = 256
	// MaxStream bounds a stream name; EMS names are short.
	MaxStream = 256
)

// ErrBadSignature is returned when a signature does not verify.
var ErrBadSignature = errors.New("signature does not verify")

// Framed is domain, then each field preceded by its length as a 4-byte
// big-endian number, so that no two inputs give the same bytes: what every
// signature and proof of ersmesh is over (trust.js's framed).
func Framed(domain string, fields ...string) []byte {
	n := len(domain)
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	b = append(b, domain...)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// OfferMessage is the byte string a device signs for an offer: the
// domain, then room, stream, nonce and SDP, framed.
func OfferMessage(room, stream, nonce, sdp string) []byte {
	return Framed(offerDomain, room, stream, nonce, sdp)
}

// AnswerMessage is what a device signs for its answer to a viewer's offer
// (WHEP): the domain, then room, stream, the SHA-256 of the viewer's offer
// SDP and the answer SDP, framed. The offer's hash binds the answer to
// that viewer's request, as the nonce binds an offer.
func AnswerMessage(room, stream, viewerOffer, sdp string) []byte {
	h := sha256.Sum256([]byte(viewerOffer))
	return Framed(answerDomain, room, stream, string(h[:]), sdp)
}

func checkSizes(room, stream, nonce, sdp string) error {
	switch {
	case len(room) > maxRoom:
		return fmt.Errorf("room name longer than %d bytes", maxRoom)
	case len(stream) > MaxStream:
		return fmt.Errorf("stream name longer than %d bytes", MaxStream)
	case len(nonce) > MaxNonce:
		return fmt.Errorf("nonce longer than %d bytes", MaxNonce)
	case len(sdp) > MaxSDP:
		return fmt.Errorf("SDP longer than %d bytes", MaxSDP)
	}
	return nil
}

func sign(key crypto.PrivKey, msg []byte) (string, error) {
	sig, err := key.Sign(msg)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// SignOffer signs sdp for a viewer of room and stream who sent nonce, and
// returns the signature in standard base64.
func SignOffer(key crypto.PrivKey, room, stream, nonce, sdp string) (string, error) {
	if err := checkSizes(room, stream, nonce, sdp); err != nil {
		return "", fmt.Errorf("sign offer: %w", err)
	}
	sig, err := sign(key, OfferMessage(room, stream, nonce, sdp))
	if err != nil {
		return "", fmt.Errorf("sign offer: %w", err)
	}
	return sig, nil
}

// SignAnswer signs the device's answer sdp to viewerOffer, for room and
// stream.
func SignAnswer(key crypto.PrivKey, room, stream, viewerOffer, sdp string) (string, error) {
	if err := checkSizes(room, stream, "", sdp); err != nil || len(viewerOffer) > MaxSDP {
		return "", fmt.Errorf("sign answer: %v", cmp.Or(err, errors.New("offer too long")))
	}
	sig, err := sign(key, AnswerMessage(room, stream, viewerOffer, sdp))
	if err != nil {
		return "", fmt.Errorf("sign answer: %w", err)
	}
	return sig, nil
}

// VerifyOffer checks that the device id signed sdp for room, stream and
// nonce. Only Ed25519 peer IDs are accepted: their public key is inside
// the ID, which is what lets a browser check with nothing but the room
// name.
func VerifyOffer(id peer.ID, room, stream, nonce, sdp, sig string) error {
	if err := checkSizes(room, stream, nonce, sdp); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return verify(id, OfferMessage(room, stream, nonce, sdp), sig)
}

// VerifyAnswer checks that the device id signed its answer sdp to
// viewerOffer for room and stream.
func VerifyAnswer(id peer.ID, room, stream, viewerOffer, sdp, sig string) error {
	if err := checkSizes(room, stream, "", sdp); err != nil || len(viewerOffer) > MaxSDP {
		return fmt.Errorf("%w: too long", ErrBadSignature)
	}
	return verify(id, AnswerMessage(room, stream, viewerOffer, sdp), sig)
}

func verify(id peer.ID, msg []byte, sig string) error {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: peer ID %s carries no public key: %v", ErrBadSignature, id, err)
	}
	if pub.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: peer ID %s is not an Ed25519 key", ErrBadSignature, id)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) != 64 {
		return fmt.Errorf("%w: malformed signature", ErrBadSignature)
	}
	ok, err := pub.Verify(msg, raw)
	if err != nil || !ok {
		return ErrBadSignature
	}
	return nil
}

// NewSecret returns a room secret to give viewers: 128 random bits,
// base64url (22 characters), which no guessing gets near. A secret a
// person chose is only as strong as its entropy.
func NewSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewNonce returns a fresh random nonce (128 bits, base64url).
func NewNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
