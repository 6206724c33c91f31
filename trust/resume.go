package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math/big"
)

// A viewer's session outlives the bridge that introduced it: the viewer
// re-attaches it through another bridge by proving possession of a key it
// generated for the session (a non-extractable WebCrypto ECDSA P-256 key in
// the player). The public key travels in the join, and the join's nonce is
// ResumeNonce(key): the device signs its offer for that nonce, so a bridge
// that swapped in a key of its own would have to change the nonce too, and
// the player would refuse the offer. A resume is a fresh challenge from the
// device answered with a signature over ResumeMessage: a bridge relaying it
// sees a signature that no later challenge accepts.

// ErrResumeKey is returned for a resume key that is not an uncompressed
// P-256 point in base64.
var ErrResumeKey = errors.New("resume key is not a base64 uncompressed P-256 public key")

// ParseResumeKey decodes the viewer's resume key.
func ParseResumeKey(key string) (*ecdsa.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 65 {
		return nil, ErrResumeKey
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, ErrResumeKey
	}
	return pub, nil
}

// ResumeNonce is the join nonce that binds resume key key to the device's
// signed offer: base64url (unpadded) of SHA-256 of the key's bytes.
func ResumeNonce(key string) string {
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return ""
	}
	h := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// ResumeMessage is what the viewer signs to resume session sid of room:
// "ersmesh/resume/v1" ‖ len(room) ‖ room ‖ len(sid) ‖ sid ‖ len(challenge)
// ‖ challenge, lengths 4-byte big-endian.
func ResumeMessage(room, sid, challenge string) []byte {
	b := []byte("ersmesh/resume/v1")
	for _, f := range []string{room, sid, challenge} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// CheckResumeProof reports whether sig (base64 of WebCrypto's raw r‖s,
// 64 bytes) is key's ECDSA P-256/SHA-256 signature over ResumeMessage.
func CheckResumeProof(key *ecdsa.PublicKey, room, sid, challenge, sig string) bool {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) != 64 || key == nil {
		return false
	}
	h := sha256.Sum256(ResumeMessage(room, sid, challenge))
	r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
	return ecdsa.Verify(key, h[:], r, s)
}
