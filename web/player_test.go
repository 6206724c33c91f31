package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/trust"
	"github.com/ersmesh/ersmesh/web"
)

// This file tests the player page against a stand-in for the bridge (a few
// lines of Socket.IO 0.9 over coder/websocket) and a stand-in for the
// device (a pion peer sending the built-in H.264 clip), so that the page's
// side of the ERS contract is checked on its own: what it sends, and how it
// reacts to what bridges and devices send.

// sioEvent is one event the page sent.
type sioEvent struct {
	Name  string            `json:"name"`
	Args  []json.RawMessage `json:"args"`
	AckID string            `json:"-"`
}

// fakeConn is one page's WebSocket session with the fake bridge.
type fakeConn struct {
	sid    string
	ws     *websocket.Conn
	events chan sioEvent
	beats  chan struct{} // heartbeats from the page
	done   chan struct{}
}

func (c *fakeConn) send(packet string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(packet)); err != nil {
		return fmt.Errorf("fake bridge: write %.40q: %w", packet, err)
	}
	return nil
}

func (c *fakeConn) emit(name string, args ...any) error {
	b, err := json.Marshal(map[string]any{"name": name, "args": args})
	if err != nil {
		return err
	}
	return c.send("5:::" + string(b))
}

func (c *fakeConn) ack(id string, args ...any) error {
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	return c.send("6:::" + id + "+" + string(b))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// next returns the next event called name, skipping others.
func (c *fakeConn) next(t *testing.T, name string, timeout time.Duration) sioEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-c.events:
			if ev.Name == name {
				return ev
			}
		case <-c.done:
			t.Fatalf("fake bridge: the page closed the socket while %s was awaited", name)
		case <-deadline:
			t.Fatalf("fake bridge: no %s event from the page within %v", name, timeout)
		}
	}
}

// fakeBridge serves the player and a Socket.IO 0.9 endpoint that hands each
// WebSocket session to the test.
type fakeBridge struct {
	url   string
	conns chan *fakeConn
}

// newFakeBridge starts a fake bridge announcing the heartbeat timeout hb.
func newFakeBridge(t *testing.T, hb time.Duration) *fakeBridge {
	fb := &fakeBridge{conns: make(chan *fakeConn, 4)}
	var (
		mu   sync.Mutex
		n    int
		open []*fakeConn
		wg   sync.WaitGroup
	)
	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.HandleFunc("GET /socket.io/1/{$}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		sid := fmt.Sprintf("fakesid%02d", n)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s:%d:60:websocket,xhr-polling", sid, int(hb.Seconds()))
	})
	mux.HandleFunc("GET /socket.io/1/websocket/{sid}", func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c := &fakeConn{sid: r.PathValue("sid"), ws: ws, events: make(chan sioEvent, 64), beats: make(chan struct{}, 4), done: make(chan struct{})}
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
		// Errors show up in the test as a page that never connects.
		_ = c.send("1::")
		_ = c.emit("stunservers", []any{})
		_ = c.emit("turnservers", []any{})
		fb.conns <- c
		wg.Go(func() {
			defer close(c.done)
			for {
				_, b, err := ws.Read(context.Background())
				if err != nil {
					return
				}
				if string(b) == "2::" {
					select {
					case c.beats <- struct{}{}:
					default:
					}
					continue
				}
				ev, ok := parseEvent(string(b))
				if !ok {
					continue
				}
				select {
				case c.events <- ev:
				default: // the test stopped reading
				}
			}
		})
	})
	srv := httptest.NewServer(mux)
	fb.url = srv.URL
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range open {
			c.ws.CloseNow()
		}
		mu.Unlock()
		wg.Wait()
		srv.Close()
	})
	return fb
}

func (fb *fakeBridge) accept(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case c := <-fb.conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("fake bridge: the page did not open a WebSocket")
		return nil
	}
}

// parseEvent reads "5:<id>[+]::{json}".
func parseEvent(p string) (sioEvent, bool) {
	parts := strings.SplitN(p, ":", 4)
	if len(parts) != 4 || parts[0] != "5" {
		return sioEvent{}, false
	}
	var ev sioEvent
	if err := json.Unmarshal([]byte(parts[3]), &ev); err != nil {
		return sioEvent{}, false
	}
	ev.AckID = strings.TrimSuffix(parts[1], "+")
	return ev, true
}

// fakeDevice is a pion peer that offers one H.264 track, as a device does.
type fakeDevice struct {
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticSample
	wg    sync.WaitGroup
	stop  chan struct{}
}

func newFakeDevice(t *testing.T) *fakeDevice {
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeH264,
		ClockRate:   90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}, "video", "ersmesh")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDevice{pc: pc, track: track, stop: make(chan struct{})}
	d.wg.Go(func() {
		// RTCP must be read for pion's interceptors to work.
		for {
			if _, _, err := tr.Sender().ReadRTCP(); err != nil {
				return
			}
		}
	})
	t.Cleanup(d.close)
	return d
}

// play sends the built-in clip in a loop until close.
func (d *fakeDevice) play(t *testing.T) {
	aus, err := media.SampleClip()
	if err != nil {
		t.Fatal(err)
	}
	d.wg.Go(func() {
		tick := time.NewTicker(media.SampleFrameDuration)
		defer tick.Stop()
		for i := 0; ; i = (i + 1) % len(aus) {
			select {
			case <-d.stop:
				return
			case <-tick.C:
			}
			if err := d.track.WriteSample(pionmedia.Sample{Data: aus[i].AnnexB(), Duration: media.SampleFrameDuration}); err != nil {
				return
			}
		}
	})
}

func (d *fakeDevice) close() {
	select {
	case <-d.stop:
		return
	default:
	}
	close(d.stop)
	d.pc.Close()
	d.wg.Wait()
}

func TestPlayerFlow(t *testing.T) {
	fb := newFakeBridge(t, time.Minute)
	ctx := browsertest.New(t, browsertest.ExposeLocalIPs())
	if err := browsertest.Navigate(ctx, fb.url+"/?room=frontdoor&stream=cam&token=tk1&transport=srtp"); err != nil {
		t.Fatal(err)
	}
	c := fb.accept(t)
	browsertest.WaitFor(ctx, t, 5*time.Second, `typeof window.ersPlayer === 'object'`)
	if _, err := browsertest.Eval[any](ctx, `(() => {
		window.seen = [];
		for (const n of ['joinedRoom', 'createdPeer', 'checkingPeer', 'connectedPeer', 'disconnectedPeer',
				'connectfailedPeer', 'closePeer', 'playerstarted']) {
			ersPlayer.addEventListener(n, () => seen.push(n));
		}
		window.stages = [];
		ersPlayer.addEventListener('stage', (e) => stages.push(e.detail.stage));
	})()`); err != nil {
		t.Fatal(err)
	}

	// An empty room: the page waits and joins again.
	join := c.next(t, "join", 5*time.Second)
	var room string
	var data map[string]string
	if len(join.Args) != 2 || json.Unmarshal(join.Args[0], &room) != nil || json.Unmarshal(join.Args[1], &data) != nil {
		t.Fatalf("join args = %s, want (room, {token, streamName, transport})", join.Args)
	}
	// The nonce is fresh per join (the device signs its offer for it).
	if n := data["nonce"]; len(n) < 16 {
		t.Errorf("join nonce %q, want a fresh random one", n)
	}
	// It is the hash of the resume key the join carries (trust/resume.go).
	if n, k := data["nonce"], data["resumeKey"]; k == "" || n != trust.ResumeNonce(k) {
		t.Errorf("join nonce %q, resume key %q: want a key and its hash as the nonce", n, k)
	}
	if _, err := trust.ParseResumeKey(data["resumeKey"]); err != nil {
		t.Errorf("join resume key %q: %v", data["resumeKey"], err)
	}
	delete(data, "nonce")
	delete(data, "resumeKey")
	if want := map[string]string{"token": "tk1", "streamName": "cam", "transport": "srtp"}; room != "frontdoor" || fmt.Sprint(data) != fmt.Sprint(want) {
		t.Errorf("join(%q, %v), want join(\"frontdoor\", %v)", room, data, want)
	}
	if join.AckID == "" {
		t.Fatal("join asks for no ack")
	}
	must(t, c.ack(join.AckID, nil, ersproto.DeviceRoom("")))
	browsertest.WaitFor(ctx, t, 5*time.Second, `document.body.dataset.stage === 'waiting' && document.body.dataset.reason === 'no-device' &&
		document.getElementById('message').textContent.startsWith('No device is serving room "frontdoor" right now')`)

	// The device is there on the second try.
	join = c.next(t, "join", 5*time.Second)
	must(t, c.ack(join.AckID, nil, ersproto.DeviceRoom("dev1")))
	browsertest.WaitFor(ctx, t, 5*time.Second, `document.body.dataset.stage === 'joined' && ersPlayer.deviceId === 'dev1'`)

	d := newFakeDevice(t)
	var mu sync.Mutex
	var pending []webrtc.ICECandidateInit // until the answer is applied
	answered := false
	d.pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		ci := cand.ToJSON()
		_ = c.emit("message", map[string]any{
			"from": "dev1", "to": c.sid, "sid": "s1", "roomType": "video", "type": "candidate",
			"payload": map[string]any{"candidate": map[string]any{"candidate": ci.Candidate, "sdpMid": ci.SDPMid, "sdpMLineIndex": ci.SDPMLineIndex}},
		})
	})
	offer, err := d.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	must(t, c.emit("message", map[string]any{
		"from": "dev1", "to": c.sid, "sid": "s1", "roomType": "video", "type": "offer",
		"payload": map[string]string{"type": "offer", "sdp": offer.SDP},
	}))

	// The page answers and trickles candidates; check each message's shape.
	rejoined := make(chan sioEvent, 4)
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		for {
			var ev sioEvent
			select {
			case ev = <-c.events:
			case <-c.done:
				return
			}
			if ev.Name == "join" {
				select {
				case rejoined <- ev:
				default:
				}
				continue
			}
			if ev.Name != "message" || len(ev.Args) != 1 {
				continue
			}
			m, err := ersproto.ParseMessage(ev.Args[0])
			if err != nil {
				t.Errorf("message %s: %v", ev.Args[0], err)
				continue
			}
			if m.To != "dev1" || m.SID != "s1" || m.Broadcaster != "dev1" || m.RoomType != "video" || m.Prefix != "webkit" {
				t.Errorf("message envelope %s, want to=dev1 sid=s1 broadcaster=dev1 roomType=video prefix=webkit", ev.Args[0])
			}
			switch m.Type {
			case "answer":
				var sd webrtc.SessionDescription
				if err := json.Unmarshal(m.Payload, &sd); err != nil || sd.Type != webrtc.SDPTypeAnswer || sd.SDP == "" {
					t.Errorf("answer payload %s: want {type:\"answer\", sdp}", m.Payload)
					continue
				}
				if err := d.pc.SetRemoteDescription(sd); err != nil {
					t.Errorf("device: apply answer: %v", err)
				}
				mu.Lock()
				answered = true
				for _, ci := range pending {
					d.pc.AddICECandidate(ci)
				}
				pending = nil
				mu.Unlock()
			case "candidate":
				var p struct{ Candidate *webrtc.ICECandidateInit }
				if err := json.Unmarshal(m.Payload, &p); err != nil || p.Candidate == nil || p.Candidate.Candidate == "" || p.Candidate.SDPMid == nil {
					t.Errorf("candidate payload %s: want {candidate:{candidate, sdpMid, sdpMLineIndex}}", m.Payload)
					continue
				}
				mu.Lock()
				if answered {
					d.pc.AddICECandidate(*p.Candidate)
				} else {
					pending = append(pending, *p.Candidate)
				}
				mu.Unlock()
			}
		}
	}()

	browsertest.WaitFor(ctx, t, 10*time.Second, `['connected', 'playing'].includes(document.body.dataset.stage)`)
	d.play(t)
	browsertest.WaitFor(ctx, t, 15*time.Second, `document.body.dataset.stage === 'playing'`)
	size, err := browsertest.Eval[[]int](ctx, `[document.getElementById('video').videoWidth, document.getElementById('video').videoHeight]`)
	if err != nil || len(size) != 2 || size[0] != 640 || size[1] != 360 {
		t.Errorf("video size %v (%v), want the clip's 640x360", size, err)
	}

	// The device leaves: the page drops the peer and joins again.
	must(t, c.emit("remove", map[string]string{"id": "dev1", "type": "video"}))
	browsertest.WaitFor(ctx, t, 5*time.Second, `document.body.dataset.stage === 'waiting' && ersPlayer.peerConnection === null`)
	select {
	case <-rejoined:
	case <-time.After(5 * time.Second):
		t.Fatal("no join after the device left")
	}
	seen, err := browsertest.Eval[[]string](ctx, `seen`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(seen, ","), "joinedRoom,createdPeer,checkingPeer,connectedPeer,playerstarted,closePeer"; got != want {
		t.Errorf("player events %s, want %s", got, want)
	}

	// The bridge goes away: the page reconnects with a new session.
	c.ws.CloseNow()
	<-relayDone
	browsertest.WaitFor(ctx, t, 5*time.Second, `document.body.dataset.stage === 'connecting'`)
	c2 := fb.accept(t)
	if c2.sid == c.sid {
		t.Errorf("reconnected with the old sid %s", c.sid)
	}
	c2.next(t, "join", 5*time.Second)

	if _, err := browsertest.Eval[any](ctx, `ersPlayer.close()`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c2.done:
	case <-time.After(5 * time.Second):
		t.Error("the socket stays open after close()")
	}
}

func TestJoinRefused(t *testing.T) {
	fb := newFakeBridge(t, time.Minute)
	ctx := browsertest.New(t)
	if err := browsertest.Navigate(ctx, fb.url+"/?room=frontdoor&token=used"); err != nil {
		t.Fatal(err)
	}
	c := fb.accept(t)
	join := c.next(t, "join", 5*time.Second)
	must(t, c.ack(join.AckID, "invalid token"))
	browsertest.WaitFor(ctx, t, 5*time.Second, `document.body.dataset.stage === 'error' && document.body.dataset.reason === 'token' &&
		document.getElementById('stage').textContent === 'Wrong or missing token' &&
		document.getElementById('message').textContent.includes('invalid token') &&
		document.getElementById('message').textContent.includes('?token=')`)
	// A refusal is final: the page hangs up rather than retrying.
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		t.Error("the socket stays open after a refused join")
	}
}

// TestHeartbeat checks that the page answers heartbeats and drops a bridge
// that falls silent for the announced timeout.
func TestHeartbeat(t *testing.T) {
	fb := newFakeBridge(t, time.Second)
	ctx := browsertest.New(t)
	if err := browsertest.Navigate(ctx, fb.url+"/?room=frontdoor"); err != nil {
		t.Fatal(err)
	}
	c := fb.accept(t)
	c.next(t, "join", 5*time.Second) // never acked
	must(t, c.send("2::"))
	select {
	case <-c.beats:
	case <-time.After(2 * time.Second):
		t.Fatal("no heartbeat answer")
	}
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		t.Fatal("the page keeps a silent bridge")
	}
	browsertest.WaitFor(ctx, t, 2*time.Second, `document.body.dataset.stage === 'connecting' &&
		document.getElementById('message').textContent.includes('heartbeat timeout')`)
	fb.accept(t) // and it comes back
}

// TestPlayerHelpers checks the player's SDP and ICE-server helpers.
func TestPlayerHelpers(t *testing.T) {
	fb := newFakeBridge(t, time.Minute)
	ctx := browsertest.New(t)
	if err := browsertest.Navigate(ctx, fb.url+"/"); err != nil {
		t.Fatal(err)
	}
	got, err := browsertest.Eval[string](ctx, `(async () => {
		const m = await import(new URL('/ersmesh.js', location.href));
		const st = await import(new URL('/stats.js', location.href));
		const sdp = 'v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=fmtp:0 profile-level-id=0x42e00c;packetization-mode=1\r\n' +
			'a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n';
		return JSON.stringify({
			sdp: m.stripBadFmtp(sdp),
			ice: m.iceServersFrom([{url: 'stun:a:3478'}, {urls: ['turn:b:3478?transport=udp', 'turn:b:3478?transport=tcp'], url: 'turn:b:3478?transport=udp', username: 'u', credential: 'p'}, {}, null]),
			notList: m.iceServersFrom(null),
			bridges: m.bridgeList(' http://a:1/x/y, http://a:1,https://b.example ,'),
			bridgeArray: m.bridgeList(['http://c:2']),
			kinds: [{candidateType: 'host'}, {candidateType: 'srflx'}, {candidateType: 'prflx'},
				{candidateType: 'relay', relayProtocol: 'udp'}, {candidateType: 'relay', relayProtocol: 'tcp'},
				{candidateType: 'relay', relayProtocol: 'tls'}, {candidateType: 'relay'}, undefined].map(st.candidateKind),
			badBridge: (() => { try { m.bridgeList('ftp://x'); return 'accepted'; } catch (e) { return e.message; } })(),
		});
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"sdp":"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n",` +
		`"ice":[{"urls":"stun:a:3478"},{"urls":["turn:b:3478?transport=udp","turn:b:3478?transport=tcp"],"username":"u","credential":"p"}],"notList":[],` +
		`"bridges":["http://a:1","https://b.example"],"bridgeArray":["http://c:2"],` +
		`"kinds":["host","srflx","prflx","relay udp","relay tcp","relay tls","relay",""],"badBridge":"ersmesh: bridge \"ftp://x\" is not an http(s) URL"}`
	if got != want {
		t.Errorf("helpers:\n got %s\nwant %s", got, want)
	}
}
