package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/signalwire"
	"github.com/ersmesh/ersmesh/trust"
)

// resumeViewer is a viewer's resume key, as the player makes it.
type resumeViewer struct {
	key    *ecdsa.PrivateKey
	public string // base64 of the uncompressed point
}

func newResumeViewer(t *testing.T) *resumeViewer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := trust.ResumeKeyText(k)
	if err != nil {
		t.Fatal(err)
	}
	return &resumeViewer{key: k, public: pub}
}

func (r *resumeViewer) join(session, transport string) *signalwire.Message {
	return &signalwire.Message{Kind: signalwire.KindJoin, Session: session, Room: "lobby", Stream: "cam", Transport: transport,
		ResumeKey: r.public, Nonce: trust.ResumeNonce(r.public)}
}

// sign answers a resume challenge as WebCrypto does: raw r‖s.
func (r *resumeViewer) sign(t *testing.T, room, sid, challenge string) string {
	sig, err := trust.SignResume(r.key, room, sid, challenge)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// challengeOf reads the device's resume challenge from c.
func challengeOf(t *testing.T, c *signalwire.Conn) string {
	t.Helper()
	m := recvSkippingPings(t, c, 10*time.Second)
	if m.Kind != signalwire.KindSignal || m.Type != "resumeChallenge" {
		t.Fatalf("resume: got %+v, want a resumeChallenge", m)
	}
	var p struct{ Challenge string }
	if err := json.Unmarshal(m.Payload, &p); err != nil || p.Challenge == "" {
		t.Fatalf("resume challenge %s: %v", m.Payload, err)
	}
	return p.Challenge
}

func proofMsg(sid, sig string) *signalwire.Message {
	payload, _ := json.Marshal(map[string]string{"signature": sig})
	return &signalwire.Message{Kind: signalwire.KindSignal, Type: "resumeProof", SID: sid, Payload: payload}
}

func viewerInfo(t *testing.T, d *Device, session string) ViewerInfo {
	t.Helper()
	for _, v := range d.Viewers() {
		if v.Session == session {
			return v
		}
	}
	t.Fatalf("no viewer %q among %+v", session, d.Viewers())
	return ViewerInfo{}
}

func waitInfo(t *testing.T, d *Device, session, what string, cond func(ViewerInfo) bool) ViewerInfo {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v := viewerInfo(t, d, session)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("viewer %s: %s: not within 15 s: %+v", session, what, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSessionOutlivesItsBridge: the viewer's bridge dies (its stream is
// reset); the device keeps the PeerConnection, frames keep coming, and the
// viewer re-attaches the session through another bridge, proving its key;
// an ICE restart then goes through the new bridge. Hostile bridges cannot
// take the session: not with a replayed proof, not with a key of their own.
func TestSessionOutlivesItsBridge(t *testing.T) {
	tm := newTestMesh(t)
	rv := newResumeViewer(t)
	c := tm.open(t, rv.join("v1", "srtp"))
	v := newTestViewerOn(t, c, "cam")
	waitFrames(t, v, 10, "first frames")
	v.mu.Lock()
	offer := v.offerSDP
	v.mu.Unlock()
	if offer == "" {
		t.Fatal("no offer")
	}
	// The sid is what the player echoes; the viewer saw it on the offer.
	sid := sessionIDOf(t, tm.dev, "v1")

	// The bridge dies: its stream is reset, not closed politely.
	c.Reset()
	waitInfo(t, tm.dev, "v1", "detached", func(i ViewerInfo) bool { return i.Detached })
	waitFrames(t, v, 25, "frames while no bridge relays the session")
	if st := viewerInfo(t, tm.dev, "v1").State; st != "connected" {
		t.Fatalf("peer connection %s while detached, want connected", st)
	}

	// A hostile bridge that knows the sid but not the key is refused.
	evil := newBareHost(t)
	ce := tm.openFrom(t, evil, &signalwire.Message{Kind: signalwire.KindResume, Session: "evil", Room: "lobby", SID: sid})
	ch := challengeOf(t, ce)
	other := newResumeViewer(t)
	ce.Send(proofMsg(sid, other.sign(t, "lobby", sid, ch)))
	if m := recvSkippingPings(t, ce, 10*time.Second); m.Kind != signalwire.KindReject || m.Code != signalwire.CodeForbidden {
		t.Fatalf("resume with another key: %+v, want a forbidden reject", m)
	}

	// The viewer re-attaches through a second bridge.
	b2 := newBareHost(t)
	c2 := tm.openFrom(t, b2, &signalwire.Message{Kind: signalwire.KindResume, Session: "v1-again", Room: "lobby", SID: sid})
	ch = challengeOf(t, c2)
	proof := rv.sign(t, "lobby", sid, ch)
	c2.Send(proofMsg(sid, proof))
	if m := recvSkippingPings(t, c2, 10*time.Second); m.Kind != signalwire.KindAccept {
		t.Fatalf("resume: %+v, want accept", m)
	}
	info := waitInfo(t, tm.dev, "v1", "re-attached", func(i ViewerInfo) bool { return !i.Detached && i.Resumes == 1 })
	if info.Bridge != b2.ID() {
		t.Errorf("session relayed by %s, want the second bridge %s", info.Bridge, b2.ID())
	}

	// The bridge that relayed the proof replays it on a new stream: the
	// device's challenge is new, so the proof is worthless.
	c3 := tm.openFrom(t, b2, &signalwire.Message{Kind: signalwire.KindResume, Session: "replay", Room: "lobby", SID: sid})
	challengeOf(t, c3)
	c3.Send(proofMsg(sid, proof))
	if m := recvSkippingPings(t, c3, 10*time.Second); m.Kind != signalwire.KindReject || m.Code != signalwire.CodeForbidden {
		t.Fatalf("replayed resume proof: %+v, want a forbidden reject", m)
	}
	// Unknown sessions are not found.
	c4 := tm.openFrom(t, b2, &signalwire.Message{Kind: signalwire.KindResume, Session: "x", Room: "lobby", SID: "nosuchsession"})
	if m := recvSkippingPings(t, c4, 10*time.Second); m.Kind != signalwire.KindReject || m.Code != signalwire.CodeNotFound {
		t.Fatalf("resume of an unknown session: %+v, want not-found", m)
	}
	if i := viewerInfo(t, tm.dev, "v1"); i.Bridge != b2.ID() || i.Detached {
		t.Fatalf("after the hostile attempts the session is %+v, want it still with %s", i, b2.ID())
	}

	// ICE restart through the new bridge: a new offer for the same
	// session, with new ICE credentials and the same DTLS certificate.
	c2.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "restart", SID: sid})
	m := recvSkippingPings(t, c2, 10*time.Second)
	for m.Kind == signalwire.KindSignal && m.Type == "candidate" {
		m = recvSkippingPings(t, c2, 10*time.Second)
	}
	if m.Kind != signalwire.KindSignal || m.Type != "offer" || m.SID != sid {
		t.Fatalf("after restart: %+v, want an offer for %s", m, sid)
	}
	var re webrtc.SessionDescription
	if err := json.Unmarshal(m.Payload, &re); err != nil {
		t.Fatal(err)
	}
	if ufrag(re.SDP) == ufrag(offer) || trust.SDPFingerprint(re.SDP) != trust.SDPFingerprint(offer) {
		t.Errorf("restart offer: ufrag %q (was %q), fingerprint %q (was %q); want a new ufrag, the same certificate",
			ufrag(re.SDP), ufrag(offer), trust.SDPFingerprint(re.SDP), trust.SDPFingerprint(offer))
	}
	if err := v.pc.SetRemoteDescription(re); err != nil {
		t.Fatal(err)
	}
	completeAnswer(t, v.pc)
	payload, _ := json.Marshal(v.pc.LocalDescription())
	c2.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "answer", SID: sid, Payload: payload})
	waitInfo(t, tm.dev, "v1", "ICE restarted", func(i ViewerInfo) bool { return i.ICERestarts == 1 && i.State == "connected" })
	waitFrames(t, v, 25, "frames after the ICE restart")

	// A viewer that leaves through the new bridge ends the session.
	c2.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "bye"})
	waitViewers(t, tm.dev, 0)
}

// TestSwappedResumeKeyIsNotResumable: a bridge that swaps the viewer's
// resume key for its own must keep the nonce the viewer chose (or the
// device's signed offer would not verify in the player); the device then
// sees a key the nonce does not bind and keeps no session for a resume.
func TestSwappedResumeKeyIsNotResumable(t *testing.T) {
	tm := newTestMesh(t)
	viewer, evil := newResumeViewer(t), newResumeViewer(t)
	join := viewer.join("v2", "srtp")
	join.ResumeKey = evil.public
	c := tm.open(t, join)
	v := newTestViewerOn(t, c, "cam")
	waitFrames(t, v, 5, "first frames")
	c.Reset()
	waitViewers(t, tm.dev, 0)
}

func sessionIDOf(t *testing.T, d *Device, session string) string {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for sid, s := range d.resumable {
		s.mu.Lock()
		name := s.stat.Session
		s.mu.Unlock()
		if name == session {
			return sid
		}
	}
	t.Fatalf("no resumable session %q", session)
	return ""
}

func ufrag(sdp string) string {
	for _, l := range strings.Split(sdp, "\r\n") {
		if strings.HasPrefix(l, "a=ice-ufrag:") {
			return l
		}
	}
	return ""
}

// TestWHEPSessionResumesOnlyWithItsKey plays the hostile bridges against a
// WHEP session, whose resume key came in its offer: one that knows the
// session id but not the key, and one that replays the proof it relayed.
// Both are refused; the viewer itself re-attaches, and restarts ICE through
// the new bridge with its new credentials.
func TestWHEPSessionResumesOnlyWithItsKey(t *testing.T) {
	tm := newTestMesh(t)
	pc, packets := newViewer(t)
	rv := newResumeViewer(t)
	offer := completeOffer(t, pc)
	i := strings.Index(offer.SDP, "m=")
	offer.SDP = offer.SDP[:i] + "a=" + trust.ResumeKeyAttribute + ":" + rv.public + "\r\n" + offer.SDP[i:]
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "whep1", Room: "lobby", Stream: "cam", Transport: "srtp", ViewerOffers: true})
	if err := c.Send(signalOf(t, "offer", offer)); err != nil {
		t.Fatal(err)
	}
	m, answer := answerOn(t, c, pc)
	select {
	case <-packets:
	case <-time.After(15 * time.Second):
		t.Fatal("no video within 15 s")
	}
	sid := m.SID
	c.Reset() // the bridge dies
	waitInfo(t, tm.dev, "whep1", "detached", func(i ViewerInfo) bool { return i.Detached })

	evil := newBareHost(t)
	ce := tm.openFrom(t, evil, &signalwire.Message{Kind: signalwire.KindResume, Session: "evil", Room: "lobby", SID: sid})
	ch := challengeOf(t, ce)
	ce.Send(proofMsg(sid, newResumeViewer(t).sign(t, "lobby", sid, ch)))
	if m := recvSkippingPings(t, ce, 10*time.Second); m.Kind != signalwire.KindReject || m.Code != signalwire.CodeForbidden {
		t.Fatalf("resume with another key: %+v, want a forbidden reject", m)
	}

	b2 := newBareHost(t)
	c2 := tm.openFrom(t, b2, &signalwire.Message{Kind: signalwire.KindResume, Session: "whep1-again", Room: "lobby", SID: sid})
	proof := rv.sign(t, "lobby", sid, challengeOf(t, c2))
	c2.Send(proofMsg(sid, proof))
	if m := recvSkippingPings(t, c2, 10*time.Second); m.Kind != signalwire.KindAccept {
		t.Fatalf("resume: %+v, want accept", m)
	}
	c3 := tm.openFrom(t, b2, &signalwire.Message{Kind: signalwire.KindResume, Session: "replay", Room: "lobby", SID: sid})
	challengeOf(t, c3)
	c3.Send(proofMsg(sid, proof))
	if m := recvSkippingPings(t, c3, 10*time.Second); m.Kind != signalwire.KindReject || m.Code != signalwire.CodeForbidden {
		t.Fatalf("replayed resume proof: %+v, want a forbidden reject", m)
	}
	if i := viewerInfo(t, tm.dev, "whep1"); i.Bridge != b2.ID() || i.Detached || i.Resumes != 1 {
		t.Fatalf("after the hostile attempts the session is %+v, want it re-attached once through %s", i, b2.ID())
	}

	// ICE restart with the viewer's new credentials: the device's answer
	// has new ones of its own and the same certificate.
	re, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(re); err != nil {
		t.Fatal(err)
	}
	ld := pc.LocalDescription().SDP
	c2.Send(signalOf(t, "restart", map[string]string{"ufrag": sdpValue(ld, "ice-ufrag"), "pwd": sdpValue(ld, "ice-pwd")}))
	if _, ra := answerOn(t, c2, pc); ufrag(ra.SDP) == ufrag(answer.SDP) || trust.SDPFingerprint(ra.SDP) != trust.SDPFingerprint(answer.SDP) {
		t.Fatalf("restart answer: ufrag %q (was %q), want a new ufrag and the same certificate", ufrag(ra.SDP), ufrag(answer.SDP))
	}
	waitInfo(t, tm.dev, "whep1", "ICE restarted", func(i ViewerInfo) bool { return i.ICERestarts == 1 && i.State == "connected" })
	c2.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "bye"})
	waitViewers(t, tm.dev, 0)
}

// answerOn reads the device's next answer on c and applies it to pc.
func answerOn(t *testing.T, c *signalwire.Conn, pc *webrtc.PeerConnection) (*signalwire.Message, webrtc.SessionDescription) {
	t.Helper()
	for {
		m := recvSkippingPings(t, c, 10*time.Second)
		if m.Kind != signalwire.KindSignal || m.Type != "answer" {
			continue
		}
		var sd webrtc.SessionDescription
		if err := json.Unmarshal(m.Payload, &sd); err != nil {
			t.Fatal(err)
		}
		if err := pc.SetRemoteDescription(sd); err != nil {
			t.Fatal(err)
		}
		return m, sd
	}
}

// sdpValue is the value of sdp's first a=<name>: line.
func sdpValue(sdp, name string) string {
	for _, l := range strings.Split(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(l, "a="+name+":"); ok {
			return v
		}
	}
	return ""
}
