package trust

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A WHEP client has no round trip in which a device could challenge it:
// its one POST carries the offer, and the answer comes back. So it proves
// a secret over what it has before that POST, and what a device checks on
// receipt: the room, the stream, the DTLS fingerprint of its own offer and
// the time it made the proof. The fingerprint is what makes a relayed
// proof useless to a bridge: a session with that fingerprint completes
// DTLS only with the key behind it, which never leaves the client. The
// time (with the device's memory of proofs seen) makes a proof good once,
// within WHEPProofWindow, so that even the session a replay could open
// (one that can never connect) cannot be opened twice.

// whepProofDomain separates WHEP proofs from ERS ones (ProofMessage) and
// from everything else a secret keys.
const whepProofDomain = "ersmesh/whep-secret/v1"

// WHEPProofWindow is how far a WHEP proof's time may be from the device's
// clock, either way: clients' clocks are set by NTP, not exactly.
const WHEPProofWindow = 5 * time.Minute

// WHEPProofHeader is the request header of a WHEP POST that carries the
// proof. Bridges relay it to the device untouched (signalwire join field
// SecretProof).
const WHEPProofHeader = "Ersmesh-Secret-Proof"

// MaxWHEPProof bounds the header's value: a time and two base64 MACs fit
// in well under half of it.
const MaxWHEPProof = 256

// WHEPProofMessage is what a WHEP client MACs with a secret: the domain,
// then room, stream, its offer's DTLS fingerprint (normalized) and the
// time in milliseconds since 1970 (decimal), framed as the signed offers
// are.
func WHEPProofMessage(room, stream, fingerprint string, unixMilli int64) []byte {
	return Framed(whepProofDomain, room, stream, NormalizeFingerprint(fingerprint), strconv.FormatInt(unixMilli, 10))
}

// WHEPProofMAC is HMAC-SHA256(secret, WHEPProofMessage), standard base64.
func WHEPProofMAC(secret, room, stream, fingerprint string, unixMilli int64) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(WHEPProofMessage(room, stream, fingerprint, unixMilli))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// WHEPProof is a parsed Ersmesh-Secret-Proof header: the time the client
// made it, and a MAC with the room secret, the stream's talk secret, or
// both (each over the same message).
type WHEPProof struct {
	UnixMilli int64
	Room      string // MAC with the room secret: may watch a protected room
	Talk      string // MAC with the stream's talk secret: may talk
}

// String writes p as the header's value: "t=<ms>; room=<mac>; talk=<mac>",
// each MAC only when set.
func (p WHEPProof) String() string {
	s := "t=" + strconv.FormatInt(p.UnixMilli, 10)
	if p.Room != "" {
		s += "; room=" + p.Room
	}
	if p.Talk != "" {
		s += "; talk=" + p.Talk
	}
	return s
}

// ErrBadWHEPProof is wrapped by every refusal of ParseWHEPProof.
var ErrBadWHEPProof = errors.New("malformed " + WHEPProofHeader)

// ParseWHEPProof reads a header value written by WHEPProof.String. Keys
// it does not know are refused, not skipped: a typo must not read as "no
// proof".
func ParseWHEPProof(v string) (WHEPProof, error) {
	var p WHEPProof
	bad := func(format string, args ...any) (WHEPProof, error) {
		return WHEPProof{}, fmt.Errorf("%w: %s", ErrBadWHEPProof, fmt.Sprintf(format, args...))
	}
	if len(v) > MaxWHEPProof {
		return bad("longer than %d bytes", MaxWHEPProof)
	}
	seenT := false
	for field := range strings.SplitSeq(v, ";") {
		key, val, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return bad("%q is not key=value", field)
		}
		switch key {
		case "t":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n <= 0 || seenT {
				return bad("t must be milliseconds since 1970, once")
			}
			p.UnixMilli, seenT = n, true
		case "room", "talk":
			if raw, err := base64.StdEncoding.DecodeString(val); err != nil || len(raw) != sha256.Size {
				return bad("%s must be a base64 HMAC-SHA256", key)
			}
			dst := &p.Room
			if key == "talk" {
				dst = &p.Talk
			}
			if *dst != "" {
				return bad("%s given twice", key)
			}
			*dst = val
		default:
			return bad("unknown key %q", key)
		}
	}
	if !seenT || p.Room == "" && p.Talk == "" {
		return bad("needs t and room or talk")
	}
	return p, nil
}

// CheckWHEPMAC reports, in constant time, whether mac is right for secret.
func CheckWHEPMAC(secret, room, stream, fingerprint string, unixMilli int64, mac string) bool {
	got, err := base64.StdEncoding.DecodeString(mac)
	if err != nil || secret == "" {
		return false
	}
	want, _ := base64.StdEncoding.DecodeString(WHEPProofMAC(secret, room, stream, fingerprint, unixMilli))
	return hmac.Equal(got, want)
}

// Fresh reports whether the proof's time is within WHEPProofWindow of now.
func (p WHEPProof) Fresh(now time.Time) bool {
	d := now.Sub(time.UnixMilli(p.UnixMilli))
	return d <= WHEPProofWindow && d >= -WHEPProofWindow
}
