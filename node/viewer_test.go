package node

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/pkg/formats/fmp4"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/media/ems"
	"github.com/ersmesh/ersmesh/signalwire"
)

// testViewer is a pion peer that plays the browser's part of the EMS flow
// over a signalling stream opened as a bridge would: it answers the
// device's offer, trickles candidates, and records what media it gets.
type testViewer struct {
	t    *testing.T
	c    *signalwire.Conn
	pc   *webrtc.PeerConnection
	done chan struct{} // the signalling reader ended

	closeOnce sync.Once

	// stall, when set before the media starts, makes the viewer stop
	// reading: its receive buffers fill and the device must not care.
	stall   bool
	unstall chan struct{}
	// requestName is what an fmp4 viewer asks for; the join's stream by default.
	requestName string

	mu       sync.Mutex
	offerSDP string
	// srtp: video RTP timestamps of completed frames (marker bit), in order.
	frames []uint32
	// firstNAL is the NAL unit type of the first video packet's first unit
	// (inside a STAP-A or FU-A).
	firstNAL      byte
	senderReports int
	// srtp audio
	audioCodec   string
	audioPackets int
	// fmp4
	response *fmp4Response
	init     *ems.Init
	segments []ems.Segment
	parseErr error
}

// testViewerHidesAddresses makes test viewers hide their host candidates
// behind mDNS names, as browsers do (TestViewersBehindMDNSNames, alone in
// its process).
var testViewerHidesAddresses bool

func newTestViewer(t *testing.T, tm *testMesh, session, transport, stream string, first ...interceptor.Factory) *testViewer {
	t.Helper()
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: session, Room: "lobby", Stream: stream, Transport: transport})
	return newTestViewerOn(t, c, stream, first...)
}

// newTestViewerOn is newTestViewer on a signalling stream that has sent its
// join already, from whichever host opened it.
func newTestViewerOn(t *testing.T, c *signalwire.Conn, stream string, first ...interceptor.Factory) *testViewer {
	t.Helper()
	if m, err := c.Recv(5 * time.Second); err != nil || m.Kind != signalwire.KindAccept {
		t.Fatalf("join: %v %+v", err, m)
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	// Interceptors registered first sit nearest the network.
	for _, f := range first {
		ir.Add(f)
	}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	if testViewerHidesAddresses {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeQueryAndGather)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &testViewer{t: t, c: c, pc: pc, done: make(chan struct{}), unstall: make(chan struct{}), requestName: stream}
	t.Cleanup(v.close)
	pc.OnTrack(v.onTrack)
	pc.OnDataChannel(v.onDataChannel)
	var sidMu sync.Mutex
	var sid string
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		payload, _ := json.Marshal(map[string]any{"candidate": cand.ToJSON()})
		sidMu.Lock()
		defer sidMu.Unlock()
		c.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "candidate", SID: sid, Payload: payload})
	})
	go func() {
		defer close(v.done)
		for {
			m, err := c.Recv(20 * time.Second)
			if err != nil {
				return
			}
			if m.Kind != signalwire.KindSignal {
				continue
			}
			switch m.Type {
			case "offer":
				var offer webrtc.SessionDescription
				if err := json.Unmarshal(m.Payload, &offer); err != nil {
					t.Error(err)
					return
				}
				v.mu.Lock()
				v.offerSDP = offer.SDP
				v.mu.Unlock()
				if err := pc.SetRemoteDescription(offer); err != nil {
					t.Error(err)
					return
				}
				answer, err := pc.CreateAnswer(nil)
				if err != nil {
					t.Error(err)
					return
				}
				sidMu.Lock()
				sid = m.SID
				err = pc.SetLocalDescription(answer)
				sidMu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
				payload, _ := json.Marshal(answer)
				c.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "answer", SID: m.SID, Payload: payload})
			case "candidate":
				var p struct {
					Candidate webrtc.ICECandidateInit `json:"candidate"`
				}
				if err := json.Unmarshal(m.Payload, &p); err != nil {
					t.Error(err)
					return
				}
				pc.AddICECandidate(p.Candidate)
			}
		}
	}()
	return v
}

func (v *testViewer) onTrack(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	if tr.Kind() == webrtc.RTPCodecTypeVideo {
		// The device's RTCP: sender reports (RFC 3550 §6.4.1).
		go func() {
			for {
				pkts, _, err := recv.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					if _, ok := p.(*rtcp.SenderReport); ok {
						v.mu.Lock()
						v.senderReports++
						v.mu.Unlock()
					}
				}
			}
		}()
	}
	if tr.Kind() != webrtc.RTPCodecTypeVideo {
		v.mu.Lock()
		v.audioCodec = tr.Codec().MimeType
		v.mu.Unlock()
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			v.mu.Lock()
			v.audioPackets++
			v.mu.Unlock()
		}
	}
	if mt := tr.Codec().MimeType; mt != webrtc.MimeTypeH264 && mt != webrtc.MimeTypeH265 {
		v.t.Errorf("video track codec %s, want H.264 (or H.265 from an H.265 source)", mt)
	}
	if v.stall {
		return // never read again
	}
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		v.mu.Lock()
		if v.firstNAL == 0 && len(p.Payload) > 2 {
			switch t := p.Payload[0] & 0x1f; t {
			case 24: // STAP-A: 2-byte size, then the first unit
				if len(p.Payload) > 3 {
					v.firstNAL = p.Payload[3] & 0x1f
				}
			case 28: // FU-A
				v.firstNAL = p.Payload[1] & 0x1f
			default:
				v.firstNAL = t
			}
		}
		v.mu.Unlock()
		if p.Marker {
			v.mu.Lock()
			v.frames = append(v.frames, p.Timestamp)
			v.mu.Unlock()
		}
	}
}

func (v *testViewer) onDataChannel(dc *webrtc.DataChannel) {
	switch dc.Label() {
	case commandChannelLabel:
		dc.OnOpen(func() {
			v.mu.Lock()
			name := v.requestName
			v.mu.Unlock()
			b, _ := json.Marshal(map[string]any{"type": "fmp4Request", "payload": map[string]string{"name": name}})
			dc.SendText(string(b))
		})
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			var c struct {
				Type    string       `json:"type"`
				Payload fmp4Response `json:"payload"`
			}
			if err := json.Unmarshal(m.Data, &c); err != nil || c.Type != "fmp4Response" {
				v.t.Errorf("command channel: %q (%v)", m.Data, err)
				return
			}
			v.mu.Lock()
			v.response = &c.Payload
			v.mu.Unlock()
		})
	case streamChannelLabel:
		var p ems.Parser
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			if v.stall {
				<-v.unstall // holds up this viewer's SCTP reader, as a slow link would
				return
			}
			v.mu.Lock()
			defer v.mu.Unlock()
			if v.parseErr != nil {
				return
			}
			v.parseErr = p.Feed(m.Data, func(in ems.Init) { v.init = &in }, func(s ems.Segment) { v.segments = append(v.segments, s) })
		})
	default:
		v.t.Errorf("unexpected data channel %q", dc.Label())
	}
}

func (v *testViewer) close() {
	v.closeOnce.Do(func() {
		close(v.unstall)
		v.c.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "test done"})
		v.pc.Close()
		v.c.Reset()
		<-v.done
	})
}

func (v *testViewer) frameCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.frames)
}

// waitFor polls cond (called under the viewer's lock) until true.
func (v *testViewer) waitFor(what string, timeout time.Duration, cond func() bool) {
	v.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v.mu.Lock()
		ok := cond()
		v.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("viewer: %s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// parseSegment decodes a media segment with mediacommon's reader.
func parseSegment(t *testing.T, s ems.Segment) fmp4.Parts {
	t.Helper()
	var parts fmp4.Parts
	if err := parts.Unmarshal(s.Bytes()); err != nil {
		t.Fatalf("segment is not valid fMP4: %v", err)
	}
	return parts
}

func offerHas(sdp, s string) bool { return strings.Contains(sdp, s) }
