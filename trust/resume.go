package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math/big"
	"strings"
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

// A WHEP viewer has no join of its own to carry its resume key: the bridge
// makes the join from an HTTP request. It puts the key in its offer
// instead, as the session-level attribute "a=ersmesh-resume-key:<key>",
// and the device's signature of its answer covers the offer's hash
// (AnswerMessage): a bridge that swapped in a key of its own would change
// the offer, and the viewer would refuse the answer. Other WHEP clients
// send no such line and their sessions cannot be resumed.

// ResumeKeyAttribute is the SDP attribute naming a WHEP viewer's resume key.
const ResumeKeyAttribute = "ersmesh-resume-key"

// maxResumeKeyText bounds the attribute's value: the base64 of a 65-byte
// point is 88 characters.
const maxResumeKeyText = 128

const base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

// ResumeKeyOfOffer returns the resume key an offer carries at session level
// (before its first media section), or "" when it carries none, or more
// than one, or one too long to be a key.
func ResumeKeyOfOffer(sdp string) string {
	const prefix = "a=" + ResumeKeyAttribute + ":"
	key := ""
	for line := range strings.Lines(sdp) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "m=") {
			break
		}
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		if key != "" {
			return "" // two keys: which one would the answer bind?
		}
		key = strings.TrimSpace(line[len(prefix):])
		if key == "" || len(key) > maxResumeKeyText || strings.Trim(key, base64Chars) != "" {
			return ""
		}
	}
	return key
}

// ResumeKeyText is the resume key a join or an offer carries for key: the
// base64 of its public point, uncompressed.
func ResumeKeyText(key *ecdsa.PrivateKey) (string, error) {
	raw, err := key.PublicKey.Bytes()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

// SignResume answers a resume challenge with key as the player does
// (WebCrypto's raw r‖s, base64), for viewers written in Go.
func SignResume(key *ecdsa.PrivateKey, room, sid, challenge string) (string, error) {
	h := sha256.Sum256(ResumeMessage(room, sid, challenge))
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		return "", err
	}
	raw := make([]byte, 64)
	r.FillBytes(raw[:32])
	s.FillBytes(raw[32:])
	return base64.StdEncoding.EncodeToString(raw), nil
}
