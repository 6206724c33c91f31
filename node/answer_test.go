package node

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/signalwire"
)

// newViewer is a pion PeerConnection that wants to receive video, as a
// WHEP client is. It counts the RTP packets it receives on packets.
func newViewer(t *testing.T) (*webrtc.PeerConnection, chan int) {
	t.Helper()
	pc := newLoopbackViewer(t)
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	packets := make(chan int, 1)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		n := 0
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			if n++; n == 50 {
				packets <- n
			}
		}
	})
	return pc, packets
}

// completeOffer creates pc's offer and waits for its ICE gathering, so the
// offer carries every candidate (a non-trickling client).
func completeOffer(t *testing.T, pc *webrtc.PeerConnection) webrtc.SessionDescription {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return setLocalGathered(t, pc, offer)
}

// completeAnswer is completeOffer for an answer to the remote offer pc
// has.
func completeAnswer(t *testing.T, pc *webrtc.PeerConnection) webrtc.SessionDescription {
	t.Helper()
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return setLocalGathered(t, pc, answer)
}

func setLocalGathered(t *testing.T, pc *webrtc.PeerConnection, sd webrtc.SessionDescription) webrtc.SessionDescription {
	t.Helper()
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(sd); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return *pc.LocalDescription()
}

func signalOf(t *testing.T, typ string, v any) *signalwire.Message {
	t.Helper()
	payload, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &signalwire.Message{Kind: signalwire.KindSignal, Type: typ, Payload: payload}
}

// recvSkippingPings returns the next message that is not a ping.
func recvSkippingPings(t *testing.T, c *signalwire.Conn, timeout time.Duration) *signalwire.Message {
	t.Helper()
	for {
		m, err := c.Recv(timeout)
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		if m.Kind != signalwire.KindPing {
			return m
		}
	}
}

// TestDeviceAnswersViewerOffer runs the WHEP direction over signalling: the
// join says the viewer offers, the offer follows at once (before the
// accept), the device answers with one complete answer, and video flows.
func TestDeviceAnswersViewerOffer(t *testing.T) {
	tm := newTestMesh(t)
	pc, packets := newViewer(t)
	offer := completeOffer(t, pc)
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "whep1", Room: "lobby", Stream: "cam", Transport: "srtp", ViewerOffers: true})
	if err := c.Send(signalOf(t, "offer", offer)); err != nil {
		t.Fatal(err)
	}
	if m := recvSkippingPings(t, c, 5*time.Second); m.Kind != signalwire.KindAccept {
		t.Fatalf("join: got %+v, want accept", m)
	}
	m := recvSkippingPings(t, c, 5*time.Second)
	if m.Kind != signalwire.KindSignal || m.Type != "answer" {
		t.Fatalf("got %+v, want the answer (and no candidate before it)", m)
	}
	var answer webrtc.SessionDescription
	if err := json.Unmarshal(m.Payload, &answer); err != nil {
		t.Fatal(err)
	}
	if answer.Type != webrtc.SDPTypeAnswer || !strings.Contains(answer.SDP, "a=sendonly") || !strings.Contains(answer.SDP, "H264") {
		t.Fatalf("not a sendonly H.264 answer:\n%s", answer.SDP)
	}
	// Complete: the client needs no trickled candidate to connect.
	if !strings.Contains(answer.SDP, "a=candidate:") || !strings.Contains(answer.SDP, "a=end-of-candidates") {
		t.Fatalf("answer is not complete (no candidates or no end-of-candidates):\n%s", answer.SDP)
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-packets:
	case <-time.After(15 * time.Second):
		t.Fatal("no video within 15 s")
	}
	vs := tm.dev.Viewers()
	if len(vs) != 1 || !vs[0].Answering || vs[0].Session != "whep1" || vs[0].State != "connected" {
		t.Errorf("Viewers() = %+v, want one connected answering session whep1", vs)
	}
	c.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "test done"})
	waitViewers(t, tm.dev, 0)
}

func waitViewers(t *testing.T, d *Device, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(d.Viewers()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("device has %d viewers, want %d: %+v", len(d.Viewers()), n, d.Viewers())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeviceRefusesBadOffers(t *testing.T) {
	tm := newTestMesh(t)
	audioOnly := testutil.AudioOnlyOffer(t)
	for _, tc := range []struct {
		name    string
		payload any
		want    string
	}{
		{"garbage sdp", map[string]string{"type": "offer", "sdp": "v=0\r\nthis is not sdp\r\n"}, "cannot use the offer"},
		{"answer as offer", map[string]string{"type": "answer", "sdp": "v=0\r\n"}, `type "answer"`},
		{"no video", audioOnly, "does not receive video"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Room: "lobby", Stream: "cam", ViewerOffers: true})
			if err := c.Send(signalOf(t, "offer", tc.payload)); err != nil {
				t.Fatal(err)
			}
			if m := recvSkippingPings(t, c, 5*time.Second); m.Kind != signalwire.KindAccept {
				t.Fatalf("join: got %+v, want accept", m)
			}
			m := recvSkippingPings(t, c, 5*time.Second)
			if m.Kind != signalwire.KindLeave || m.Code != signalwire.CodeBadOffer || !strings.Contains(m.Reason, tc.want) {
				t.Fatalf("got %+v, want a leave with code %q and reason containing %q", m, signalwire.CodeBadOffer, tc.want)
			}
		})
	}
	waitViewers(t, tm.dev, 0)
}

// TestDeviceAuthorizes checks the Authorize hook's verdicts reach the bridge
// as reject codes.
func TestDeviceAuthorizes(t *testing.T) {
	tm := newTestMeshWith(t, func(c *Config) {
		c.Authorize = func(room, stream, token string) error {
			switch token {
			case "":
				return ErrUnauthorized
			case "good":
				return nil
			}
			return ErrForbidden
		}
	})
	for token, want := range map[string]string{"": signalwire.CodeUnauthorized, "bad": signalwire.CodeForbidden, "good": ""} {
		c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Room: "lobby", Stream: "cam", Token: token})
		m := recvSkippingPings(t, c, 5*time.Second)
		switch {
		case want == "" && m.Kind != signalwire.KindAccept:
			t.Errorf("token %q: got %+v, want accept", token, m)
		case want != "" && (m.Kind != signalwire.KindReject || m.Code != want):
			t.Errorf("token %q: got %+v, want reject %q", token, m, want)
		}
		c.Send(&signalwire.Message{Kind: signalwire.KindLeave})
	}
}

// TestDeviceEndsUnconnectedViewer: a viewer that offers and then vanishes
// (a WHEP client that never connects) must not hold a session forever.
func TestDeviceEndsUnconnectedViewer(t *testing.T) {
	tm := newTestMeshWith(t, func(c *Config) { c.ConnectTimeout = 500 * time.Millisecond })
	pc, _ := newViewer(t)
	offer := completeOffer(t, pc)
	pc.Close() // gone before it could connect
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Room: "lobby", Stream: "cam", ViewerOffers: true})
	if err := c.Send(signalOf(t, "offer", offer)); err != nil {
		t.Fatal(err)
	}
	for {
		m := recvSkippingPings(t, c, 10*time.Second)
		if m.Kind == signalwire.KindLeave {
			if !strings.Contains(m.Reason, "did not connect") {
				t.Errorf("leave reason %q", m.Reason)
			}
			break
		}
	}
	waitViewers(t, tm.dev, 0)
}
