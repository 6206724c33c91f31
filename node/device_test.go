package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/ersmesh/ersmesh/internal/testutil/testmesh"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/signalwire"
)

func TestMain(m *testing.M) {
	// TestBenchViewerHelper is BenchmarkViewersPerCore's child process, not
	// a test: a normal run leaves it out.
	if os.Getenv(helperEnv) != "1" {
		flag.Set("test.skip", "^TestBenchViewerHelper$")
	}
	goleak.VerifyTestMain(m)
}

// testMesh is a bootstrap, a device serving room "lobby" and a bare host
// standing in for a bridge: it opens signalling streams itself, so the test
// sees every message the device sends.
type testMesh struct {
	bridge *mesh.Host
	device *mesh.Host
	dev    *Device
}

func newTestMesh(t *testing.T) *testMesh { return newTestMeshWith(t, nil) }

// newTestMeshWith is newTestMesh with the device's Config changed by tune.
func newTestMeshWith(t *testing.T, tune func(*Config)) *testMesh {
	t.Helper()
	return newTestMeshFull(t, nil, tune)
}

// newTestMeshFull is newTestMeshWith with the device's mesh.Config changed
// by tuneMesh too.
func newTestMeshFull(t *testing.T, tuneMesh func(*mesh.Config), tune func(*Config)) *testMesh {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, addrs := testmesh.Bootstrap(t)
	tm := &testMesh{}
	tm.bridge = testmesh.Host(t, addrs, nil)
	tm.device = testmesh.Host(t, addrs, tuneMesh)
	stream, err := media.NewSampleStream("cam", nil)
	if err != nil {
		t.Fatal(err)
	}
	// "phone": the sample's video with G.711 µ-law audio (silence), which
	// srtp viewers get as a PCMU track.
	aus, _ := media.SampleClip()
	silence := make([]media.AudioFrame, 50)
	for i := range silence {
		silence[i] = media.AudioFrame{Data: bytes.Repeat([]byte{0xff}, 160), Samples: 160}
	}
	phone := media.NewStream("phone", &media.LoopSource{Name: "sample video, PCMU silence", Video: aus,
		FrameDuration: media.SampleFrameDuration, Audio: silence,
		AudioFormat: &media.AudioFormat{Codec: media.AudioPCMU, SampleRate: 8000, Channels: 1}}, nil)
	cfg := Config{
		Mesh: tm.device, Rooms: []string{"lobby"},
		Streams:         map[string]*media.Stream{"cam": stream, "phone": phone},
		IncludeLoopback: true,
	}
	if tune != nil {
		tune(&cfg)
	}
	tm.dev, err = New(ctx, cfg)
	if err != nil {
		stream.Close()
		phone.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { tm.dev.Close() })
	return tm
}

// open starts a signalling session as a bridge would.
func (tm *testMesh) open(t *testing.T, join *signalwire.Message) *signalwire.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := mesh.NewResolver(tm.bridge, mesh.ResolverOptions{})
	info, err := r.Resolve(ctx, join.Room)
	if err != nil {
		t.Fatalf("resolve %q: %v", join.Room, err)
	}
	if info.ID != tm.device.ID() {
		t.Fatalf("room resolved to %s, want the device %s", info.ID, tm.device.ID())
	}
	if err := tm.bridge.Libp2p().Connect(ctx, info); err != nil {
		t.Fatal(err)
	}
	s, err := tm.bridge.Libp2p().NewStream(network.WithAllowLimitedConn(ctx, "test"), info.ID, signalwire.ProtocolID)
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

func TestDeviceRefusesWhatItDoesNotServe(t *testing.T) {
	tm := newTestMesh(t)
	for _, tc := range []struct {
		join *signalwire.Message
		want string
	}{
		{&signalwire.Message{Kind: signalwire.KindJoin, Room: "lobby", Stream: "nope"}, `stream "nope" not found; this device serves: cam, phone`},
		{&signalwire.Message{Kind: signalwire.KindJoin, Room: "lobby", Stream: "nope", Transport: "fmp4"}, `stream "nope" not found; this device serves: cam, phone`},
	} {
		c := tm.open(t, tc.join)
		m, err := c.Recv(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind != signalwire.KindReject || !strings.Contains(m.Reason, tc.want) {
			t.Errorf("join %+v: got %s %q, want a reject containing %q", tc.join, m.Kind, m.Reason, tc.want)
		}
	}
}

func TestDeviceRefusesGarbageStream(t *testing.T) {
	tm := newTestMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tm.bridge.Libp2p().Connect(ctx, tm.device.Libp2p().Peerstore().PeerInfo(tm.device.ID())); err != nil {
		t.Fatal(err)
	}
	s, err := tm.bridge.Libp2p().NewStream(ctx, tm.device.ID(), signalwire.ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	// A frame announcing 1 GiB: the device must drop the stream, not allocate.
	s.Write([]byte{0x80, 0x80, 0x80, 0x80, 0x04})
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(s).ReadByte(); err == nil {
		t.Fatal("device answered a garbage frame instead of resetting the stream")
	}
}

// TestViewerReceivesVideo runs the EMS flow against the device with a real
// pion viewer: join, offer from the device, answer, trickled candidates,
// then H.264 RTP arrives.
func TestViewerReceivesVideo(t *testing.T) {
	tm := newTestMesh(t)
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "viewer1", Room: "lobby", Stream: "cam", Transport: "srtp"})
	if m, err := c.Recv(5 * time.Second); err != nil || m.Kind != signalwire.KindAccept {
		t.Fatalf("join: %v %+v", err, m)
	}

	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	gotPackets := make(chan int, 1)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Codec().MimeType != webrtc.MimeTypeH264 {
			t.Errorf("track codec %s, want H.264", tr.Codec().MimeType)
		}
		n := 0
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			if n++; n == 100 {
				gotPackets <- n
			}
		}
	})
	var sid string
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		payload, _ := json.Marshal(map[string]any{"candidate": cand.ToJSON()})
		c.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "candidate", SID: sid, Payload: payload})
	})

	sawOffer := false
	deadline := time.After(15 * time.Second)
	msgs := make(chan *signalwire.Message)
	go func() {
		defer close(msgs)
		for {
			m, err := c.Recv(20 * time.Second)
			if err != nil {
				return
			}
			msgs <- m
		}
	}()
	for {
		select {
		case <-deadline:
			t.Fatal("no video within 15 s")
		case n := <-gotPackets:
			t.Logf("received %d RTP packets", n)
			// The metrics see this viewer and what it was sent.
			reg := prometheus.NewRegistry()
			if err := tm.dev.RegisterMetrics(reg); err != nil {
				t.Fatal(err)
			}
			if got := testutil.ToFloat64(metricVec(t, reg, "ersmesh_device_viewers", `transport="srtp"`, `flow="ers"`)); got != 1 {
				t.Errorf("ersmesh_device_viewers{srtp,ers} = %v, want 1", got)
			}
			if got := testutil.ToFloat64(metricVec(t, reg, "ersmesh_device_stream_sent_bytes_total", `stream="cam"`)); got < 100*12 {
				t.Errorf("sent bytes for stream cam = %v, want at least the 100 packets' headers", got)
			}
			// The viewer's video went out in batches (node/udpbatch); the
			// counters move once a batch's system call has returned, the
			// last batch may not be counted yet.
			batched := testutil.ToFloat64(metricVec(t, reg, "ersmesh_device_udp_batched_datagrams_total"))
			sends := testutil.ToFloat64(metricVec(t, reg, "ersmesh_device_udp_batch_sends_total"))
			if batched < float64(n)/2 || sends < 1 || sends > batched {
				t.Errorf("%v datagrams sent in batches by %v system calls, want most of the %d packets received", batched, sends, n)
			}
			c.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "test done"})
			pc.Close()
			for range msgs {
			}
			return
		case m, ok := <-msgs:
			if !ok {
				t.Fatal("device closed the session early")
			}
			if m.Kind != signalwire.KindSignal {
				continue
			}
			switch m.Type {
			case "offer":
				sawOffer = true
				sid = m.SID
				var offer webrtc.SessionDescription
				if err := json.Unmarshal(m.Payload, &offer); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(offer.SDP, "a=sendonly") || !strings.Contains(offer.SDP, "H264") {
					t.Fatalf("offer is not a sendonly H.264 offer:\n%s", offer.SDP)
				}
				if err := pc.SetRemoteDescription(offer); err != nil {
					t.Fatal(err)
				}
				answer, err := pc.CreateAnswer(nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := pc.SetLocalDescription(answer); err != nil {
					t.Fatal(err)
				}
				payload, _ := json.Marshal(answer)
				c.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "answer", SID: sid, Payload: payload})
			case "candidate":
				if !sawOffer {
					t.Fatal("candidate arrived before the offer")
				}
				var p struct {
					Candidate webrtc.ICECandidateInit `json:"candidate"`
				}
				if err := json.Unmarshal(m.Payload, &p); err != nil {
					t.Fatal(err)
				}
				if err := pc.AddICECandidate(p.Candidate); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// metricVec picks the one series of name whose labels include every one
// of want ("key=\"value\""), as a collector testutil can read.
func metricVec(t *testing.T, g prometheus.Gatherer, name string, want ...string) prometheus.Collector {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			for _, w := range want {
				if !slices.Contains(labels, w) {
					continue series
				}
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "picked", Help: "picked"}, func() float64 { return v })
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return nil
}
