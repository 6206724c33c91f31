package node

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/node/talkback"
	"github.com/ersmesh/ersmesh/signalwire"
	"github.com/ersmesh/ersmesh/trust"
)

const talkSecret = "talk-secret"

// memSink keeps each spurt in memory.
type memSink struct {
	mu     sync.Mutex
	spurts []*memSpurt
}

type memSpurt struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	closed bool
}

func (m *memSpurt) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.buf.Write(p)
}

func (m *memSpurt) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func (s *memSink) Open() (io.WriteCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := &memSpurt{}
	s.spurts = append(s.spurts, sp)
	return sp, nil
}

func (s *memSink) String() string { return "memory" }

// pages counts the Ogg pages written so far to the latest spurt.
func (s *memSink) pages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.spurts) == 0 {
		return 0
	}
	sp := s.spurts[len(s.spurts)-1]
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return bytes.Count(sp.buf.Bytes(), []byte("OggS"))
}

// closedSpurts returns the Ogg bytes of the spurts that ended.
func (s *memSink) closedSpurts() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, sp := range s.spurts {
		sp.mu.Lock()
		if sp.closed {
			out = append(out, bytes.Clone(sp.buf.Bytes()))
		}
		sp.mu.Unlock()
	}
	return out
}

func (s *memSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.spurts)
}

// talker is a pion viewer that proves the room secret (when given one)
// and sends Opus on the audio section the device offers to receive.
type talker struct {
	t     *testing.T
	c     *signalwire.Conn
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticSample

	mu    sync.Mutex
	told  []string // talkback states, "state holder"
	leave string
	stop  chan struct{} // closed: talk returns
	wg    sync.WaitGroup
}

// newTalker joins stream over transport as session. With secret, it
// proves it for fingerprint proveFP (its own certificate's when ""), and
// its answer carries that fingerprint.
func newTalker(t *testing.T, tm *testMesh, session, transport, stream, secret, proveFP string) *talker {
	t.Helper()
	return newTalkerWith(t, tm, session, transport, stream, secret, "", proveFP)
}

// newTalkerWith is newTalker that also proves talkSecret when not "".
func newTalkerWith(t *testing.T, tm *testMesh, session, transport, stream, secret, talkSecret, proveFP string) *talker {
	t.Helper()
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: session, Room: "lobby", Stream: stream, Transport: transport, Nonce: "n-" + session})
	if m := recvSkippingPings(t, c, 5*time.Second); m.Kind != signalwire.KindAccept {
		t.Fatalf("join: %+v", m)
	}
	cert, own := testutil.DTLSCert(t)
	if proveFP == "" {
		proveFP = own
	}
	m := recvSkippingPings(t, c, 5*time.Second)
	if (secret != "" || talkSecret != "") && m.Type != "challenge" {
		t.Fatalf("got %+v, want the challenge", m)
	}
	if m.Type == "challenge" {
		// Answered with what the viewer has; with nothing, the
		// fingerprint alone (a room open to watch).
		var ch struct{ Challenge string }
		json.Unmarshal(m.Payload, &ch)
		auth := map[string]string{"fingerprint": proveFP}
		if secret != "" {
			auth["proof"] = trust.Proof(secret, "lobby", ch.Challenge, proveFP)
		}
		if talkSecret != "" {
			auth["talkProof"] = trust.Proof(talkSecret, "lobby", ch.Challenge, proveFP)
		}
		c.Send(signalOf(t, "auth", auth))
		m = recvSkippingPings(t, c, 5*time.Second)
	}
	if m.Type != "offer" {
		t.Fatalf("got %+v, want the offer", m)
	}
	var offer webrtc.SessionDescription
	json.Unmarshal(m.Payload, &offer)
	if !strings.Contains(offer.SDP, "opus/48000") {
		t.Fatalf("the offer of a talkback stream has no Opus audio section:\n%s", offer.SDP)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	tk := &talker{t: t, c: c, pc: pc, stop: make(chan struct{})}
	t.Cleanup(tk.close)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {})
	if err := pc.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	// The device's receiving audio section: the player's replaceTrack.
	tk.track, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "talker")
	if err != nil {
		t.Fatal(err)
	}
	mid := talkMid(offer.SDP)
	var talkTr *webrtc.RTPTransceiver
	for _, tr := range pc.GetTransceivers() {
		if tr.Mid() == mid {
			talkTr = tr
		}
	}
	if talkTr == nil {
		t.Fatalf("no transceiver for the talkback section %q", mid)
	}
	sender, err := api.NewRTPSender(tk.track, pc.SCTP().Transport())
	if err != nil {
		t.Fatal(err)
	}
	if err := talkTr.SetSender(sender, tk.track); err != nil {
		t.Fatal(err)
	}
	completeAnswer(t, pc)
	sdp := pc.LocalDescription().SDP
	if proveFP != own {
		// A bridge that relayed someone else's proof writes that
		// fingerprint in its own answer.
		sdp = fingerprintLine.ReplaceAllString(sdp, "a=fingerprint:"+proveFP+"\r\n")
	}
	c.Send(signalOf(t, "answer", webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}))
	tk.wg.Go(tk.read)
	return tk
}

// talkMid is the mid of the offer's audio section that receives (the
// player's talkbackMid in talkback.js).
func talkMid(sdp string) string {
	for _, sec := range strings.Split(sdp, "\r\nm=")[1:] {
		if !strings.HasPrefix(sec, "audio ") || !(strings.Contains(sec, "a=recvonly") || strings.Contains(sec, "a=sendrecv")) {
			continue
		}
		for line := range strings.SplitSeq(sec, "\r\n") {
			if m, ok := strings.CutPrefix(line, "a=mid:"); ok {
				return m
			}
		}
	}
	return ""
}

func (tk *talker) read() {
	for {
		m, err := tk.c.Recv(20 * time.Second)
		if err != nil {
			return
		}
		switch {
		case m.Kind == signalwire.KindLeave:
			tk.mu.Lock()
			tk.leave = m.Reason
			tk.mu.Unlock()
			return
		case m.Kind == signalwire.KindSignal && m.Type == "talkback":
			var p struct{ State, Holder, Reason string }
			json.Unmarshal(m.Payload, &p)
			tk.mu.Lock()
			tk.told = append(tk.told, strings.TrimSpace(p.State+" "+p.Holder))
			tk.mu.Unlock()
		case m.Kind == signalwire.KindSignal && m.Type == "candidate":
			var p struct {
				Candidate webrtc.ICECandidateInit `json:"candidate"`
			}
			if json.Unmarshal(m.Payload, &p) == nil {
				tk.pc.AddICECandidate(p.Candidate)
			}
		}
	}
}

// talk sends Opus frames (20 ms of silence each) for d.
func (tk *talker) talk(d time.Duration) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	end := time.After(d)
	for {
		select {
		case <-end:
			return
		case <-tk.stop:
			return
		case <-tick.C:
			// A CELT fullband 20 ms frame of silence (RFC 6716 §3.1 TOC 0xf8).
			tk.track.WriteSample(pionmedia.Sample{Data: []byte{0xf8, 0xff, 0xfe}, Duration: 20 * time.Millisecond})
		}
	}
}

func (tk *talker) toldStates() []string {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return slices.Clone(tk.told)
}

func (tk *talker) leaveReason() string {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.leave
}

func (tk *talker) waitTold(want string, timeout time.Duration) {
	tk.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if slices.Contains(tk.toldStates(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tk.t.Fatalf("the viewer was never told %q; told %q, leave %q", want, tk.toldStates(), tk.leaveReason())
}

func (tk *talker) close() {
	tk.pc.Close()
	tk.c.Reset()
	tk.wg.Wait()
}

func talkMesh(t *testing.T, secret bool, sink talkback.Sink, events chan<- Event) *testMesh {
	return newTestMeshWith(t, func(c *Config) {
		if secret {
			c.Secrets = map[string]string{"lobby": talkSecret}
		}
		c.Talkback = map[string]talkback.Sink{"cam": sink, "phone": sink}
		c.OnEvent = func(ev Event) {
			if strings.HasPrefix(ev.Type, "talkback") {
				select {
				case events <- ev:
				default:
				}
			}
		}
	})
}

func waitSpurts(t *testing.T, sink *memSink, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s := sink.closedSpurts(); len(s) >= n {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the sink has %d ended spurts, want %d", len(sink.closedSpurts()), n)
	return nil
}

// A viewer that proved the room secret is heard, over both transports and
// with the stream's own Opus-less audio (phone, PCMU) beside it.
func TestTalkbackProvenViewerIsHeard(t *testing.T) {
	for _, c := range []struct{ transport, stream string }{{"srtp", "cam"}, {"fmp4", "cam"}, {"srtp", "phone"}} {
		t.Run(c.transport+"/"+c.stream, func(t *testing.T) {
			sink := &memSink{}
			events := make(chan Event, 16)
			tm := talkMesh(t, true, sink, events)
			tk := newTalker(t, tm, "alice", c.transport, c.stream, talkSecret, "")
			// Press until heard, then a second more.
			done := make(chan struct{})
			go func() { defer close(done); tk.talk(10 * time.Second) }()
			tk.waitTold("talking alice", 5*time.Second)
			// A second of audio heard, however long a loaded machine
			// takes to send it (the talker's ticker falls behind).
			for deadline := time.Now().Add(10 * time.Second); sink.pages() < 20 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
			}
			close(tk.stop)
			<-done
			tk.waitTold("released", 5*time.Second)
			spurts := waitSpurts(t, sink, 1)
			if len(spurts) != 1 || !bytes.HasPrefix(spurts[0], []byte("OggS")) || !bytes.Contains(spurts[0], []byte("OpusHead")) {
				t.Fatalf("want one Ogg Opus spurt, got %d (%q...)", len(spurts), spurts[0][:min(40, len(spurts[0]))])
			}
			if pages := bytes.Count(spurts[0], []byte("OggS")); pages < 20 {
				t.Fatalf("the spurt has %d Ogg pages for a second of audio", pages)
			}
			for _, want := range []string{EventTalkbackStarted, EventTalkbackStopped} {
				select {
				case ev := <-events:
					if ev.Type != want || ev.Session != "alice" || ev.Stream != c.stream {
						t.Fatalf("event %+v, want %s of alice on %s", ev, want, c.stream)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("no %s event", want)
				}
			}
		})
	}
}

// A viewer of a room without a secret watches, but its audio is dropped
// and it is told why.
func TestTalkbackRefusesUnprovenViewer(t *testing.T) {
	sink := &memSink{}
	tm := talkMesh(t, false, sink, make(chan Event, 16))
	tk := newTalker(t, tm, "mallory", "fmp4", "cam", "", "")
	// Talk until told: on a loaded machine connecting alone may take seconds.
	done := make(chan struct{})
	go func() { defer close(done); tk.talk(15 * time.Second) }()
	tk.waitTold("refused", 15*time.Second)
	close(tk.stop)
	<-done
	if n := sink.count(); n != 0 {
		t.Fatalf("the sink opened %d spurts for a viewer without the secret", n)
	}
}

// A bridge that relays an honest viewer's proof and answers with its own
// certificate (the proven fingerprint written in) to inject audio is cut
// off before a packet reaches the sink.
func TestTalkbackHostileBridgeCannotInject(t *testing.T) {
	sink := &memSink{}
	tm := talkMesh(t, true, sink, make(chan Event, 16))
	_, proven := testutil.DTLSCert(t)
	tk := newTalker(t, tm, "viewer", "srtp", "cam", talkSecret, proven)
	go tk.talk(3 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for tk.leaveReason() == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// pion's check of the certificate against the answer, or the DTLS
	// gate's against the proof, ends it.
	if r := tk.leaveReason(); r == "" {
		t.Fatal("the bridge's session was not ended")
	}
	if slices.ContainsFunc(tk.toldStates(), func(s string) bool { return strings.HasPrefix(s, talkTalking) }) {
		t.Fatalf("the bridge was told it talks: %q", tk.toldStates())
	}
	if n := sink.count(); n != 0 {
		t.Fatalf("the bridge's audio reached the sink (%d spurts)", n)
	}
}

// Two viewers press at once: the first holds the floor until it stops, the
// other is told who holds it and is heard after.
func TestTalkbackFloor(t *testing.T) {
	sink := &memSink{}
	tm := talkMesh(t, true, sink, make(chan Event, 16))
	a := newTalker(t, tm, "alice", "srtp", "cam", talkSecret, "")
	b := newTalker(t, tm, "bob", "fmp4", "cam", talkSecret, "")
	var wg sync.WaitGroup
	wg.Go(func() { a.talk(2 * time.Second) })
	a.waitTold("talking alice", 10*time.Second)
	wg.Go(func() { b.talk(4 * time.Second) })
	b.waitTold("busy alice", 10*time.Second)
	if slices.Contains(a.toldStates(), "busy bob") {
		t.Fatal("the holder lost the floor")
	}
	// Alice lets go; Bob, still pressing, gets the floor.
	b.waitTold("talking bob", 10*time.Second)
	wg.Wait()
	// Alice's spurt, then Bob's; a loaded machine that stalls a talker
	// for longer than talkIdle splits one in two, which is no error.
	spurts := waitSpurts(t, sink, 2)
	if len(spurts) > 2 {
		t.Logf("%d spurts: a talker stalled for over %v", len(spurts), talkIdle)
	}
	reg := prometheus.NewRegistry()
	if err := tm.dev.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	for result, want := range map[string]float64{"started": float64(sink.count()), "busy": 1, "refused": 0} {
		got := promtest.ToFloat64(metricVec(t, reg, "ersmesh_device_talkback_spurts_total", `result="`+result+`"`))
		if got != want && !(result == "busy" && got > want && len(spurts) > 2) {
			t.Errorf("talkback spurts %s = %v, want %v", result, got, want)
		}
	}
}

// A WHEP client that proved no secret (whepauth.go) is told so before the
// answer, its sendrecv audio section is answered with one the device does
// not receive on, and its voice never reaches the command sink.
func TestTalkbackWHEPWithoutProofNotHeard(t *testing.T) {
	out := filepath.Join(t.TempDir(), "heard.ogg")
	sink, err := talkback.ParseSink("exec:tee " + out)
	if err != nil {
		t.Fatal(err)
	}
	tm := newTestMeshWith(t, func(c *Config) { c.Talkback = map[string]talkback.Sink{"cam": sink} })
	pc, packets := newViewer(t)
	mic, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "whep")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(mic, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		t.Fatal(err)
	}
	offer := completeOffer(t, pc)
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "whep1", Room: "lobby", Stream: "cam", Transport: "srtp", ViewerOffers: true})
	if err := c.Send(signalOf(t, "offer", offer)); err != nil {
		t.Fatal(err)
	}
	if m := recvSkippingPings(t, c, 5*time.Second); m.Kind != signalwire.KindAccept {
		t.Fatalf("join: got %+v, want accept", m)
	}
	m := recvSkippingPings(t, c, 5*time.Second)
	var told struct{ State, Reason string }
	if m.Type != "talkback" || json.Unmarshal(m.Payload, &told) != nil || told.State != talkRefused || !strings.Contains(told.Reason, "room secret") {
		t.Fatalf("got %+v, want talkback refused", m)
	}
	m = recvSkippingPings(t, c, 5*time.Second)
	var answer webrtc.SessionDescription
	if m.Type != "answer" || json.Unmarshal(m.Payload, &answer) != nil {
		t.Fatalf("got %+v, want the answer", m)
	}
	if mid := talkMid(answer.SDP); mid != "" {
		t.Fatalf("the answer's audio section %s receives:\n%s", mid, answer.SDP)
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-packets:
	case <-time.After(15 * time.Second):
		t.Fatal("no video within 15 s")
	}
	for range 50 {
		mic.WriteSample(pionmedia.Sample{Data: []byte{0xf8, 0xff, 0xfe}, Duration: 20 * time.Millisecond})
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(talkIdle)
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a WHEP viewer's audio reached the command sink")
	}
	if n := tm.dev.talk.refused.Load(); n != 0 {
		t.Fatalf("%d refused spurts: the device received audio it had refused in its answer", n)
	}
}

// With a talk secret on the stream, the room secret lets a viewer watch but
// not talk; the talk secret lets it talk, in a room with a room secret or
// without one; a wrong talk secret ends the session like a wrong room
// secret.
func TestTalkbackTalkSecret(t *testing.T) {
	const talkOnly = "talk-only-secret"
	for _, c := range []struct {
		name             string
		roomSecret       bool
		prove, proveTalk string
		want             string // told, or "leave"
	}{
		{"room secret only", true, talkSecret, "", "refused"},
		{"talk secret", true, talkSecret, talkOnly, "talking alice"},
		{"open room, talk secret", false, "", talkOnly, "talking alice"},
		{"open room, no secret", false, "", "", "refused"},
		{"wrong talk secret", true, talkSecret, "guess", "leave"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sink := &memSink{}
			tm := newTestMeshWith(t, func(cfg *Config) {
				if c.roomSecret {
					cfg.Secrets = map[string]string{"lobby": talkSecret}
				}
				cfg.Talkback = map[string]talkback.Sink{"cam": sink}
				cfg.TalkSecrets = map[string]string{"cam": talkOnly}
			})
			if c.want == "leave" {
				cn := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "alice", Room: "lobby", Stream: "cam", Transport: "srtp", Nonce: "n"})
				recvSkippingPings(t, cn, 5*time.Second) // accept
				m := recvSkippingPings(t, cn, 5*time.Second)
				var ch struct{ Challenge string }
				json.Unmarshal(m.Payload, &ch)
				_, fp := testutil.DTLSCert(t)
				cn.Send(signalOf(t, "auth", map[string]string{"fingerprint": fp, "proof": trust.Proof(c.prove, "lobby", ch.Challenge, fp), "talkProof": trust.Proof(c.proveTalk, "lobby", ch.Challenge, fp)}))
				if m := recvSkippingPings(t, cn, 5*time.Second); m.Kind != signalwire.KindLeave || !strings.Contains(m.Reason, "wrong talk secret") {
					t.Fatalf("got %+v, want leave for a wrong talk secret", m)
				}
				return
			}
			tk := newTalkerWith(t, tm, "alice", "srtp", "cam", c.prove, c.proveTalk, "")
			done := make(chan struct{})
			go func() { defer close(done); tk.talk(15 * time.Second) }()
			tk.waitTold(c.want, 15*time.Second)
			close(tk.stop)
			<-done
			heard := sink.count() > 0
			if heard != strings.HasPrefix(c.want, "talking") {
				t.Fatalf("sink opened %d spurts, told %q", sink.count(), tk.toldStates())
			}
		})
	}
}
