package bridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/testutil/testmesh"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/trust"
)

// whepResumer is a WHEP client with a resume key, as the ersmesh player.
type whepResumer struct {
	*whepClient
	key *ecdsa.PrivateKey
	pub string
}

func newWHEPResumer(t *testing.T) *whepResumer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := trust.ResumeKeyText(k)
	if err != nil {
		t.Fatal(err)
	}
	return &whepResumer{whepClient: newWHEPClient(t), key: k, pub: pub}
}

// withResumeKey puts key into offer at session level, as the player does.
func withResumeKey(offer, key string) string {
	i := strings.Index(offer, "m=")
	return offer[:i] + "a=" + trust.ResumeKeyAttribute + ":" + key + "\r\n" + offer[i:]
}

// play POSTs the client's offer with its resume key to url and applies the
// answer; it returns the response.
func (c *whepResumer) play(t *testing.T, url string) response {
	t.Helper()
	offer := withResumeKey(c.offer(t, true), c.pub)
	resp := do(t, "POST", url+"/whep/lobby/cam", sdpType, offer)
	if resp.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.status, resp.body)
	}
	dev, err := peer.Decode(resp.header.Get(whepDeviceHeader))
	if err != nil {
		t.Fatal(err)
	}
	// The device's signature covers the offer with the key in it.
	if err := trust.VerifyAnswer(dev, "lobby", "cam", offer, resp.body, resp.header.Get(whepSignatureHeader)); err != nil {
		t.Fatalf("the answer's signature does not cover the offer with its resume key: %v", err)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: resp.body}); err != nil {
		t.Fatal(err)
	}
	return resp
}

// challenge asks bridge url to resume session sid; it returns the
// response (202 with the device's challenge, or a refusal).
func challenge(t *testing.T, url, sid string) response {
	t.Helper()
	return do(t, "POST", url+"/whep/lobby/cam", "", "", whepResumeHeader, sid)
}

func (c *whepResumer) sign(t *testing.T, sid, challenge string) string {
	t.Helper()
	sig, err := trust.SignResume(c.key, "lobby", sid, challenge)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func prove(t *testing.T, url string, r response, sig string) response {
	t.Helper()
	return do(t, "PATCH", url+r.header.Get("Location"), "", "", whepProofHeader, sig)
}

// videoPackets is the count of video RTP packets pc received.
func videoPackets(pc *webrtc.PeerConnection) uint32 {
	var n uint32
	for _, st := range pc.GetStats() {
		if in, ok := st.(webrtc.InboundRTPStreamStats); ok && in.Kind == "video" {
			n += in.PacketsReceived
		}
	}
	return n
}

func viewerOf(t *testing.T, d *node.Device) node.ViewerInfo {
	t.Helper()
	vs := d.Viewers()
	if len(vs) != 1 {
		t.Fatalf("device has %d viewers, want 1: %+v", len(vs), vs)
	}
	return vs[0]
}

// TestWHEPResumeThroughAnotherBridge: a WHEP viewer plays through bridge
// A, whose libp2p host dies; the device keeps the session, detached, and
// the viewer re-attaches it through bridge B with its resume key, without a
// new PeerConnection. Hostile parties on the way are refused: a proof made
// with another key, a proof replayed for a later challenge, and a resume
// of a session whose offer carried no key.
func TestWHEPResumeThroughAnotherBridge(t *testing.T) {
	wm := newWHEPMesh(t, nil, WHEPConfig{})
	nodeB := testmesh.Host(t, wm.boot, nil)
	bridgeB, urlB := startBridge(t, nodeB, WHEPConfig{})

	c := newWHEPResumer(t)
	resp := c.play(t, wm.url)
	sid := resp.header.Get(whepSessionHeader)
	if sid == "" {
		t.Fatalf("POST response names no session: %v", resp.header)
	}
	c.waitVideo(t)
	loc := resp.header.Get("Location")
	if r := do(t, "GET", wm.url+loc, "", ""); r.status != http.StatusNoContent {
		t.Fatalf("GET of a live session: %d %s", r.status, r.body)
	}

	// Bridge A's host dies: its streams reset, as a killed process's.
	wm.bridgeN.Close()
	waitFor(t, "the device's session is detached", func() bool { return viewerOf(t, wm.dev).Detached })
	waitFor(t, "bridge A dropped its session", func() bool { return do(t, "GET", wm.url+loc, "", "").status == http.StatusNotFound })

	// A proof made with another key (a bridge forging a resume of
	// someone else's session) is refused, and the session stays.
	evil := newWHEPResumer(t)
	ch := challenge(t, urlB, sid)
	if ch.status != http.StatusAccepted || ch.header.Get(whepChallengeHeader) == "" {
		t.Fatalf("resume POST: %d %s %v", ch.status, ch.body, ch.header)
	}
	if r := prove(t, urlB, ch, evil.sign(t, sid, ch.header.Get(whepChallengeHeader))); r.status != http.StatusForbidden {
		t.Fatalf("a proof with another key: %d %s, want 403", r.status, r.body)
	}
	if v := viewerOf(t, wm.dev); !v.Detached || v.Resumes != 0 {
		t.Fatalf("after a forged proof the device's viewer is %+v, want it detached, never resumed", v)
	}

	// The viewer's own proof re-attaches it; the bridge relaying it saw
	// the signature, which a later challenge does not accept.
	ch1 := challenge(t, urlB, sid)
	sig1 := c.sign(t, sid, ch1.header.Get(whepChallengeHeader))
	ch2 := challenge(t, urlB, sid) // a hostile bridge's own resume, under way
	if ch2.status != http.StatusAccepted {
		t.Fatalf("second resume POST: %d %s", ch2.status, ch2.body)
	}
	if r := prove(t, urlB, ch1, sig1); r.status != http.StatusNoContent {
		t.Fatalf("the viewer's proof: %d %s, want 204", r.status, r.body)
	}
	v := viewerOf(t, wm.dev)
	if v.Detached || v.Resumes != 1 || v.Bridge != nodeB.ID() || v.State != "connected" {
		t.Fatalf("device's viewer %+v: want it re-attached once through bridge B, connected", v)
	}
	if r := prove(t, urlB, ch2, sig1); r.status != http.StatusForbidden {
		t.Fatalf("a replayed proof: %d %s, want 403", r.status, r.body)
	}
	if r := prove(t, urlB, ch1, sig1); r.status != http.StatusConflict {
		t.Fatalf("a second proof on a resumed session: %d %s, want 409", r.status, r.body)
	}
	if v := viewerOf(t, wm.dev); v.Resumes != 1 || v.Bridge != nodeB.ID() {
		t.Fatalf("after the replay the device's viewer is %+v, want it still through bridge B", v)
	}
	// The media never stopped: the same PeerConnection goes on receiving.
	before := videoPackets(c.pc)
	waitFor(t, "more video on the same PeerConnection", func() bool { return videoPackets(c.pc) > before+20 })
	if st := c.pc.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
		t.Fatalf("the client's PeerConnection is %s", st)
	}

	// ICE restarts through the bridge that re-attached the session (RFC
	// 9725 section 4.3), on the same PeerConnection.
	restartICE(t, c.whepClient, urlB+ch1.header.Get("Location"))
	waitFor(t, "the device restarted ICE", func() bool { return viewerOf(t, wm.dev).ICERestarts == 1 })
	before = videoPackets(c.pc)
	waitFor(t, "video after the ICE restart", func() bool { return videoPackets(c.pc) > before+20 })

	// Bridge B relays the session like one it started: DELETE ends it on
	// the device.
	if r := do(t, "DELETE", urlB+ch1.header.Get("Location"), "", ""); r.status != http.StatusOK {
		t.Fatalf("DELETE through bridge B: %d %s", r.status, r.body)
	}
	waitFor(t, "the device freed the session", func() bool { return len(wm.dev.Viewers()) == 0 })
	if r := challenge(t, urlB, sid); r.status != http.StatusNotFound {
		t.Fatalf("resuming an ended session: %d %s, want 404", r.status, r.body)
	}
	waitFor(t, "bridge B holds no sessions", func() bool { return bridgeB.whep.len() == 0 })
}

// TestWHEPResumeNeedsAKeyInTheOffer: a session whose offer carried no
// resume key (any WHEP client but ours) cannot be resumed, even by a party
// that knows its session id; nor one whose key a bridge swapped, since the
// device's signed answer then binds the swapped offer, not the viewer's.
func TestWHEPResumeNeedsAKeyInTheOffer(t *testing.T) {
	wm := newWHEPMesh(t, nil, WHEPConfig{})
	c := newWHEPClient(t)
	resp := do(t, "POST", wm.url+"/whep/lobby/cam", sdpType, c.offer(t, true))
	if resp.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.status, resp.body)
	}
	sid := resp.header.Get(whepSessionHeader)
	if r := challenge(t, wm.url, sid); r.status != http.StatusNotFound {
		t.Fatalf("resume of a session without a key: %d %s, want 404", r.status, r.body)
	}
	do(t, "DELETE", wm.url+resp.header.Get("Location"), "", "")

	// A bridge swapping the key: the device answers the swapped offer,
	// and its signature does not verify for the offer the viewer sent.
	viewer, evil := newWHEPResumer(t), newWHEPResumer(t)
	offer := viewer.offer(t, true)
	sent := withResumeKey(offer, viewer.pub)
	swapped := withResumeKey(offer, evil.pub)
	resp = do(t, "POST", wm.url+"/whep/lobby/cam", sdpType, swapped)
	if resp.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.status, resp.body)
	}
	dev, err := peer.Decode(resp.header.Get(whepDeviceHeader))
	if err != nil {
		t.Fatal(err)
	}
	if trust.VerifyAnswer(dev, "lobby", "cam", sent, resp.body, resp.header.Get(whepSignatureHeader)) == nil {
		t.Fatal("the answer to a swapped key verifies for the viewer's own offer")
	}
}

// TestWHEPResumeHeaders: malformed resume headers are refused before the
// device is asked, and a pending resume takes no candidates.
func TestWHEPResumeHeaders(t *testing.T) {
	wm := newWHEPMesh(t, nil, WHEPConfig{})
	for _, sid := range []string{"a b", strings.Repeat("a", 65), "x\"y"} {
		if r := challenge(t, wm.url, sid); r.status != http.StatusBadRequest {
			t.Errorf("resume of %q: %d %s, want 400", sid, r.status, r.body)
		}
	}
	if r := challenge(t, wm.url, "0123456789abcdef01234567"); r.status != http.StatusNotFound {
		t.Errorf("resume of an unknown session: %d %s, want 404", r.status, r.body)
	}
	// A real resumable session, to get a pending resume.
	c := newWHEPResumer(t)
	sid := c.play(t, wm.url).header.Get(whepSessionHeader)
	ch := challenge(t, wm.url, sid)
	if ch.status != http.StatusAccepted {
		t.Fatalf("resume POST: %d %s", ch.status, ch.body)
	}
	frag := sdpFragOf("u", "p", "0", []string{"candidate:1 1 udp 1 127.0.0.1 9 typ host"}, false)
	if r := do(t, "PATCH", wm.url+ch.header.Get("Location"), fragType, frag); r.status != http.StatusConflict {
		t.Errorf("candidates on a pending resume: %d %s, want 409", r.status, r.body)
	}
	if r := prove(t, wm.url, ch, "not base64!"); r.status != http.StatusBadRequest {
		t.Errorf("a malformed proof: %d %s, want 400", r.status, r.body)
	}
	start := time.Now()
	if r := do(t, "DELETE", wm.url+ch.header.Get("Location"), "", ""); r.status != http.StatusOK {
		t.Errorf("DELETE of a pending resume: %d %s", r.status, r.body)
	}
	waitFor(t, "the pending resume is gone", func() bool { return wm.bridge.whep.len() == 1 })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("ending a pending resume took %v", d)
	}
}

// sdpLines returns the values of sdp's a=<name>: lines.
func sdpLines(sdp, name string) []string {
	var out []string
	for line := range strings.Lines(sdp) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "a="+name+":"); ok {
			out = append(out, v)
		}
	}
	return out
}

// restartICE restarts c's ICE through the WHEP session at url, as RFC 9725
// section 4.3 says: a PATCH with the new credentials and If-Match: *, whose
// 200 brings the device's.
func restartICE(t *testing.T, c *whepClient, url string) {
	t.Helper()
	o, err := c.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-gathered
	local := c.pc.LocalDescription().SDP
	var cands []string
	for _, v := range sdpLines(local, "candidate") {
		cands = append(cands, "candidate:"+v)
	}
	frag := sdpFragOf(sdpLines(local, "ice-ufrag")[0], sdpLines(local, "ice-pwd")[0], "0", cands, true)
	r := do(t, "PATCH", url, fragType, frag, "If-Match", "*")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != fragType {
		t.Fatalf("ICE restart PATCH: %d %s", r.status, r.body)
	}
	old := c.pc.RemoteDescription().SDP
	ufrag, pwd := sdpLines(r.body, "ice-ufrag"), sdpLines(r.body, "ice-pwd")
	if len(ufrag) != 1 || len(pwd) != 1 || ufrag[0] == sdpLines(old, "ice-ufrag")[0] {
		t.Fatalf("the restart's answer fragment has no new credentials:\n%s", r.body)
	}
	// The answer as before, with the device's new credentials and
	// candidates.
	var b strings.Builder
	first := true
	for line := range strings.Lines(old) {
		l := strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			l = "a=ice-ufrag:" + ufrag[0]
		case strings.HasPrefix(l, "a=ice-pwd:"):
			l = "a=ice-pwd:" + pwd[0]
		case strings.HasPrefix(l, "a=candidate:"), l == "a=end-of-candidates":
			continue
		}
		b.WriteString(l + "\r\n")
		if strings.HasPrefix(l, "a=mid:") && first {
			first = false
			for _, v := range sdpLines(r.body, "candidate") {
				b.WriteString("a=candidate:" + v + "\r\n")
			}
		}
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: b.String()}); err != nil {
		t.Fatalf("the restart's answer: %v", err)
	}
}
