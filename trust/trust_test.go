package trust

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/internal/testutil"
)

const sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:sha-256 AB:CD\r\n"

func TestOfferSignature(t *testing.T) {
	k, id := testutil.Key(t)
	_, other := testutil.Key(t)
	sig, err := SignOffer(k, "frontdoor", "cam", "n1", sdp)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyOffer(id, "frontdoor", "cam", "n1", sdp, sig); err != nil {
		t.Fatalf("honest offer: %v", err)
	}
	bad := map[string]func() error{
		"other device":   func() error { return VerifyOffer(other, "frontdoor", "cam", "n1", sdp, sig) },
		"other room":     func() error { return VerifyOffer(id, "backdoor", "cam", "n1", sdp, sig) },
		"replayed nonce": func() error { return VerifyOffer(id, "frontdoor", "cam", "n2", sdp, sig) },
		"tampered SDP": func() error {
			return VerifyOffer(id, "frontdoor", "cam", "n1", strings.Replace(sdp, "AB:CD", "AB:CE", 1), sig)
		},
		"field shift":   func() error { return VerifyOffer(id, "frontdoorc", "am", "n1", sdp, sig) },
		"other stream":  func() error { return VerifyOffer(id, "frontdoor", "garage", "n1", sdp, sig) },
		"garbage sig":   func() error { return VerifyOffer(id, "frontdoor", "cam", "n1", sdp, "!!!") },
		"short sig":     func() error { return VerifyOffer(id, "frontdoor", "cam", "n1", sdp, "AAAA") },
		"huge SDP":      func() error { return VerifyOffer(id, "frontdoor", "cam", "n1", strings.Repeat("a", MaxSDP+1), sig) },
		"not a peer ID": func() error { return VerifyOffer(peer.ID("nope"), "frontdoor", "cam", "n1", sdp, sig) },
	}
	for name, f := range bad {
		if err := f(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	if _, err := SignOffer(k, "r", "s", strings.Repeat("n", MaxNonce+1), sdp); err == nil {
		t.Error("signed with an oversized nonce")
	}
}

func TestRSAPeerRefused(t *testing.T) {
	k, _, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	sig, _ := SignOffer(k, "r", "s", "n", sdp)
	if err := VerifyOffer(id, "r", "s", "n", sdp, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("non-Ed25519 device: %v, want refusal (browsers check Ed25519 only)", err)
	}
}

func TestProof(t *testing.T) {
	fp := "sha-256 ab:cd:ef"
	p := Proof("s3cret", "frontdoor", "chal", fp)
	if !CheckProof("s3cret", "frontdoor", "chal", "SHA-256 AB:CD:EF", p) {
		t.Fatal("proof does not check, or fingerprint case matters")
	}
	for name, ok := range map[string]bool{
		"wrong secret":      CheckProof("guess", "frontdoor", "chal", fp, p),
		"other challenge":   CheckProof("s3cret", "frontdoor", "chal2", fp, p),
		"other fingerprint": CheckProof("s3cret", "frontdoor", "chal", "sha-256 AB:CD:EE", p),
		"other room":        CheckProof("s3cret", "garage", "chal", fp, p),
		"garbage":           CheckProof("s3cret", "frontdoor", "chal", fp, "%%%"),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSDPFingerprint(t *testing.T) {
	if got := SDPFingerprint(sdp); got != "sha-256 AB:CD" {
		t.Errorf("SDPFingerprint = %q", got)
	}
	if got := SDPFingerprint("v=0\r\n"); got != "" {
		t.Errorf("no fingerprint gave %q", got)
	}
}

// FuzzVerifyOffer: arbitrary signatures, SDPs and IDs never panic and never
// verify.
func FuzzVerifyOffer(f *testing.F) {
	// A fixed key: fuzzing runs this in several processes, which must
	// agree on which (id, signature) pair is the genuine one.
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		f.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	sig, _ := SignOffer(k, "r", "s", "n", sdp)
	f.Add(string(id), "r", "s", "n", sdp, sig)
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, pid, room, stream, nonce, s, sg string) {
		err := VerifyOffer(peer.ID(pid), room, stream, nonce, s, sg)
		if err == nil && !(pid == string(id) && room == "r" && stream == "s" && nonce == "n" && s == sdp) {
			t.Fatalf("a forged offer verified: %q %q %q", room, nonce, s)
		}
	})
}

// TestAnswerSignature: a device's WHEP answer is bound to the room, the
// stream and the viewer's own offer; a bridge can move it to none other.
func TestAnswerSignature(t *testing.T) {
	k, id := testutil.Key(t)
	offer, answer := sdp+"a=mid:0\r\n", sdp+"a=mid:0\r\na=sendonly\r\n"
	sig, err := SignAnswer(k, "frontdoor", "cam", offer, answer)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyAnswer(id, "frontdoor", "cam", offer, answer, sig); err != nil {
		t.Fatalf("honest answer: %v", err)
	}
	for name, err := range map[string]error{
		"other room":   VerifyAnswer(id, "backdoor", "cam", offer, answer, sig),
		"other stream": VerifyAnswer(id, "frontdoor", "garage", offer, answer, sig),
		"other offer":  VerifyAnswer(id, "frontdoor", "cam", offer+"a=x\r\n", answer, sig),
		"tampered":     VerifyAnswer(id, "frontdoor", "cam", offer, answer+"a=x\r\n", sig),
		"an offer's":   VerifyOffer(id, "frontdoor", "cam", offer, answer, sig),
	} {
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	if s := NewSecret(); len(s) != 22 || s == NewSecret() {
		t.Errorf("NewSecret %q: want 22 characters of base64url, fresh each time", s)
	}
}
