package web_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/trust"
)

// TestTrustJSMatchesGo checks web/static/trust.js against package trust in
// a real browser: signatures made in Go verify with WebCrypto, tampered
// ones do not, and the room-secret proofs of both sides are the same bytes.
func TestTrustJSMatchesGo(t *testing.T) {
	base := modulePage(t)
	ctx := browsertest.New(t)
	if err := browsertest.Navigate(ctx, base+"/blank"); err != nil {
		t.Fatal(err)
	}

	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	_, other, _ := crypto.GenerateEd25519Key(rand.Reader)
	otherID, _ := peer.IDFromPublicKey(other)
	sdp := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:sha-256 0A:1B\r\n"
	room := "frontdoor@" + id.String()
	sig, err := trust.SignOffer(k, room, "cam", "nonce-1", sdp)
	if err != nil {
		t.Fatal(err)
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	verify := func(pid, room, nonce, sdp, sig string, stream ...string) bool {
		t.Helper()
		st := "cam"
		if len(stream) > 0 {
			st = stream[0]
		}
		ok, err := browsertest.Eval[bool](ctx, fmt.Sprintf(`import('/trust.js').then(m => m.verifyOffer(%s, %s, %s, %s, %s, %s))`,
			js(pid), js(room), js(st), js(nonce), js(sdp), js(sig)))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !verify(id.String(), room, "nonce-1", sdp, sig) {
		t.Fatal("the browser refused an honest signature")
	}
	if verify(id.String(), room, "nonce-1", sdp, sig, "garage") {
		t.Error("the browser accepted an offer signed for another stream")
	}
	// The device's answer to a WHEP client's offer.
	offer := sdp + "a=mid:0\r\n"
	asig, err := trust.SignAnswer(k, room, "cam", offer, sdp)
	if err != nil {
		t.Fatal(err)
	}
	verifyAnswer := func(pid, stream, offer, sig string) bool {
		t.Helper()
		ok, err := browsertest.Eval[bool](ctx, fmt.Sprintf(`import('/trust.js').then(m => m.verifyAnswer(%s, %s, %s, %s, %s, %s))`,
			js(pid), js(room), js(stream), js(offer), js(sdp), js(sig)))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !verifyAnswer(id.String(), "cam", offer, asig) {
		t.Error("the browser refused an honest answer signature")
	}
	if verifyAnswer(id.String(), "cam", offer+"a=x\r\n", asig) || verifyAnswer(id.String(), "garage", offer, asig) || verifyAnswer(otherID.String(), "cam", offer, asig) {
		t.Error("the browser accepted an answer signature for another offer, stream or device")
	}
	for name, args := range map[string][5]string{
		"tampered fingerprint": {id.String(), room, "nonce-1", strings.Replace(sdp, "0A:1B", "0A:1C", 1), sig},
		"replayed nonce":       {id.String(), room, "nonce-2", sdp, sig},
		"other device":         {otherID.String(), room, "nonce-1", sdp, sig},
		"garbage signature":    {id.String(), room, "nonce-1", sdp, "not base64!"},
		"not a peer ID":        {"QmNotAnEd25519Key", room, "nonce-1", sdp, sig},
	} {
		if verify(args[0], args[1], args[2], args[3], args[4]) {
			t.Errorf("%s: the browser accepted it", name)
		}
	}

	// Unicode in the room name: lengths are UTF-8 bytes on both sides.
	uroom := "caméra-🐈"
	usig, _ := trust.SignOffer(k, uroom, "cam", "n", sdp)
	if !verify(id.String(), uroom, "n", sdp, usig) {
		t.Error("a signature over a non-ASCII room name does not verify in the browser")
	}

	want := trust.Proof("s3cret", room, "challenge-9", "sha-256 ab:cd")
	got, err := browsertest.Eval[string](ctx, `import('/trust.js').then(m => m.roomProof("s3cret", `+js(room)+`, "challenge-9", "SHA-256 AB:CD"))`)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("browser proof %q, Go proof %q", got, want)
	}
	// The WHEP proof header (trust/whep.go): the same bytes from both.
	const ms = 1764270000123
	wantWHEP := trust.WHEPProof{UnixMilli: ms, Room: trust.WHEPProofMAC("s3cret", uroom, "cam", "sha-256 ab:cd", ms), Talk: trust.WHEPProofMAC("talk!", uroom, "cam", "sha-256 ab:cd", ms)}.String()
	gotWHEP, err := browsertest.Eval[string](ctx, `import('/trust.js').then(m => m.whepProof("s3cret", "talk!", `+js(uroom)+`, "cam", "SHA-256 AB:CD", `+strconv.Itoa(ms)+`))`)
	if err != nil || gotWHEP != wantWHEP {
		t.Errorf("browser WHEP proof %q (%v), Go's %q", gotWHEP, err, wantWHEP)
	}
	fp, err := browsertest.Eval[string](ctx, `import('/trust.js').then(m => m.sdpFingerprint(`+js(sdp)+`))`)
	if err != nil || fp != trust.SDPFingerprint(sdp) {
		t.Errorf("sdpFingerprint %q (%v), Go says %q", fp, err, trust.SDPFingerprint(sdp))
	}
}
