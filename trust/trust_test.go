package trust

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

const sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:sha-256 AB:CD\r\n"

func TestOfferSignature(t *testing.T) {
	k, id := newKey(t)
	_, other := newKey(t)
	sig, err := SignOffer(k, "frontdoor", "n1", sdp)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyOffer(id, "frontdoor", "n1", sdp, sig); err != nil {
		t.Fatalf("honest offer: %v", err)
	}
	bad := map[string]func() error{
		"other device":   func() error { return VerifyOffer(other, "frontdoor", "n1", sdp, sig) },
		"other room":     func() error { return VerifyOffer(id, "backdoor", "n1", sdp, sig) },
		"replayed nonce": func() error { return VerifyOffer(id, "frontdoor", "n2", sdp, sig) },
		"tampered SDP": func() error {
			return VerifyOffer(id, "frontdoor", "n1", strings.Replace(sdp, "AB:CD", "AB:CE", 1), sig)
		},
		"field shift":   func() error { return VerifyOffer(id, "frontdoorn", "1", sdp, sig) },
		"garbage sig":   func() error { return VerifyOffer(id, "frontdoor", "n1", sdp, "!!!") },
		"short sig":     func() error { return VerifyOffer(id, "frontdoor", "n1", sdp, "AAAA") },
		"huge SDP":      func() error { return VerifyOffer(id, "frontdoor", "n1", strings.Repeat("a", MaxSDP+1), sig) },
		"not a peer ID": func() error { return VerifyOffer(peer.ID("nope"), "frontdoor", "n1", sdp, sig) },
	}
	for name, f := range bad {
		if err := f(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	if _, err := SignOffer(k, "r", strings.Repeat("n", MaxNonce+1), sdp); err == nil {
		t.Error("signed with an oversized nonce")
	}
}

func TestRSAPeerRefused(t *testing.T) {
	k, _, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	sig, _ := SignOffer(k, "r", "n", sdp)
	if err := VerifyOffer(id, "r", "n", sdp, sig); !errors.Is(err, ErrBadSignature) {
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
	sig, _ := SignOffer(k, "r", "n", sdp)
	f.Add(string(id), "r", "n", sdp, sig)
	f.Add("", "", "", "", "")
	f.Fuzz(func(t *testing.T, pid, room, nonce, s, sg string) {
		err := VerifyOffer(peer.ID(pid), room, nonce, s, sg)
		if err == nil && !(pid == string(id) && room == "r" && nonce == "n" && s == sdp) {
			t.Fatalf("a forged offer verified: %q %q %q", room, nonce, s)
		}
	})
}
