package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func resumeKeyPair(t testing.TB) (*ecdsa.PrivateKey, string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return k, base64.StdEncoding.EncodeToString(raw)
}

// signResume signs as WebCrypto does: raw r‖s.
func signResume(t testing.TB, k *ecdsa.PrivateKey, room, sid, challenge string) string {
	h := sha256.Sum256(ResumeMessage(room, sid, challenge))
	r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64)
	r.FillBytes(raw[:32])
	s.FillBytes(raw[32:])
	return base64.StdEncoding.EncodeToString(raw)
}

func TestResumeProof(t *testing.T) {
	k, pub := resumeKeyPair(t)
	key, err := ParseResumeKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sig := signResume(t, k, "lobby", "sid1", "ch1")
	if !CheckResumeProof(key, "lobby", "sid1", "ch1", sig) {
		t.Fatal("a good proof does not verify")
	}
	// Bound to room, session and challenge: a proof for one is worth
	// nothing for another.
	for _, c := range [][3]string{{"lobby2", "sid1", "ch1"}, {"lobby", "sid2", "ch1"}, {"lobby", "sid1", "ch2"}, {"lobb", "ysid1", "ch1"}} {
		if CheckResumeProof(key, c[0], c[1], c[2], sig) {
			t.Errorf("proof for lobby/sid1/ch1 verifies for %v", c)
		}
	}
	_, other := resumeKeyPair(t)
	okey, _ := ParseResumeKey(other)
	if CheckResumeProof(okey, "lobby", "sid1", "ch1", sig) {
		t.Error("a proof verifies under another key")
	}
	if n := ResumeNonce(pub); len(n) != 43 || n == ResumeNonce(other) {
		t.Errorf("nonce %q: want 43 base64url characters, one per key", n)
	}
	for _, bad := range []string{"", "AAAA", base64.StdEncoding.EncodeToString(make([]byte, 65)), pub[:len(pub)-4]} {
		if _, err := ParseResumeKey(bad); err == nil {
			t.Errorf("ParseResumeKey(%q) accepted", bad)
		}
	}
}

func FuzzResumeProof(f *testing.F) {
	k, pub := resumeKeyPair(f)
	f.Add(pub, "lobby", "sid", "challenge", signResume(f, k, "lobby", "sid", "challenge"))
	f.Add(pub, "lobby", "sid", "challenge", "")
	f.Add("", "", "", "", "")
	f.Add("BAAA", "r", "s", "c", base64.StdEncoding.EncodeToString(make([]byte, 64)))
	f.Fuzz(func(t *testing.T, key, room, sid, challenge, sig string) {
		pk, err := ParseResumeKey(key)
		if err != nil {
			if pk != nil {
				t.Fatal("a key with an error")
			}
			return
		}
		ResumeNonce(key)
		CheckResumeProof(pk, room, sid, challenge, sig)
	})
}
