package bridge_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/socketio"
	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/internal/sioclient"
	"github.com/ersmesh/ersmesh/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startMesh runs a bootstrap, a bridge and a device serving room "demo"
// (stream "sample"), each its own libp2p host, and returns the bridge's base
// URL.
func startMesh(t *testing.T) string { return startTuned(t, nil) }

// startTuned is startMesh with the bridge's config adjusted by tune.
func startTuned(t *testing.T, tune func(*bridge.Config)) string {
	t.Helper()
	return baseOf(t, startDemo(t, demo.Config{TuneBridge: tune}).URL)
}

// startDemo runs the demo mesh of cfg on loopback, with the test's logger,
// and closes it when the test ends.
func startDemo(t *testing.T, cfg demo.Config) *demo.Demo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg.Addr, cfg.Logger = "127.0.0.1:0", testutil.Logger(t)
	d, err := demo.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close mesh: %v", err)
		}
	})
	return d
}

// joinDemo joins room "demo" with data and returns its device, the one
// client of the ack's room description, which must send video.
func joinDemo(t *testing.T, ctx context.Context, c *sioclient.Client, data ersproto.Join) string {
	t.Helper()
	ack, err := c.EmitAck(ctx, ersproto.EventJoin, ersproto.JoinArgs("demo", data)...)
	if err != nil {
		t.Fatal(err)
	}
	var room ersproto.Room
	if len(ack) != 2 || string(ack[0]) != "null" || json.Unmarshal(ack[1], &room) != nil || len(room.Clients) != 1 {
		t.Fatalf("join ack %s, want one client", ack)
	}
	device := room.Device()
	if !room.Clients[device].Video {
		t.Errorf("device %s offers no video: %+v", device, room.Clients[device])
	}
	return device
}

// baseOf is the bridge's origin in a player URL.
func baseOf(t *testing.T, playerURL string) string {
	u, err := url.Parse(playerURL)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + u.Host
}

func dial(t *testing.T, ctx context.Context, base string) *sioclient.Client {
	t.Helper()
	c, err := sioclient.Dial(ctx, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestHandshakeCORS(t *testing.T) {
	base := startMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hs, err := sioclient.DoHandshake(ctx, base, &sioclient.Options{Header: http.Header{"Origin": {"https://player.example.org"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := hs.Header.Get("Access-Control-Allow-Origin"); got != "https://player.example.org" {
		t.Errorf("Access-Control-Allow-Origin %q, want the page's origin", got)
	}
	if got := hs.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("Access-Control-Allow-Credentials %q, want true", got)
	}
	if hs.Heartbeat <= 0 || hs.Timeout <= hs.Heartbeat-1 || len(hs.Transports) != 1 || hs.Transports[0] != "websocket" {
		t.Errorf("handshake %+v: want positive timeouts and the websocket transport", hs)
	}
}

// TestConnectAndUnknownRoom: after connect the bridge sends the ICE server
// lists, and a join for a room nobody serves is acked with no clients, the
// answer ERS players retry on.
func TestConnectAndUnknownRoom(t *testing.T) {
	base := startMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dial(t, ctx, base)
	for _, name := range []string{"stunservers", "turnservers"} {
		e, err := c.NextEvent(ctx, name)
		if err != nil {
			t.Fatalf("waiting for %s: %v", name, err)
		}
		var list []map[string]any
		if len(e.Args) != 1 || json.Unmarshal(e.Args[0], &list) != nil {
			t.Errorf("%s args %s: want one array", name, e.Args)
		}
	}
	ack, err := c.EmitAck(ctx, ersproto.EventJoin, ersproto.JoinArgs("nobody-home", ersproto.Join{StreamName: "x", Transport: ersproto.TransportSRTP})...)
	if err != nil {
		t.Fatal(err)
	}
	if len(ack) != 2 || string(ack[0]) != "null" || compact(ack[1]) != `{"clients":{}}` {
		t.Errorf("join ack %s, want [null, {\"clients\":{}}]", ack)
	}
}

func compact(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// TestBadInput: each kind of bad input gets an error packet (or, for an
// oversized frame, the end of that socket alone); the bridge and other
// sockets carry on.
func TestBadInput(t *testing.T) {
	base := startMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, base)
	other := dial(t, ctx, base)

	expectError := func(frame, want string) {
		t.Helper()
		if err := c.Send(ctx, []byte(frame)); err != nil {
			t.Fatalf("send %q: %v", frame, err)
		}
		for {
			p, err := c.Next(ctx)
			if err != nil {
				t.Fatalf("after %q: %v", frame, err)
			}
			if p.Type == socketio.PacketEvent {
				continue // stunservers and friends
			}
			if p.Type != socketio.PacketError || !strings.Contains(p.Data, want) {
				t.Fatalf("after %q got %s packet %q, want an error packet mentioning %q", frame, p.Type, p.Data, want)
			}
			return
		}
	}
	expectError(`5:::{"name":"launchMissiles","args":[]}`, "unknown event")
	expectError(`9:::garbage`, "")
	expectError(`5:::{"name":`, "")
	expectError(`5:1+::{"name":"message","args":[{"type":"offer"}]}`, "join a room first")
	expectError(`5:::{"name":"message","args":["not an object"]}`, "object")
	expectError(`5:::{"name":"join","args":[42]}`, "")

	// Still served after all that.
	if ack, err := c.EmitAck(ctx, ersproto.EventJoin, "still-nobody"); err != nil || len(ack) != 2 {
		t.Fatalf("join after bad input: %s, %v", ack, err)
	}

	// A frame over 64 KiB ends that socket, and only that one.
	huge := `5:::{"name":"message","args":["` + strings.Repeat("a", 70<<10) + `"]}`
	c.Send(ctx, []byte(huge))
	for {
		_, err := c.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("the bridge did not drop a socket that sent an oversized frame")
			}
			break
		}
	}
	if ack, err := other.EmitAck(ctx, ersproto.EventJoin, "nobody-either"); err != nil || compact(ack[1]) != `{"clients":{}}` {
		t.Fatalf("another socket after an oversized frame: %s, %v", ack, err)
	}
}

func TestUnknownSID(t *testing.T) {
	base := startMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := sioclient.DialSID(ctx, base, sioclient.Handshake{SID: "AAAAAAAAAAAAAAAAAAAA"}, nil)
	if err == nil || !strings.Contains(err.Error(), "7:::1+0") {
		t.Fatalf("dial with an unknown sid: %v, want the 7:::1+0 error packet", err)
	}
	// A real handshake's sid works once, and not twice.
	hs, err := sioclient.DoHandshake(ctx, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sioclient.DialSID(ctx, base, hs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := sioclient.DialSID(ctx, base, hs, nil); err == nil {
		t.Fatal("a used sid was accepted again")
	}
}

// TestViewerPlaysThroughBridge is an ERS viewer written in Go: Socket.IO to
// the bridge, the device's offer relayed over libp2p, a pion answer, and
// H.264 packets arriving peer to peer.
func TestViewerPlaysThroughBridge(t *testing.T) {
	base := startMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, base)

	device := joinDemo(t, ctx, c, ersproto.Join{StreamName: "sample", Transport: ersproto.TransportSRTP})

	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var packets atomic.Int64
	gotVideo := make(chan string, 1)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		select {
		case gotVideo <- tr.Codec().MimeType:
		default:
		}
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			packets.Add(1)
		}
	})

	offer, err := c.NextEvent(ctx, "message")
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		From, SID, Type string
		Payload         webrtc.SessionDescription
	}
	if err := json.Unmarshal(offer.Args[0], &msg); err != nil || msg.Type != "offer" || msg.From != device {
		t.Fatalf("first message %s (%v): want an offer from %s", offer.Args, err, device)
	}
	send := func(typ string, payload any) {
		m, err := ersproto.Reply(ersproto.Message{From: device, SID: msg.SID}, typ, payload)
		if err == nil {
			err = c.Emit(ctx, ersproto.EventMessage, m)
		}
		if err != nil {
			t.Errorf("send %s: %v", typ, err)
		}
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			send("candidate", map[string]any{"candidate": cand.ToJSON()})
		}
	})
	if err := pc.SetRemoteDescription(msg.Payload); err != nil {
		t.Fatal(err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	send("answer", answer)

	// The device's candidates arrive as more messages.
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			e, err := c.NextEvent(ctx, "message")
			if err != nil {
				return
			}
			var m struct {
				Type    string
				Payload struct{ Candidate webrtc.ICECandidateInit }
			}
			if json.Unmarshal(e.Args[0], &m) == nil && m.Type == "candidate" {
				pc.AddICECandidate(m.Payload.Candidate)
			}
		}
	}()

	select {
	case mime := <-gotVideo:
		if mime != webrtc.MimeTypeH264 {
			t.Errorf("track codec %s, want H.264", mime)
		}
	case <-ctx.Done():
		t.Fatalf("no track; connection state %s", pc.ConnectionState())
	}
	for packets.Load() < 100 {
		if ctx.Err() != nil {
			t.Fatalf("only %d RTP packets", packets.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Leaving ends the device's side: the PeerConnection closes from there.
	if err := c.Emit(ctx, "leave"); err != nil {
		t.Fatal(err)
	}
	for {
		switch pc.ConnectionState() {
		case webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected:
		default:
			if ctx.Err() != nil {
				t.Fatalf("the device did not end the session after leave; state %s", pc.ConnectionState())
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		break
	}
	c.Close()
	<-readDone
}

// TestMetrics: the bridge counts what it does, as Prometheus reads it.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	base := startTuned(t, func(c *bridge.Config) { c.Metrics = reg })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := dial(t, ctx, base)
	if _, err := c.EmitAck(ctx, ersproto.EventJoin, "nobody-here"); err != nil {
		t.Fatal(err)
	}
	c.Emit(ctx, "bogus")
	for {
		p, err := c.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.Type == socketio.PacketError {
			break
		}
	}
	want := map[string]float64{
		`ersmesh_bridge_joins_total{result="empty"}`:          1,
		`ersmesh_bridge_signal_errors_total{event="unknown"}`: 1,
		`ersmesh_bridge_viewers`:                              1,
	}
	got := gather(t, reg)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func gather(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
				}
				name += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[name] = m.Gauge.GetValue()
			}
		}
	}
	return out
}

// TestEarlyCandidates: a viewer that trickles all its candidates before its
// answer, and ignores the device's, still connects: the device keeps
// candidates that come before the answer instead of dropping them, and its
// connectivity checks are then the only way the two can meet.
func TestEarlyCandidates(t *testing.T) {
	base := startMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, base)
	if _, err := c.EmitAck(ctx, ersproto.EventJoin, ersproto.JoinArgs("demo", ersproto.Join{StreamName: "sample", Transport: ersproto.TransportSRTP})...); err != nil {
		t.Fatal(err)
	}
	e, err := c.NextEvent(ctx, "message")
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		From, SID, Type string
		Payload         webrtc.SessionDescription
	}
	if err := json.Unmarshal(e.Args[0], &msg); err != nil || msg.Type != "offer" {
		t.Fatalf("first message %s: want the offer", e.Args)
	}
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var cands []webrtc.ICECandidateInit
	var mu sync.Mutex
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			mu.Lock()
			cands = append(cands, cand.ToJSON())
			mu.Unlock()
		}
	})
	if err := pc.SetRemoteDescription(msg.Payload); err != nil {
		t.Fatal(err)
	}
	answer, err := pc.CreateAnswer(nil) // no candidates in it
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	send := func(typ string, payload any) {
		m, err := ersproto.Reply(ersproto.Message{From: msg.From, SID: msg.SID}, typ, payload)
		if err != nil {
			t.Fatal(err)
		}
		c.Emit(ctx, ersproto.EventMessage, m)
	}
	mu.Lock()
	for _, cand := range cands {
		send("candidate", map[string]any{"candidate": cand})
	}
	n := len(cands)
	mu.Unlock()
	if n == 0 {
		t.Fatal("the viewer gathered no candidates")
	}
	send("answer", answer)
	for pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		if ctx.Err() != nil {
			t.Fatalf("not connected (state %s): the device lost the candidates sent before the answer", pc.ConnectionState())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
