package node

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// BenchmarkFMP4Frame sends one viewer a second of 720p30 fmp4 (a 60 KB
// keyframe's records, then 29 of 6.4 KB) over a real data channel on
// loopback, one frame per op, each op waiting until the viewer has the
// frame: the whole per-viewer cost of a frame (SCTP, DTLS, the socket, the
// viewer's acknowledgements) with the message sizes the device may use.
// The viewer is a pion peer in the same process, so allocs/op and
// cpu-µs/frame count both ends; the difference between sizes is the
// sender's.
func BenchmarkFMP4Frame(b *testing.B) {
	for _, size := range []int{minMessage, 64 << 10, maxMessage} {
		b.Run(fmt.Sprintf("message=%dKiB", size>>10), func(b *testing.B) { benchFMP4Frame(b, size) })
	}
}

func benchFMP4Frame(b *testing.B, size int) {
	api, err := newWebRTCAPI(true, iceFailedTimeout)
	if err != nil {
		b.Fatal(err)
	}
	dev, _, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	ordered := true
	dc, err := dev.CreateDataChannel(streamChannelLabel, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		b.Fatal(err)
	}
	open := make(chan struct{})
	dc.OnOpen(func() { close(open) })
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	viewer, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	defer viewer.Close()
	var got atomic.Int64
	arrived := make(chan struct{}, 1)
	viewer.OnDataChannel(func(d *webrtc.DataChannel) {
		d.OnMessage(func(m webrtc.DataChannelMessage) {
			got.Add(int64(len(m.Data)))
			select {
			case arrived <- struct{}{}:
			default:
			}
		})
	})
	pairUp(b, dev, viewer)
	select {
	case <-open:
	case <-time.After(10 * time.Second):
		b.Fatal("the data channel did not open")
	}
	frames := make([][]byte, 30)
	for i := range frames {
		n := 6400 + 150 // a P frame's slice and its records' framing
		if i == 0 {
			n = 60000 + 150
		}
		frames[i] = make([]byte, n)
	}
	var want int64
	send := func(i int) {
		f := frames[i%len(frames)]
		want += int64(len(f))
		if err := sendChunked(dc, f, size); err != nil {
			b.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for got.Load() < want {
			select {
			case <-arrived:
			case <-deadline:
				b.Fatalf("the viewer has %d of %d bytes", got.Load(), want)
			}
		}
	}
	for i := range 60 { // congestion window and buffers grown
		send(i)
	}
	u0, s0 := cpuTimes()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		send(i)
	}
	b.StopTimer()
	u1, s1 := cpuTimes()
	b.ReportMetric(float64((u1-u0)+(s1-s0))/float64(time.Microsecond)/float64(b.N), "cpu-µs/frame")
}
