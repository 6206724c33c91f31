package media

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// discardContext binds a viewer's track to a writer that drops packets:
// the benchmark measures the stream's fan-out, not SRTP or the network.
type discardContext struct{ id string }

func (c discardContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{{RTPCodecCapability: H264Codec, PayloadType: 102}}
}
func (discardContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (discardContext) SSRC() webrtc.SSRC                                      { return 1 }
func (discardContext) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (discardContext) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (discardContext) WriteStream() webrtc.TrackLocalWriter                   { return discardWriter{} }
func (c discardContext) ID() string                                           { return c.id }
func (discardContext) RTCPReader() interceptor.RTCPReader                     { return nil }

type discardWriter struct{}

func (discardWriter) WriteRTP(_ *rtp.Header, p []byte) (int, error) { return 12 + len(p), nil }
func (discardWriter) Write(b []byte) (int, error)                   { return len(b), nil }

// BenchmarkFanout is the per-frame work of a stream with n fmp4 and n srtp
// viewers: one fMP4 mux and one RTP packetization for all, then a queue
// push per fmp4 viewer and a header copy and write per srtp viewer. One op
// is one video frame of the sample clip (with its share of AAC).
func BenchmarkFanout(b *testing.B) {
	aus, err := SampleClip()
	if err != nil {
		b.Fatal(err)
	}
	audio, format, _ := SampleAudio()
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("viewers=%d+%d", n, n), func(b *testing.B) {
			s := NewStream("bench", idleSource{}, quietLog())
			defer s.Close()
			s.SetAudio(*format)
			for i := range n {
				v, err := s.SubscribeFMP4()
				if err != nil {
					b.Fatal(err)
				}
				go func() {
					for range v.C {
					}
				}()
				r, err := s.SubscribeRTP()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.video.Bind(discardContext{id: fmt.Sprint(i)}); err != nil {
					b.Fatal(err)
				}
			}
			na := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pts := time.Duration(i) * SampleFrameDuration
				for ; na*1024*30 < (i+1)*32000; na++ {
					a := audio[na%len(audio)]
					a.PTS = time.Duration(na) * 32 * time.Millisecond
					s.WriteAudio(a)
				}
				s.WriteVideo(VideoFrame{AU: aus[i%len(aus)], PTS: pts, Duration: SampleFrameDuration})
			}
		})
	}
}
