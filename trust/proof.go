package trust

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
)

// proofDomain separates room-secret proofs from other uses of the secret.
const proofDomain = "ersmesh/room-secret/v1"

// ProofMessage is what a viewer MACs with the room secret: the domain, then
// room, the device's challenge and the viewer's DTLS fingerprint, each
// preceded by its 4-byte big-endian length.
func ProofMessage(room, challenge, fingerprint string) []byte {
	b := []byte(proofDomain)
	for _, f := range []string{room, challenge, NormalizeFingerprint(fingerprint)} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// Proof is HMAC-SHA256(secret, ProofMessage), in standard base64.
func Proof(secret, room, challenge, fingerprint string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(ProofMessage(room, challenge, fingerprint))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// CheckProof reports, in constant time, whether proof is right.
func CheckProof(secret, room, challenge, fingerprint, proof string) bool {
	got, err := base64.StdEncoding.DecodeString(proof)
	if err != nil {
		return false
	}
	want, _ := base64.StdEncoding.DecodeString(Proof(secret, room, challenge, fingerprint))
	return hmac.Equal(got, want)
}

// NormalizeFingerprint writes a DTLS fingerprint ("sha-256 ab:cd:...", as
// in an SDP a=fingerprint line, or its value alone) as "sha-256 AB:CD:...".
func NormalizeFingerprint(fp string) string {
	fp = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(fp), "a=fingerprint:"))
	alg, val, ok := strings.Cut(fp, " ")
	if !ok {
		return strings.ToUpper(fp)
	}
	return strings.ToLower(alg) + " " + strings.ToUpper(strings.TrimSpace(val))
}

// SDPFingerprint returns the first a=fingerprint of an SDP, normalized, or
// "" if it has none.
func SDPFingerprint(sdp string) string {
	for line := range strings.Lines(sdp) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "a=fingerprint:") {
			return NormalizeFingerprint(line)
		}
	}
	return ""
}
