package media

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// gateWriter passes packets to w until closed is set; from then on each
// write blocks until open is closed, as a send to a stuck socket does.
type gateWriter struct {
	w      webrtc.TrackLocalWriter
	closed atomic.Bool
	open   chan struct{}
	stuck  atomic.Int64 // writes blocked right now
}

func (g *gateWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	if g.closed.Load() {
		g.stuck.Add(1)
		<-g.open
		g.stuck.Add(-1)
	}
	return g.w.WriteRTP(h, p)
}
func (g *gateWriter) Write(b []byte) (int, error) { return len(b), nil }

type gateContext struct {
	discardContext
	codec webrtc.RTPCodecCapability
	g     *gateWriter
}

func (c gateContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{{RTPCodecCapability: c.codec, PayloadType: 102}}
}
func (c gateContext) WriteStream() webrtc.TrackLocalWriter { return c.g }

// TestBlockedViewerDelaysNoOne: an srtp viewer whose sends block for
// seconds holds up neither the source nor any other viewer: every frame and
// audio packet reaches the other viewer while the blocked one is still
// stuck in its first send. The blocked viewer's queue overflows, and when
// its sends go through again it resumes on a keyframe.
func TestBlockedViewerDelaysNoOne(t *testing.T) {
	s := newTestStream(t)
	opus := AudioFormat{Codec: AudioOpus, SampleRate: 48000, Channels: 2}
	s.SetAudio(opus)
	aus, _ := SampleClip()

	type viewer struct {
		v            *RTPViewer
		video, audio *gateWriter
		ts           tsRecorder
		packets      atomic.Int64
	}
	subscribe := func() *viewer {
		v, err := s.SubscribeRTP()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.UnsubscribeRTP(v) })
		w := &viewer{v: v}
		w.video = &gateWriter{w: tsWriter{&w.ts}, open: make(chan struct{})}
		w.audio = &gateWriter{w: countingWriter{&w.packets}, open: make(chan struct{})}
		if _, err := v.video.Bind(gateContext{discardContext{id: "v"}, H264Codec, w.video}); err != nil {
			t.Fatal(err)
		}
		if v.audio == nil {
			t.Fatal("no audio track for an Opus stream")
		}
		if _, err := v.audio.Bind(gateContext{discardContext{id: "a"}, *s.audioCodec, w.audio}); err != nil {
			t.Fatal(err)
		}
		return w
	}
	free, blocked := subscribe(), subscribe()
	// Release the blocked viewer however the test ends, so that its
	// writer (and the stream's Close) can finish.
	var released atomic.Bool
	release := func() {
		if released.CompareAndSwap(false, true) {
			close(blocked.video.open)
			close(blocked.audio.open)
		}
	}
	t.Cleanup(release)

	frame := 0
	write := func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.WriteAudio(AudioFrame{Data: []byte{0xfc, 1, 2, 3}, Samples: 960})
			feed(s, frame, 1)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the source is stalled: writing frame %d took over 10 s", frame)
		}
		frame++
	}
	// One GOP with both viewers well.
	for range 30 {
		write()
	}
	free.ts.waitFor(t, tsOf(29))
	blocked.ts.waitFor(t, tsOf(29))

	// The blocked viewer's sends block from now on: two seconds at 30 fps,
	// then more frames than its queue holds, at once.
	blocked.video.closed.Store(true)
	blocked.audio.closed.Store(true)
	start := time.Now()
	for frame < 30+60 {
		write()
		// The free viewer has this frame and this audio packet before
		// the next one is written, while the blocked one is stuck.
		free.ts.waitFor(t, tsOf(frame-1))
		if n := free.packets.Load(); n != int64(frame) {
			t.Fatalf("free viewer has %d audio packets after %d written", n, frame)
		}
		time.Sleep(time.Until(start.Add(time.Duration(frame-30) * SampleFrameDuration)))
	}
	for frame < 30+60+rtpQueue+45 {
		write()
	}
	free.ts.waitFor(t, tsOf(frame-1))
	if blocked.video.stuck.Load()+blocked.audio.stuck.Load() != 1 {
		t.Fatalf("the blocked viewer is not stuck in a send (%d, %d)", blocked.video.stuck.Load(), blocked.audio.stuck.Load())
	}
	if got := free.ts.count(); got != frame {
		t.Fatalf("free viewer got %d frames of %d", got, frame)
	}
	if blocked.v.Dropped() == 0 {
		t.Fatal("the blocked viewer's queue never overflowed")
	}
	t.Logf("blocked for %v; the blocked viewer dropped %d frames", time.Since(start).Round(time.Millisecond), blocked.v.Dropped())

	// Unblocked, the viewer sends what it had queued, skips, and resumes
	// on a keyframe.
	release()
	last := frame
	for range 60 {
		write()
	}
	blocked.ts.waitFor(t, tsOf(frame-1))
	index := map[uint32]int{}
	for i := range frame {
		index[tsOf(i)] = i
	}
	got := blocked.ts.frames()
	jumps := 0
	for j := 1; j < len(got); j++ {
		prev, cur := index[got[j-1]], index[got[j]]
		if cur == prev+1 {
			continue
		}
		jumps++
		if cur <= prev || !aus[cur%len(aus)].IDR {
			t.Fatalf("after skipping from frame %d the blocked viewer resumed at frame %d, not a keyframe", prev, cur)
		}
	}
	if jumps == 0 {
		t.Fatal("the blocked viewer skipped nothing")
	}
	if index[got[len(got)-1]] < last {
		t.Fatal("the blocked viewer never caught up with the live frames")
	}
}
