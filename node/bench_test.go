package node

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/media"
)

// synthetic720p is a stream with the byte rate of 720p30 at 2 Mbit/s: a
// 60 KB keyframe every second and 7 KB frames between. The device never
// decodes video, so random slice data costs what a camera's would; SPS and
// PPS come from the sample clip so that the fMP4 init is valid.
func synthetic720p(tb testing.TB) *media.LoopSource {
	aus, err := media.SampleClip()
	if err != nil {
		tb.Fatal(err)
	}
	var sps, pps []byte
	for _, n := range aus[0].NALUs {
		switch n[0] & 0x1f {
		case 7:
			sps = n
		case 8:
			pps = n
		}
	}
	slice := func(typ byte, size int) []byte {
		b := make([]byte, size)
		rand.Read(b)
		b[0] = 0x60 | typ
		for i := 1; i < len(b); i++ {
			if b[i] < 4 { // no start-code emulation
				b[i] = 4
			}
		}
		return b
	}
	var video []media.AccessUnit
	for i := range 30 {
		if i == 0 {
			video = append(video, media.AccessUnit{NALUs: [][]byte{sps, pps, slice(5, 60000)}, IDR: true})
		} else {
			video = append(video, media.AccessUnit{NALUs: [][]byte{slice(1, 6400)}})
		}
	}
	return &media.LoopSource{Name: "synthetic 720p30 2 Mbit/s", Video: video, FrameDuration: time.Second / 30}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchViewer connects one pion viewer to the device's side of a
// PeerConnection set up exactly as a session does (attachSRTP or
// attachFMP4), with the SDP handed over in-process instead of through a
// bridge. The viewer reads and discards everything.
func benchViewer(tb testing.TB, api *webrtc.API, stream *media.Stream, transport string) (closeFn func()) {
	dev, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var detach func()
	if transport == "fmp4" {
		detach, err = attachFMP4(dev, map[string]*media.Stream{"bench": stream}, log)
	} else {
		_, detach, err = attachSRTP(dev, stream, log)
	}
	if err != nil {
		tb.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	viewer, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		tb.Fatal(err)
	}
	viewer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
		}
	})
	viewer.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() == commandChannelLabel {
			dc.OnOpen(func() { dc.SendText(`{"type":"fmp4Request","payload":{"name":"bench"}}`) })
		}
		dc.OnMessage(func(webrtc.DataChannelMessage) {})
	})
	connected := make(chan struct{})
	var once sync.Once
	viewer.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	offer, err := dev.CreateOffer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	gather := webrtc.GatheringCompletePromise(dev)
	dev.SetLocalDescription(offer)
	<-gather
	if err := viewer.SetRemoteDescription(*dev.LocalDescription()); err != nil {
		tb.Fatal(err)
	}
	answer, _ := viewer.CreateAnswer(nil)
	gather = webrtc.GatheringCompletePromise(viewer)
	viewer.SetLocalDescription(answer)
	<-gather
	if err := dev.SetRemoteDescription(*viewer.LocalDescription()); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		tb.Fatal("viewer did not connect")
	}
	return func() {
		viewer.Close()
		dev.Close()
		detach()
	}
}

// BenchmarkViewersPerCore streams synthetic 720p30 at 2 Mbit/s to n pion
// viewers over loopback for 5 s and reports the process's CPU time per
// viewer. Device and viewers share the process, so the receivers' SRTP
// decryption (or SCTP reassembly) is counted too: the figure is an upper
// bound of the device's cost, and viewers-per-core a lower bound.
func BenchmarkViewersPerCore(b *testing.B) {
	for _, transport := range []string{"srtp", "fmp4"} {
		for _, n := range []int{20, 50} {
			b.Run(fmt.Sprintf("%s/viewers=%d", transport, n), func(b *testing.B) {
				api, err := newWebRTCAPI(true)
				if err != nil {
					b.Fatal(err)
				}
				stream := media.NewStream("bench", synthetic720p(b), slog.New(slog.NewTextHandler(io.Discard, nil)))
				defer stream.Close()
				var closers []func()
				for range n {
					closers = append(closers, benchViewer(b, api, stream, transport))
				}
				defer func() {
					for _, c := range closers {
						c()
					}
				}()
				time.Sleep(2 * time.Second) // GOP bursts and handshakes settle
				const window = 5 * time.Second
				b.ResetTimer()
				for range b.N {
					cpu0, wall0 := cpuTime(), time.Now()
					time.Sleep(window)
					cpu, wall := cpuTime()-cpu0, time.Since(wall0)
					perViewer := cpu.Seconds() / wall.Seconds() / float64(n) // cores per viewer
					b.ReportMetric(perViewer*1000, "mcore/viewer")
					b.ReportMetric(1/perViewer, "viewers/core")
				}
			})
		}
	}
}
