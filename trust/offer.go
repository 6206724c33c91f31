package trust

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// offerDomain separates offer signatures from anything else the device's
// key signs (DHT records, libp2p handshakes).
const offerDomain = "ersmesh/offer/v1"

// Limits on what is signed or checked, so a hostile peer cannot make us
// hash megabytes. An SDP offer is a few KiB.
const (
	MaxSDP   = 32 << 10
	MaxNonce = 64
	maxRoom  = 256
)

// ErrBadSignature is returned when an offer's signature does not verify.
var ErrBadSignature = errors.New("offer signature does not verify")

// OfferMessage is the byte string a device signs for an offer: the domain,
// then room, nonce and SDP, each preceded by its length as a 4-byte
// big-endian number, so that no two inputs give the same bytes.
func OfferMessage(room, nonce, sdp string) []byte {
	b := make([]byte, 0, len(offerDomain)+12+len(room)+len(nonce)+len(sdp))
	b = append(b, offerDomain...)
	for _, f := range []string{room, nonce, sdp} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func checkSizes(room, nonce, sdp string) error {
	switch {
	case len(room) > maxRoom:
		return fmt.Errorf("room name longer than %d bytes", maxRoom)
	case len(nonce) > MaxNonce:
		return fmt.Errorf("nonce longer than %d bytes", MaxNonce)
	case len(sdp) > MaxSDP:
		return fmt.Errorf("SDP longer than %d bytes", MaxSDP)
	}
	return nil
}

// SignOffer signs sdp for a viewer of room who sent nonce, and returns the
// signature in standard base64.
func SignOffer(key crypto.PrivKey, room, nonce, sdp string) (string, error) {
	if err := checkSizes(room, nonce, sdp); err != nil {
		return "", fmt.Errorf("sign offer: %w", err)
	}
	sig, err := key.Sign(OfferMessage(room, nonce, sdp))
	if err != nil {
		return "", fmt.Errorf("sign offer: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// VerifyOffer checks that the device id signed sdp for room and nonce.
// Only Ed25519 peer IDs are accepted: their public key is inside the ID,
// which is what lets a browser check with nothing but the room name.
func VerifyOffer(id peer.ID, room, nonce, sdp, sig string) error {
	if err := checkSizes(room, nonce, sdp); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
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
	ok, err := pub.Verify(OfferMessage(room, nonce, sdp), raw)
	if err != nil || !ok {
		return ErrBadSignature
	}
	return nil
}

// NewNonce returns a fresh random nonce (128 bits, base64url).
func NewNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
