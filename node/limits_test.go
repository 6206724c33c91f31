package node

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/signalwire"
)

// newBareHost is a libp2p host outside the DHT, standing in for a bridge
// (or an attacker) that dials the device directly. Its own resource manager
// is off, so that only the device's limits are under test.
func newBareHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func (tm *testMesh) deviceInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: tm.device.ID(), Addrs: tm.device.Libp2p().Addrs()}
}

// openFrom starts a signalling session from h, as a bridge would.
func (tm *testMesh) openFrom(t *testing.T, h host.Host, join *signalwire.Message) *signalwire.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, tm.deviceInfo()); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(ctx, tm.device.ID(), signalwire.ProtocolID)
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

type resources struct {
	goroutines int
	heapKiB    uint64
}

func measure() resources {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return resources{goroutines: runtime.NumGoroutine(), heapKiB: m.HeapInuse >> 10}
}

// waitFrames waits until v has received n more srtp frames than now.
func waitFrames(t *testing.T, v *testViewer, n int, what string) {
	t.Helper()
	start := v.frameCount()
	v.waitFor(what, 15*time.Second, func() bool { return len(v.frames) >= start+n })
}

// TestHostilePeerStreamsAreCapped: one peer opens thousands of signalling
// streams to a device. The device holds no more than the peer's cap at any
// time and refuses the rest at once; a viewer through another bridge keeps
// its video, and a new one joins during the flood.
func TestHostilePeerStreamsAreCapped(t *testing.T) {
	const perPeer = 20
	tm := newTestMeshWith(t, func(c *Config) {
		c.Limits = Limits{MaxStreamsPerPeer: perPeer, StreamRate: 50, StreamBurst: 100}
	})
	honest := newTestViewer(t, tm, "honest1", "srtp", "cam")
	waitFrames(t, honest, 10, "video before the flood")
	before := measure()

	hostile := newBareHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := hostile.Connect(ctx, tm.deviceInfo()); err != nil {
		t.Fatal(err)
	}

	// Sample the device's open streams while the flood runs.
	var peak atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := int64(tm.dev.LimitStats().Streams); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()

	const attempts = 3000
	var (
		mu      sync.Mutex
		streams []network.Stream
		openErr atomic.Int64
		wg      sync.WaitGroup
	)
	next := atomic.Int64{}
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= attempts {
				// An idle stream: it negotiates the protocol and then says
				// nothing, holding its slot until the join timeout.
				s, err := hostile.NewStream(ctx, tm.device.ID(), signalwire.ProtocolID)
				if err != nil {
					openErr.Add(1)
					continue
				}
				s.Write([]byte{}) // flush the lazy protocol negotiation
				mu.Lock()
				streams = append(streams, s)
				mu.Unlock()
			}
		})
	}
	// A second honest viewer joins while the flood runs.
	honest2 := newTestViewer(t, tm, "honest2", "srtp", "cam")
	wg.Wait()
	during := measure()
	waitFrames(t, honest2, 10, "video for a viewer who joined during the flood")
	waitFrames(t, honest, 10, "video for the first viewer during the flood")
	// Let the device see every stream before reading its counters.
	time.Sleep(500 * time.Millisecond)
	close(stopSampling)
	<-sampled
	st := tm.dev.LimitStats()
	t.Logf("%d stream attempts (%d failed to open at the hostile side): peak %d streams open on the device (2 honest), refused %d over the per-peer cap, %d over the rate, %d over the total",
		attempts, openErr.Load(), peak.Load(), st.RefusedPeerStreams, st.RefusedRate, st.RefusedStreams)
	if p := peak.Load(); p > perPeer+2 {
		t.Fatalf("the device held %d streams at once, want at most %d (the cap) + 2 honest", p, perPeer+2)
	}
	if st.RefusedPeerStreams+st.RefusedRate < attempts/2 {
		t.Fatalf("the device refused only %d of %d streams", st.RefusedPeerStreams+st.RefusedRate, attempts)
	}

	// Once the attacker's streams are gone, only the honest sessions remain.
	mu.Lock()
	for _, s := range streams {
		s.Reset()
	}
	mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for tm.dev.LimitStats().Streams != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open after the flood, want the 2 honest ones", tm.dev.LimitStats().Streams)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFrames(t, honest, 10, "video after the flood")
	after := measure()
	t.Logf("test process: goroutines %d before the flood, %d during, %d after; heap in use %d KiB, %d KiB, %d KiB",
		before.goroutines, during.goroutines, after.goroutines, before.heapKiB, during.heapKiB, after.heapKiB)
}

// TestStreamRateLimitsOnePeerOnly: a peer past its token bucket is refused
// while another peer opens a session at once.
func TestStreamRateLimitsOnePeerOnly(t *testing.T) {
	tm := newTestMeshWith(t, func(c *Config) {
		c.Limits = Limits{StreamRate: 1, StreamBurst: 3}
	})
	fast := newBareHost(t)
	ctx := t.Context()
	if err := fast.Connect(ctx, tm.deviceInfo()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		s, err := fast.NewStream(ctx, tm.device.ID(), signalwire.ProtocolID)
		if err == nil {
			s.Write([]byte{})
			defer s.Reset()
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for tm.dev.LimitStats().RefusedRate < 7 {
		if time.Now().After(deadline) {
			t.Fatalf("refused %d streams over the rate, want 7 of 10 with a burst of 3", tm.dev.LimitStats().RefusedRate)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "other", Room: "lobby", Stream: "cam"})
	if m, err := c.Recv(5 * time.Second); err != nil || m.Kind != signalwire.KindAccept {
		t.Fatalf("another bridge's join during the first one's burst: %v %+v", err, m)
	}

	// Operators see the refusals.
	reg := prometheus.NewRegistry()
	if err := tm.dev.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var refusedRate float64 = -1
	for _, f := range families {
		if f.GetName() != "ersmesh_device_signalling_streams_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limit" && l.GetValue() == "rate" {
					refusedRate = m.GetCounter().GetValue()
				}
			}
		}
	}
	if refusedRate < 7 {
		t.Fatalf("metric of streams refused over the rate = %v, want at least 7", refusedRate)
	}
}

// TestUnconnectedSessionIsEnded: a join whose viewer never answers is
// ended after UnconnectedTimeout, though its bridge keeps pinging; a viewer
// that connected is not.
func TestUnconnectedSessionIsEnded(t *testing.T) {
	const timeout = 2 * time.Second
	tm := newTestMeshWith(t, func(c *Config) { c.Limits = Limits{UnconnectedTimeout: timeout} })
	watching := newTestViewer(t, tm, "watching", "srtp", "cam")
	waitFrames(t, watching, 5, "video")

	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "silent", Room: "lobby", Stream: "cam"})
	stopPings := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		for {
			select {
			case <-stopPings:
				return
			case <-time.After(300 * time.Millisecond):
				c.Send(&signalwire.Message{Kind: signalwire.KindPing})
			}
		}
	}()
	defer func() { close(stopPings); <-pinged }()
	start := time.Now()
	var leave *signalwire.Message
	for leave == nil {
		m, err := c.Recv(3 * timeout)
		if err != nil {
			t.Fatalf("no leave for a viewer that never connected: %v", err)
		}
		if m.Kind == signalwire.KindLeave {
			leave = m
		}
	}
	t.Logf("ended after %v: %q", time.Since(start).Round(time.Millisecond), leave.Reason)
	if !strings.Contains(leave.Reason, "did not connect") {
		t.Fatalf("leave reason %q does not say the viewer did not connect", leave.Reason)
	}
	if got := tm.dev.LimitStats().UnconnectedEnded; got != 1 {
		t.Fatalf("UnconnectedEnded = %d, want 1", got)
	}
	// The connected viewer outlived the timeout and still gets video.
	waitFrames(t, watching, 10, "video after the timeout")
	if got := tm.dev.LimitStats().UnconnectedEnded; got != 1 {
		t.Fatalf("UnconnectedEnded = %d after the connected viewer outlived the timeout, want 1", got)
	}
}

// TestTrimmingKeepsViewerBridges: the device's connection manager trims
// below its low watermark; the connection of a bridge relaying a live
// viewer stays up (and the video flows), an idle bridge's is closed.
func TestTrimmingKeepsViewerBridges(t *testing.T) {
	tm := newTestMeshFull(t, func(mc *mesh.Config) {
		mc.ConnLow, mc.ConnHigh, mc.ConnGrace = 1, 2, time.Millisecond
	}, nil)
	withViewer := newBareHost(t)
	c := tm.openFrom(t, withViewer, &signalwire.Message{Kind: signalwire.KindJoin, Session: "v1", Room: "lobby", Stream: "cam"})
	v := newTestViewerOn(t, c, "cam")
	waitFrames(t, v, 5, "video before trimming")

	idle := newBareHost(t)
	ctx := t.Context()
	if err := idle.Connect(ctx, tm.deviceInfo()); err != nil {
		t.Fatal(err)
	}
	cm := tm.device.Libp2p().ConnManager()
	for range 5 {
		f := newBareHost(t)
		if err := f.Connect(ctx, tm.deviceInfo()); err != nil {
			t.Fatal(err)
		}
		// Worth a little more than an idle bridge, so that the idle one is
		// surely among the trimmed; the viewer's bridge is worth nothing
		// but its protection.
		cm.TagPeer(f.ID(), "test-filler", 1)
	}
	if !cm.IsProtected(withViewer.ID(), viewerProtectTag) {
		t.Fatal("the bridge with a viewer is not protected")
	}
	time.Sleep(20 * time.Millisecond) // past the grace period
	before := len(tm.device.Libp2p().Network().Conns())
	cm.TrimOpenConns(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for tm.device.Libp2p().Network().Connectedness(idle.ID()) == network.Connected {
		if time.Now().After(deadline) {
			t.Fatal("trimming left the idle bridge connected: the test cannot tell protection from luck")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("trimmed from %d to %d connections", before, len(tm.device.Libp2p().Network().Conns()))
	if tm.device.Libp2p().Network().Connectedness(withViewer.ID()) != network.Connected {
		t.Fatal("trimming closed the connection of a bridge with a live viewer")
	}
	waitFrames(t, v, 10, "video after trimming")

	// When the session ends, so does the protection.
	v.close()
	deadline = time.Now().Add(5 * time.Second)
	for cm.IsProtected(withViewer.ID(), viewerProtectTag) {
		if time.Now().After(deadline) {
			t.Fatal("the bridge is still protected after its only session ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSignallingFloodEndsOnlyThatSession: a bridge that floods one session
// with messages gets that session ended; its other session, on the same
// connection, keeps its video.
func TestSignallingFloodEndsOnlyThatSession(t *testing.T) {
	tm := newTestMesh(t)
	watching := newTestViewer(t, tm, "watching", "srtp", "cam")
	waitFrames(t, watching, 5, "video")
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "flood", Room: "lobby", Stream: "cam"})
	got := make(chan *signalwire.Message, 1)
	go func() {
		for {
			m, err := c.Recv(10 * time.Second)
			if err != nil {
				close(got)
				return
			}
			if m.Kind == signalwire.KindLeave {
				got <- m
				close(got)
				return
			}
		}
	}()
	for i := 0; i < 2*sessionMsgBurst; i++ {
		if c.Send(&signalwire.Message{Kind: signalwire.KindPing}) != nil {
			break // the device has ended the session already
		}
	}
	m, ok := <-got
	if !ok || !strings.Contains(m.Reason, "too many signalling messages") {
		t.Fatalf("flooded session: got %+v, want a leave for too many messages", m)
	}
	waitFrames(t, watching, 10, "video for the other session after the flood")
}
