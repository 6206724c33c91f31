package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/webrtc/v4"
)

// Key returns a fresh Ed25519 libp2p key and its peer ID: a device's or an
// owner's identity.
func Key(t testing.TB) (crypto.PrivKey, peer.ID) {
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

// DTLSCert returns a fresh DTLS certificate for a PeerConnection and its
// fingerprint as SDP writes it and package trust compares it: the
// algorithm in lower case, the value in upper case ("sha-256 AB:CD:...").
func DTLSCert(t testing.TB) (webrtc.Certificate, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := webrtc.GenerateCertificate(k)
	if err != nil {
		t.Fatal(err)
	}
	fps, err := c.GetFingerprints()
	if err != nil || len(fps) == 0 {
		t.Fatalf("certificate fingerprints: %v", err)
	}
	return *c, strings.ToLower(fps[0].Algorithm) + " " + strings.ToUpper(fps[0].Value)
}
