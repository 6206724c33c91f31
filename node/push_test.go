package node

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/media/ems"
	"github.com/ersmesh/ersmesh/signalwire"
)

// fmp4Joiner joins tm's device over fmp4 as a pion viewer on loopback that
// answers with request (the fmp4Request payload an ersmesh player puts
// beside its SDP; nil for none, as EMS players), and sends it on the
// command channel too if onChannel. It returns the first byte of every
// stream channel message, as they come, and the command channel's
// messages.
func fmp4Joiner(t *testing.T, tm *testMesh, request map[string]any, onChannel bool) (data chan byte, cmd chan string) {
	t.Helper()
	c, offer := joinForOffer(t, tm, "fmp4")
	pc := loopbackPeer(t)
	data, cmd = make(chan byte, 1024), make(chan string, 16)
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if onChannel && dc.Label() == commandChannelLabel {
			dc.OnOpen(func() {
				b, _ := json.Marshal(map[string]any{"type": "fmp4Request", "payload": request})
				dc.SendText(string(b))
			})
		}
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			switch {
			case dc.Label() == commandChannelLabel:
				select {
				case cmd <- string(m.Data):
				default:
				}
			case len(m.Data) > 0:
				select {
				case data <- m.Data[0]:
				default:
				}
			}
		})
	})
	if err := pc.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer := completeAnswer(t, pc)
	payload := map[string]any{"type": "answer", "sdp": answer.SDP}
	if request != nil {
		payload["fmp4Request"] = request
	}
	c.Send(signalOf(t, "answer", payload))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := c.Recv(20 * time.Second)
			if err != nil {
				return
			}
			if m.Type == "candidate" {
				var p struct{ Candidate webrtc.ICECandidateInit }
				if json.Unmarshal(m.Payload, &p) == nil {
					pc.AddICECandidate(p.Candidate)
				}
			}
		}
	}()
	t.Cleanup(func() { c.Reset(); <-done })
	return data, cmd
}

// joinForOffer joins tm's device (room lobby, stream cam) over transport
// as a bridge would and returns the signalling and the device's offer.
func joinForOffer(t *testing.T, tm *testMesh, transport string) (*signalwire.Conn, webrtc.SessionDescription) {
	t.Helper()
	return joinWithForOffer(t, tm, &signalwire.Message{Kind: signalwire.KindJoin, Room: "lobby", Stream: "cam", Transport: transport, Nonce: "n"})
}

// joinWithForOffer sends join to tm's device as a bridge would and returns
// the signalling and the device's offer once it has accepted.
func joinWithForOffer(t *testing.T, tm *testMesh, join *signalwire.Message) (*signalwire.Conn, webrtc.SessionDescription) {
	t.Helper()
	c := tm.open(t, join)
	if m := recvSkippingPings(t, c, 5*time.Second); m.Kind != signalwire.KindAccept {
		t.Fatalf("join: %+v", m)
	}
	m := recvSkippingPings(t, c, 10*time.Second)
	if m.Type != "offer" {
		t.Fatalf("got %+v, want the offer", m)
	}
	var offer webrtc.SessionDescription
	if err := json.Unmarshal(m.Payload, &offer); err != nil {
		t.Fatal(err)
	}
	return c, offer
}

// loopbackPeer is a pion PeerConnection with IPv4 loopback candidates only,
// closed when the test ends.
func loopbackPeer(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// TestFMP4PushWithTheAnswer: an ersmesh player's answer carries its
// fmp4Request, and the device sends the MOOV as soon as the stream channel
// opens, without waiting for the request on the command channel (a round
// trip less); the request that follows is answered SUCCESS. An answer
// without one (EMS players) gets nothing until the request, as before, nor
// does one naming another stream than the join's (a bridge swapping
// streams: only the request on the channel, end to end, may).
func TestFMP4PushWithTheAnswer(t *testing.T) {
	tm := newTestMesh(t)
	data, _ := fmp4Joiner(t, tm, map[string]any{"name": "cam"}, false)
	select {
	case b := <-data:
		if b != ems.TypeMoov {
			t.Fatalf("the stream channel's first record is of type %d, want the MOOV (%d)", b, ems.TypeMoov)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no MOOV without a request, with the request in the answer")
	}

	_, cmd := fmp4Joiner(t, tm, map[string]any{"name": "cam"}, true)
	select {
	case r := <-cmd:
		var c struct{ Payload fmp4Response }
		if json.Unmarshal([]byte(r), &c) != nil || c.Payload.Status != "SUCCESS" || c.Payload.Name != "cam" {
			t.Errorf("the request after the push: %s, want SUCCESS for cam", r)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no answer to the request after the push")
	}

	for name, request := range map[string]map[string]any{"without a request": nil, "naming another stream": {"name": "phone"}} {
		data, _ = fmp4Joiner(t, tm, request, false)
		select {
		case b := <-data:
			t.Fatalf("an answer %s: a record of type %d came without the request", name, b)
		case <-time.After(3 * time.Second):
		}
	}
}
