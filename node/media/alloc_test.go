package media

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/udpbatch"
)

// frozenConn is a receiver's UDP socket that can stop being read: from
// then on the receiving PeerConnection does nothing, so what a test counts
// is the sender's alone. The kernel drops what is not read.
// Until then it counts the RTP packets that arrive, by sequence number
// (in clear in the SRTP header) on the media SSRC, and those on another
// SSRC (RTX retransmissions, RFC 4588).
type frozenConn struct {
	net.PacketConn
	frozen atomic.Bool
	closed chan struct{}
	once   sync.Once

	mu    sync.Mutex
	media uint32 // the video SSRC; 0 until set
	seqs  map[uint16]int
	other int
	last  uint16
}

func (c *frozenConn) count(b []byte) {
	// RTP (version 2), not RTCP (packet types 192-223).
	if len(b) < 12 || b[0]>>6 != 2 || (b[1] >= 192 && b[1] <= 223) {
		return
	}
	seq := binary.BigEndian.Uint16(b[2:])
	ssrc := binary.BigEndian.Uint32(b[8:])
	c.mu.Lock()
	if c.media == 0 || ssrc == c.media {
		c.seqs[seq]++
		c.last = seq
	} else {
		c.other++
	}
	c.mu.Unlock()
}

// counts is the packets counted so far, those sent again (the same
// sequence number again, or on the RTX SSRC), and the last sequence
// number.
func (c *frozenConn) counts() (total, again int, last uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.seqs {
		total += n
		again += n - 1
	}
	return total, again + c.other, c.last
}

func (c *frozenConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		if c.frozen.Load() {
			<-c.closed
			return 0, nil, net.ErrClosed
		}
		n, a, err := c.PacketConn.ReadFrom(p)
		if err != nil || !c.frozen.Load() {
			if err == nil {
				c.count(p[:n])
			}
			return n, a, err
		}
	}
}

func (c *frozenConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.PacketConn.Close()
}

// connectViewer connects v's tracks, through a device PeerConnection set
// up as the device sets them up (RegisterInterceptors), to a receiving
// PeerConnection on loopback whose socket the returned conn can freeze.
func connectViewer(t *testing.T, v *RTPViewer) (*frozenConn, *webrtc.PeerConnection) {
	conn, viewer, _ := connectViewerBatched(t, v, false)
	return conn, viewer
}

// connectViewerBatched is connectViewer, with batched the device
// PeerConnection's sockets a udpbatch.Net as the device's are (node's
// peerAPI), its NACK responder and v's writer holding it.
func connectViewerBatched(t *testing.T, v *RTPViewer, batched bool) (*frozenConn, *webrtc.PeerConnection, *udpbatch.Net) {
	t.Helper()
	loopback := func(se *webrtc.SettingEngine) {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	RegisterFeedback(m)
	var batch *udpbatch.Net
	var se webrtc.SettingEngine
	if batched {
		var err error
		if batch, err = udpbatch.New(nil, nil); err != nil {
			t.Fatal(err)
		}
		se.SetNet(batch)
		v.SetSendBatch(batch)
	}
	ir := &interceptor.Registry{}
	var sb SendBatch
	if batch != nil {
		sb = batch
	}
	if err := AddInterceptors(ir, sb); err != nil {
		t.Fatal(err)
	}
	loopback(&se)
	device, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { device.Close() })

	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn := &frozenConn{PacketConn: udp, closed: make(chan struct{}), seqs: map[uint16]int{}}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn})
	var rse webrtc.SettingEngine
	loopback(&rse)
	rse.SetICEUDPMux(mux)
	viewer, err := webrtc.NewAPI(webrtc.WithSettingEngine(rse)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		viewer.Close()
		mux.Close()
		conn.Close()
	})

	for _, tr := range []webrtc.TrackLocal{v.Track(), v.AudioTrack()} {
		if tr == nil {
			continue
		}
		s, err := device.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				if _, _, err := s.ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	connected := make(chan struct{})
	var once sync.Once
	device.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	offer, err := device.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(device)
	device.SetLocalDescription(offer)
	<-gathered
	if err := viewer.SetRemoteDescription(*device.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := viewer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(viewer)
	viewer.SetLocalDescription(answer)
	<-gathered
	if err := device.SetRemoteDescription(*viewer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatal("the viewer did not connect")
	}
	return conn, viewer, batch
}

// TestSRTPSendAllocatesNothing: sending a frame and the audio that waited
// for it to an srtp viewer (RTP header, NACK history, sender report
// counters, SRTP, the socket) allocates nothing per packet, through a real PeerConnection: with plain sockets, and
// with the device's batching ones (udpbatch: the queue, sendmmsg and GSO).
func TestSRTPSendAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (sync.Pool drops items); .ci/run runs this test without it")
	}
	for _, batched := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "batched"}[batched], func(t *testing.T) {
			s := newTestStream(t)
			s.SetAudio(AudioFormat{Codec: AudioOpus, SampleRate: 48000, Channels: 2})
			v, err := s.SubscribeRTP()
			if err != nil {
				t.Fatal(err)
			}
			conn, _, batch := connectViewerBatched(t, v, batched)
			// Frames and audio until SRTP is up and the GOP burst has gone
			// out.
			deadline := time.Now().Add(20 * time.Second)
			for i := 0; !v.video.live.Load() || !v.audio.live.Load(); i++ {
				if time.Now().After(deadline) {
					t.Fatal("no packet went out in 20 s")
				}
				s.WriteAudio(AudioFrame{Data: []byte{0xfc, 1, 2, 3}, Samples: 960})
				feed(s, i, 1)
				time.Sleep(10 * time.Millisecond)
			}
			// The writer goroutine ends here, so that this one may send.
			s.UnsubscribeRTP(v)
			conn.frozen.Store(true)
			s.mu.Lock()
			key := s.gop.usable()[0]
			s.mu.Unlock()
			if len(key.RTP) < 5 {
				t.Fatalf("keyframe of %d packets; want a large one", len(key.RTP))
			}
			before := v.s.Sent()
			var batched0 uint64
			if batch != nil {
				batched0, _ = batch.Stats()
			}
			ts := v.lastTS
			// A frame with the two audio packets that waited for it
			// (Stream.holdAudio), as the writer sends them.
			audio := []*rtp.Packet{
				{Header: rtp.Header{Version: 2, PayloadType: 111, Timestamp: 1000}, Payload: []byte{0xfc, 1, 2, 3}},
				{Header: rtp.Header{Version: 2, PayloadType: 111, Timestamp: 1960}, Payload: []byte{0xfc, 4, 5, 6}},
			}
			at := time.Now()
			allocs := testing.AllocsPerRun(50, func() {
				ts += 3000
				if batch != nil {
					batch.Hold()
					defer batch.Flush()
				}
				v.writeAudio(audio, at)
				if !v.send(key, ts) {
					t.Fatal("send failed")
				}
			})
			if v.s.Sent() == before || v.errs > 0 {
				t.Fatalf("nothing was sent (%d errors)", v.errs)
			}
			if batch != nil {
				if n, _ := batch.Stats(); n-batched0 < uint64(50*len(key.RTP)) {
					t.Fatalf("%d datagrams went through the batches, want the %d sent", n-batched0, 50*len(key.RTP))
				}
			}
			t.Logf("%.0f allocations per frame of %d packets", allocs, len(key.RTP))
			if allocs != 0 {
				t.Fatalf("%.0f allocations per frame of %d packets, want none", allocs, len(key.RTP))
			}
		})
	}
}
