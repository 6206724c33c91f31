package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/internal/testutil/testmesh"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/signalwire"
	"github.com/ersmesh/ersmesh/trust"
)

const hostileSecret = "correct horse battery staple"

// hostileBridge plays a bridge that relayed an honest viewer's proof of the
// room secret (bound to the viewer's fingerprint proven) and now tries to
// use it for a PeerConnection of its own: it answers the device's offer
// with its own certificate and rewrites the answer with rewrite. It
// returns the reason the device gave for ending the session ("" if it did
// not) and the media the bridge received (RTP packets, data channel
// messages).
func hostileBridge(t *testing.T, tm *testMesh, stream, transport, proven string, rewrite func(sdp, own string) string) (string, int64) {
	t.Helper()
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Room: "lobby", Stream: stream, Transport: transport, Nonce: "n"})
	if m := recvSkippingPings(t, c, 5*time.Second); m.Kind != signalwire.KindAccept {
		t.Fatalf("join: %+v", m)
	}
	m := recvSkippingPings(t, c, 5*time.Second)
	if m.Type != "challenge" {
		t.Fatalf("got %+v, want the challenge", m)
	}
	var ch struct{ Challenge string }
	json.Unmarshal(m.Payload, &ch)
	// The proof an honest viewer made, which the bridge relayed.
	proof := trust.Proof(hostileSecret, "lobby", ch.Challenge, proven)
	c.Send(signalOf(t, "auth", map[string]string{"fingerprint": proven, "proof": proof}))
	m = recvSkippingPings(t, c, 5*time.Second)
	if m.Type != "offer" {
		t.Fatalf("got %+v, want the offer", m)
	}
	var offer webrtc.SessionDescription
	json.Unmarshal(m.Payload, &offer)

	cert, own := testutil.DTLSCert(t)
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var got atomic.Int64
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			got.Add(1)
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnOpen(func() {
			if dc.Label() == commandChannelLabel {
				dc.SendText(`{"type":"fmp4Request","payload":{"name":"` + stream + `"}}`)
			}
		})
		dc.OnMessage(func(msg webrtc.DataChannelMessage) {
			if dc.Label() == streamChannelLabel {
				got.Add(1)
			}
		})
	})
	if err := pc.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	completeAnswer(t, pc)
	sdp := rewrite(pc.LocalDescription().SDP, own)
	c.Send(signalOf(t, "answer", webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}))

	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) && got.Load() < 20 {
		m, err := c.Recv(200 * time.Millisecond)
		if err != nil {
			continue
		}
		if m.Kind == signalwire.KindLeave {
			return m.Reason, got.Load()
		}
	}
	return "", got.Load()
}

var fingerprintLine = regexp.MustCompile(`(?m)^a=fingerprint:[^\r\n]*\r\n`)

// sections splits an SDP into its session part and its media sections.
func sections(sdp string) (head string, media []string) {
	parts := strings.Split(sdp, "\r\nm=")
	head = parts[0] + "\r\n"
	for _, p := range parts[1:] {
		media = append(media, "m="+strings.TrimSuffix(p, "\r\n")+"\r\n")
	}
	return head, media
}

// TestHostileBridgeReusesProof is hole 1 of issue 13: a bridge that saw an
// honest viewer's proof (bound to the viewer's fingerprint) answers the
// device itself with an answer where the proven fingerprint is where a
// naive check looks and its own certificate is where pion looks. The
// device must refuse it, and no media may reach the bridge.
func TestHostileBridgeReusesProof(t *testing.T) {
	tm := newTestMeshWith(t, func(c *Config) { c.Secrets = map[string]string{"lobby": hostileSecret} })
	_, proven := testutil.DTLSCert(t) // the honest viewer's certificate, which the bridge never has

	attacks := []struct {
		name, stream, transport string
		rewrite                 func(sdp, own string) string
	}{
		// No session-level fingerprint; the first section carries the
		// proven one, the bundled section (BUNDLE reordered) the bridge's.
		{"bundle reordered", "phone", "srtp", func(sdp, own string) string {
			head, ms := sections(fingerprintLine.ReplaceAllString(sdp, ""))
			if len(ms) != 2 {
				t.Fatalf("want 2 media sections (video, audio), got %d", len(ms))
			}
			head = regexp.MustCompile(`a=group:BUNDLE 0 1`).ReplaceAllString(head, "a=group:BUNDLE 1 0")
			ms[0] += "a=fingerprint:" + proven + "\r\n"
			ms[1] += "a=fingerprint:" + own + "\r\n"
			return head + strings.Join(ms, "")
		}},
		// A fake first section with the proven fingerprint, the real one
		// with the bridge's; BUNDLE names the real one.
		{"fake first section", "cam", "fmp4", func(sdp, own string) string {
			head, ms := sections(fingerprintLine.ReplaceAllString(sdp, ""))
			fake := "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:fake\r\na=inactive\r\na=fingerprint:" + proven + "\r\n"
			for i := range ms {
				ms[i] += "a=fingerprint:" + own + "\r\n"
			}
			return head + fake + strings.Join(ms, "")
		}},
		// Only a session-level proven fingerprint, followed by the
		// bridge's own in every section.
		{"two levels", "cam", "srtp", func(sdp, own string) string {
			head, ms := sections(fingerprintLine.ReplaceAllString(sdp, ""))
			for i := range ms {
				ms[i] += "a=fingerprint:" + own + "\r\n"
			}
			return head + "a=fingerprint:" + proven + "\r\n" + strings.Join(ms, "")
		}},
		// The honest shape with the bridge's own certificate throughout:
		// what the old check already refused.
		{"own certificate", "cam", "srtp", func(sdp, own string) string { return sdp }},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			reason, media := hostileBridge(t, tm, a.stream, a.transport, proven, a.rewrite)
			if media > 0 {
				t.Fatalf("the bridge received %d media packets or messages (session end: %q)", media, reason)
			}
			if !strings.HasPrefix(reason, "unauthorized") {
				t.Errorf("session ended with %q, want an unauthorized refusal", reason)
			}
		})
	}
	if n := tm.dev.TrustRefusals()[refusedAnswer]; n < uint64(len(attacks)) {
		t.Errorf("trust refusals for answers: %d, want %d", n, len(attacks))
	}
	waitViewers(t, tm.dev, 0)
}

func TestCheckAnswer(t *testing.T) {
	offer := "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
	fp := "sha-256 AB:CD"
	sec := func(kind, mid, fp string) string {
		s := "m=" + kind + " 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:" + mid + "\r\n"
		if fp != "" {
			s += "a=fingerprint:" + fp + "\r\n"
		}
		return s
	}
	head := "v=0\r\no=- 3 4 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
	for _, tc := range []struct {
		name, answer, proven string
		ok                   bool
	}{
		{"honest", head + sec("video", "0", "sha-256 ab:cd") + sec("audio", "1", fp), fp, true},
		{"honest session level", head + "a=fingerprint:" + fp + "\r\n" + sec("video", "0", "") + sec("audio", "1", ""), fp, true},
		{"no secret, any fingerprint", head + sec("video", "0", "sha-256 EE") + sec("audio", "1", "sha-256 EE"), "", true},
		{"one other", head + sec("video", "0", fp) + sec("audio", "1", "sha-256 EE"), fp, false},
		{"none", head + sec("video", "0", "") + sec("audio", "1", ""), fp, false},
		{"missing section", head + sec("video", "0", fp), fp, false},
		{"extra section", head + sec("video", "0", fp) + sec("audio", "1", fp) + sec("audio", "2", fp), "", false},
		{"swapped kinds", head + sec("audio", "0", fp) + sec("video", "1", fp), "", false},
		{"other mid", head + sec("video", "0", fp) + sec("audio", "x", fp), "", false},
		{"upper-case key", head + sec("video", "0", fp) + sec("audio", "1", fp) + "a=FINGERPRINT:sha-256 EE\r\n", fp, false},
		{"garbage", "not sdp", fp, false},
		{"huge", head + strings.Repeat("a=x\r\n", trust.MaxSDP/5+1), "", false},
	} {
		err := checkAnswer(offer, tc.answer, tc.proven)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// FuzzCheckAnswer: arbitrary answers never panic, and whatever passes with
// a proven fingerprint carries only that one.
func FuzzCheckAnswer(f *testing.F) {
	offer := "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
	f.Add("v=0\r\no=- 3 4 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=fingerprint:sha-256 AB\r\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, answer string) {
		if checkAnswer(offer, answer, "sha-256 AB") != nil {
			return
		}
		for _, m := range regexp.MustCompile(`(?im)^a=fingerprint:(.*)$`).FindAllStringSubmatch(answer, -1) {
			if trust.NormalizeFingerprint(strings.TrimRight(m[1], "\r")) != "sha-256 AB" {
				t.Fatalf("accepted an answer with fingerprint %q", m[1])
			}
		}
	})
}

// openFrom opens a signalling stream to the device from another mesh host
// (another bridge, with a peer ID of its own).
func openFrom(t *testing.T, tm *testMesh, h *mesh.Host, join *signalwire.Message) *signalwire.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Libp2p().Connect(ctx, peer.AddrInfo{ID: tm.device.ID(), Addrs: tm.device.Libp2p().Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := h.Libp2p().NewStream(network.WithAllowLimitedConn(ctx, "test"), tm.device.ID(), signalwire.ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	c := signalwire.NewConn(s)
	t.Cleanup(func() { c.Reset() })
	if err := c.Send(join); err != nil {
		t.Fatal(err)
	}
	return c
}

// guess joins room "lobby" through c and proves guess; it returns the
// reason of the device's refusal, or "" if the device went on to offer.
func guess(t *testing.T, c *signalwire.Conn, guess string) string {
	t.Helper()
	if m := recvSkippingPings(t, c, 5*time.Second); m.Kind != signalwire.KindAccept {
		t.Fatalf("join: %+v", m)
	}
	m := recvSkippingPings(t, c, 5*time.Second)
	if m.Type != "challenge" {
		t.Fatalf("got %+v, want the challenge", m)
	}
	var ch struct{ Challenge string }
	json.Unmarshal(m.Payload, &ch)
	fp := "sha-256 AB:CD"
	c.Send(signalOf(t, "auth", map[string]string{"fingerprint": fp, "proof": trust.Proof(guess, "lobby", ch.Challenge, fp)}))
	m = recvSkippingPings(t, c, 5*time.Second)
	switch {
	case m.Kind == signalwire.KindLeave:
		return m.Reason
	case m.Type == "offer":
		return ""
	}
	t.Fatalf("after the proof: %+v", m)
	return ""
}

// TestRoomSecretBackoff is hole 3 of issue 13: a bridge guessing a short
// secret online is slowed to the per-bridge rate, then the room to its own
// rate, whatever peer IDs the guessers use; while backing off, the device
// refuses even the right secret, so the refusals tell nothing.
func TestRoomSecretBackoff(t *testing.T) {
	const pin = "4821"
	tm := newTestMeshWith(t, func(c *Config) {
		c.Secrets = map[string]string{"lobby": pin}
		c.Proofs = ProofLimits{PerRoomEvery: time.Hour, PerRoomBurst: 6, PerBridgeEvery: time.Hour, PerBridgeBurst: 3}
	})
	join := func() *signalwire.Message {
		return &signalwire.Message{Kind: signalwire.KindJoin, Room: "lobby", Stream: "cam", Transport: "srtp", Nonce: "n"}
	}
	newBridge := func() *mesh.Host {
		return testmesh.Host(t, nil, func(c *mesh.Config) { c.Server = false })
	}

	// Bridge A: three wrong guesses are checked, then even the right one
	// is refused unchecked.
	for i := range 3 {
		if r := guess(t, tm.open(t, join()), fmt.Sprintf("%04d", i)); r != "unauthorized: wrong room secret" {
			t.Fatalf("guess %d: %q, want a wrong-secret refusal", i, r)
		}
	}
	if r := guess(t, tm.open(t, join()), pin); !strings.Contains(r, "too many wrong") {
		t.Fatalf("right secret from a guessing bridge: %q, want the backoff refusal", r)
	}
	// Bridge B, an honest one, is not held back by A's guesses.
	b := newBridge()
	if r := guess(t, openFrom(t, tm, b, join()), pin); r != "" {
		t.Fatalf("right secret from another bridge: refused %q", r)
	}
	// Bridge B guesses too: the room's budget (6) is spent, and a third
	// bridge with a fresh peer ID gets nothing checked either.
	for i := range 3 {
		if r := guess(t, openFrom(t, tm, b, join()), fmt.Sprintf("9%03d", i)); r != "unauthorized: wrong room secret" {
			t.Fatalf("B's guess %d: %q", i, r)
		}
	}
	if r := guess(t, openFrom(t, tm, newBridge(), join()), pin); !strings.Contains(r, "too many wrong") {
		t.Fatalf("right secret from a fresh bridge after the room's budget: %q, want the backoff refusal", r)
	}
	got := tm.dev.TrustRefusals()
	if got[refusedProof] != 6 || got[refusedBackoff] != 2 {
		t.Errorf("refusals %v, want 6 wrong proofs and 2 backoffs", got)
	}
}

// udpTrap is a UDP socket on loopback that counts what reaches it.
func udpTrap(t *testing.T) (port int, got *atomic.Int64) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	got = &atomic.Int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(b); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c.LocalAddr().(*net.UDPAddr).Port, got
}

// TestBridgeNamesLocalTargets is hole 9 of issue 13: a bridge names
// loopback addresses (standing in for the device's private networks) as
// STUN/TURN servers and as a viewer's candidate, hoping the device sends
// packets there. The device must refuse them and count the refusals.
func TestBridgeNamesLocalTargets(t *testing.T) {
	tm := newTestMeshWith(t, func(c *Config) { c.IncludeLoopback = false })
	stunPort, stunGot := udpTrap(t)
	candPort, candGot := udpTrap(t)
	c, offer := joinWithForOffer(t, tm, &signalwire.Message{Kind: signalwire.KindJoin, Room: "lobby", Stream: "cam", Transport: "srtp", Nonce: "n",
		ICEServers: []signalwire.ICEServer{
			{URLs: []string{fmt.Sprintf("stun:127.0.0.1:%d", stunPort), fmt.Sprintf("stun:localhost:%d", stunPort)}},
			{URLs: []string{fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", stunPort)}, Username: "u", Credential: "p"},
		}})
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	pc.SetLocalDescription(answer)
	// The answer names no candidate; the bridge trickles its target.
	c.Send(signalOf(t, "answer", answer))
	c.Send(signalOf(t, "candidate", map[string]any{"candidate": map[string]any{
		"candidate": fmt.Sprintf("candidate:1 1 udp 2130706431 127.0.0.1 %d typ host", candPort), "sdpMid": "0", "sdpMLineIndex": 0}}))
	time.Sleep(3 * time.Second) // gathering, and connectivity checks every few hundred ms
	if n := stunGot.Load(); n > 0 {
		t.Errorf("the device sent %d packets to the STUN/TURN address a bridge named", n)
	}
	if n := candGot.Load(); n > 0 {
		t.Errorf("the device sent %d packets to the candidate a bridge named", n)
	}
	got := tm.dev.TrustRefusals()
	if got[refusedICEServer] != 3 || got[refusedCandidate] != 1 {
		t.Errorf("refusals %v, want 3 ICE server URLs and 1 candidate", got)
	}
}

func TestICEPolicy(t *testing.T) {
	p := &icePolicy{ownNets: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}}
	for addr, want := range map[string]bool{
		"203.0.113.7": true, "2606:4700::1": true,
		"127.0.0.1": false, "::1": false, "10.0.0.1": false, "172.16.5.5": false, "192.168.1.9": false,
		"169.254.169.254": false, "fe80::1": false, "fd00::1": false, "100.64.0.1": false, "0.0.0.0": false,
		"::": false, "224.0.0.1": false, "::ffff:127.0.0.1": false, "64:ff9b::a00:1": false, "2002:7f00:1::": false,
		"2001:0:a00:1::": false,
	} {
		if got := p.serverAllowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("server %s: allowed %v, want %v", addr, got, want)
		}
	}
	for addr, want := range map[string]bool{
		"203.0.113.7": true, "192.168.1.9": true, // a viewer on the device's LAN
		"192.168.2.9": false, "10.0.0.1": false, "127.0.0.1": false, "169.254.1.1": false,
	} {
		if got := p.candidateAllowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("candidate %s: allowed %v, want %v", addr, got, want)
		}
	}
	lab := &icePolicy{loopback: true}
	var urls []string
	for i := range maxICEURLs + 3 {
		urls = append(urls, fmt.Sprintf("stun:127.0.0.1:%d", 3478+i))
	}
	out, refused := lab.iceServers(context.Background(), []signalwire.ICEServer{{URLs: urls}, {URLs: []string{"stun:[::1]:3478"}}})
	if len(out) != 1 || len(out[0].URLs) != maxICEURLs || refused != 4 {
		t.Errorf("%d URLs: kept %v, refused %d; want the first %d", len(urls)+1, out, refused, maxICEURLs)
	}
	if lab.urlAllowed(context.Background(), "stun:10.0.0.1:3478") || lab.urlAllowed(context.Background(), "not a url") {
		t.Error("the lab switch lets more than loopback through")
	}
	sdp := "v=0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\na=candidate:2 1 udp 1 10.9.9.9 9 typ host\r\na=candidate:3 1 udp 1 x.local 9 typ host\r\n"
	got, n := p.filterSDP(sdp)
	if n != 2 || !strings.Contains(got, "x.local") || strings.Contains(got, "10.9.9.9") {
		t.Errorf("filterSDP: %d refused, left %q", n, got)
	}
}
