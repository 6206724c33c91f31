package node

import (
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/trust"
)

const whepOfferSDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 ab:cd\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtpmap:96 H264/90000\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=fingerprint:sha-256 AB:CD\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n"

func TestWHEPOfferChecks(t *testing.T) {
	fp, err := offerFingerprint(whepOfferSDP)
	if err != nil || fp != "sha-256 AB:CD" {
		t.Fatalf("offerFingerprint: %q, %v", fp, err)
	}
	// A second certificate where pion might look is refused: the proof
	// would name one, DTLS use the other.
	if _, err := offerFingerprint(strings.Replace(whepOfferSDP, "a=fingerprint:sha-256 AB:CD", "a=fingerprint:sha-256 AB:CE", 1)); err == nil {
		t.Error("an offer with two fingerprints passed")
	}
	if _, err := offerFingerprint(strings.ReplaceAll(whepOfferSDP, "a=fingerprint:", "a=x-fp:")); err == nil {
		t.Error("an offer without a fingerprint passed")
	}
	if !offerSendsAudio(whepOfferSDP) {
		t.Fatal("a sendrecv audio section does not send")
	}
	muted, err := viewerSendsNoAudio(whepOfferSDP)
	if err != nil || offerSendsAudio(muted) || !strings.Contains(muted, "a=recvonly\r\na=rtpmap:111") {
		t.Fatalf("viewerSendsNoAudio: %v\n%s", err, muted)
	}
	// No direction attribute means sendrecv (RFC 8866 §6.7).
	implicit := strings.Replace(whepOfferSDP, "a=sendrecv\r\n", "", 1)
	if muted, _ := viewerSendsNoAudio(implicit); !offerSendsAudio(implicit) || offerSendsAudio(muted) {
		t.Fatalf("an audio section without a direction:\n%s", muted)
	}
}

func TestProofMemoryOnce(t *testing.T) {
	var m proofMemory
	now := time.Now()
	msg := trust.WHEPProofMessage("r", "s", "sha-256 AB", now.UnixMilli())
	if err := m.first(msg, now); err != nil {
		t.Fatal(err)
	}
	if err := m.first(msg, now.Add(time.Minute)); err == nil {
		t.Fatal("a proof was accepted twice")
	}
	// Full of fresh proofs: new ones are refused rather than old ones
	// forgotten while they could still be replayed.
	for i := range maxWHEPProofs - 1 {
		m.first(trust.WHEPProofMessage("r", "s", "sha-256 AB", int64(i)), now)
	}
	if err := m.first(trust.WHEPProofMessage("r", "s", "sha-256 AC", 1), now); err == nil {
		t.Fatal("a full memory took another proof")
	}
	if err := m.first(trust.WHEPProofMessage("r", "s", "sha-256 AD", 1), now.Add(3*trust.WHEPProofWindow)); err != nil {
		t.Fatalf("once the old proofs expired: %v", err)
	}
}

func FuzzWHEPOffer(f *testing.F) {
	f.Add(whepOfferSDP)
	f.Add("v=0\r\nm=audio 0 RTP/AVP 0\r\na=sendonly\r\n")
	f.Fuzz(func(t *testing.T, offer string) {
		offerFingerprint(offer)
		sends := offerSendsAudio(offer)
		muted, err := viewerSendsNoAudio(offer)
		if err != nil {
			if sends {
				t.Fatal("an offer that does not parse sends audio")
			}
			return
		}
		if offerSendsAudio(muted) {
			t.Fatalf("still sends after muting:\n%q", muted)
		}
	})
}
