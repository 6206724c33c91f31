package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

func resumeKeyPair(t testing.TB) (*ecdsa.PrivateKey, string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ResumeKeyText(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, pub
}

func signResume(t testing.TB, k *ecdsa.PrivateKey, room, sid, challenge string) string {
	sig, err := SignResume(k, room, sid, challenge)
	if err != nil {
		t.Fatal(err)
	}
	return sig
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

func TestResumeKeyOfOffer(t *testing.T) {
	_, pub := resumeKeyPair(t)
	line := "a=" + ResumeKeyAttribute + ":" + pub + "\r\n"
	head := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	media := "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n"
	for _, c := range []struct {
		name, sdp, want string
	}{
		{"session level", head + line + media, pub},
		{"LF only", strings.ReplaceAll(head+line+media, "\r\n", "\n"), pub},
		{"none", head + media, ""},
		{"in a media section", head + media + line, ""},
		{"twice", head + line + line + media, ""},
		{"empty", head + "a=" + ResumeKeyAttribute + ":\r\n" + media, ""},
		{"too long", head + "a=" + ResumeKeyAttribute + ":" + strings.Repeat("A", 129) + "\r\n" + media, ""},
	} {
		if got := ResumeKeyOfOffer(c.sdp); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func FuzzResumeKeyOfOffer(f *testing.F) {
	_, pub := resumeKeyPair(f)
	f.Add("v=0\r\na=" + ResumeKeyAttribute + ":" + pub + "\r\nm=video 9 RTP/AVP 0\r\n")
	f.Add("a=" + ResumeKeyAttribute + ":x\na=" + ResumeKeyAttribute + ":y\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, sdp string) {
		k := ResumeKeyOfOffer(sdp)
		if len(k) > maxResumeKeyText || strings.ContainsAny(k, "\r\n") {
			t.Fatalf("key %q", k)
		}
		if k != "" && !strings.Contains(sdp, k) {
			t.Fatalf("key %q not in the offer", k)
		}
	})
}
