package media

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/ersmesh/ersmesh/node/media/ems"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// feed writes n frames of the sample clip to s as fast as it takes them.
func feed(s *Stream, from, n int) {
	aus, _ := SampleClip()
	for i := from; i < from+n; i++ {
		s.WriteVideo(VideoFrame{AU: aus[i%len(aus)], PTS: time.Duration(i) * SampleFrameDuration, Duration: SampleFrameDuration})
	}
}

// idleSource produces nothing: tests feed the Stream directly.
type idleSource struct{}

func (idleSource) String() string { return "idle:" }
func (idleSource) Run(ctx context.Context, _ Writer) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestSlowFMP4ViewerSkipsToKeyframe: a viewer that does not read loses
// frames once its queue is full and resumes on a keyframe; the reading
// viewer gets every frame; the stream never waits.
func TestSlowFMP4ViewerSkipsToKeyframe(t *testing.T) {
	s := newTestStream(t)
	fast, err := s.SubscribeFMP4()
	if err != nil {
		t.Fatal(err)
	}
	slow, err := s.SubscribeFMP4()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int)
	go func() {
		n := 0
		for range fast.C {
			n++
		}
		got <- n
	}()
	const frames = 3 * viewerQueue
	feed(s, 0, frames) // returns although slow reads nothing
	if len(slow.C) > viewerQueue || slow.Dropped() == 0 {
		t.Fatalf("slow viewer: %d queued, %d dropped; want a full queue and drops", len(slow.C), slow.Dropped())
	}
	// Drain the slow viewer: after the gap, the first chunk is a keyframe.
	for range len(slow.C) {
		<-slow.C
	}
	feed(s, frames, 60)
	first := <-slow.C
	if !first.Key {
		t.Fatal("after skipping, the slow viewer did not resume on a keyframe")
	}
	s.UnsubscribeFMP4(fast)
	s.UnsubscribeFMP4(slow)
	// MOOV + every frame.
	if n := <-got; n != 1+frames+60 {
		t.Fatalf("fast viewer got %d chunks, want %d", n, 1+frames+60)
	}
}

// TestNewViewerStartsOnCachedKeyframe: a viewer joining mid-GOP gets the
// MOOV and the GOP from its keyframe at once.
func TestNewViewerStartsOnCachedKeyframe(t *testing.T) {
	s := newTestStream(t)
	feed(s, 0, 45) // keyframes at 0 and 30: the GOP holds 30..44
	v, err := s.SubscribeFMP4()
	if err != nil {
		t.Fatal(err)
	}
	defer s.UnsubscribeFMP4(v)
	if n := len(v.C); n != 1+15 {
		t.Fatalf("new viewer has %d chunks queued, want the MOOV and 15 cached frames", n)
	}
	if c := <-v.C; !c.Key || c.Data[0] != 250 {
		t.Fatal("first chunk is not the MOOV record")
	}
	if c := <-v.C; !c.Key {
		t.Fatal("first frame is not a keyframe")
	}
}

func newTestStream(t *testing.T) *Stream {
	t.Helper()
	s := NewStream("test", idleSource{}, quietLog())
	t.Cleanup(func() { s.Close() })
	return s
}

func TestADTSReaderRejectsGarbage(t *testing.T) {
	for name, in := range map[string][]byte{
		"text":      []byte("definitely not audio"),
		"truncated": sampleAAC[:100],
		"no sync":   {0xff, 0x00, 1, 2, 3, 4, 5, 6, 7},
	} {
		_, _, err := readAllADTS(bytes.NewReader(in))
		if !errors.Is(err, ErrNotADTS) {
			t.Errorf("%s: err = %v, want ErrNotADTS", name, err)
		}
	}
}

func FuzzADTSReader(f *testing.F) {
	f.Add(sampleAAC[:600])
	f.Add([]byte{0xff, 0xf1, 0x50, 0x80, 0x02, 0x1f, 0xfc})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewADTSReader(bytes.NewReader(in))
		total := 0
		for {
			b, err := r.ReadFrame()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrNotADTS) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				break
			}
			total += len(b)
		}
		if total > len(in) {
			t.Fatalf("read %d bytes of audio from %d input bytes", total, len(in))
		}
	})
}

// TestKeyframeRequestAnsweredFromCache: after a PLI, the viewer gets the
// cached GOP again before the next frame, with timestamps that still grow.
func TestKeyframeRequestAnsweredFromCache(t *testing.T) {
	s := newTestStream(t)
	v, err := s.SubscribeRTP()
	if err != nil {
		t.Fatal(err)
	}
	var ts tsRecorder
	if _, err := v.video.Bind(tsContext{discardContext{id: "y"}, &ts}); err != nil {
		t.Fatal(err)
	}
	feed(s, 0, 10) // keyframe at 0: frames 0..9, the GOP holds them
	ts.waitFor(t, tsOf(9))
	before := ts.count()
	v.RequestKeyframe()
	feed(s, 10, 1)
	ts.waitFor(t, tsOf(10))
	frames := ts.frames()
	// Frame 10 plus a burst of frames 0..9.
	if got := ts.count() - before; got != 11 {
		t.Fatalf("after a PLI the viewer got %d frames, want the 10 cached and the new one", got)
	}
	for i := 1; i < len(frames); i++ {
		if int32(frames[i]-frames[i-1]) <= 0 {
			t.Fatalf("timestamps go back at frame %d: %v", i, frames)
		}
	}
	// A second request within a second is not answered again.
	v.RequestKeyframe()
	before = ts.count()
	feed(s, 11, 1)
	ts.waitFor(t, tsOf(11))
	if got := ts.count() - before; got != 1 {
		t.Fatalf("a second PLI within a second gave %d frames, want 1", got)
	}
}

// tsRecorder records the RTP timestamps of frames' last packets.
type tsRecorder struct {
	mu sync.Mutex
	ts []uint32
}

func (r *tsRecorder) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.ts) }

// waitFor waits until the frame with RTP timestamp ts has been written:
// viewers' writers run on their own goroutines.
func (r *tsRecorder) waitFor(t *testing.T, ts uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.ts)
		got := n > 0 && r.ts[n-1] == ts
		r.mu.Unlock()
		if got {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("frame with timestamp %d not written in 10 s; %d frames written", ts, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// tsOf is the RTP timestamp of frame i of feed.
func tsOf(i int) uint32 { return uint32(ticks(time.Duration(i)*SampleFrameDuration, clockRate)) }
func (r *tsRecorder) frames() []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint32(nil), r.ts...)
}

type tsContext struct {
	discardContext
	r *tsRecorder
}

func (c tsContext) WriteStream() webrtc.TrackLocalWriter { return tsWriter{c.r} }

type tsWriter struct{ r *tsRecorder }

func (w tsWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	if h.Marker {
		w.r.mu.Lock()
		w.r.ts = append(w.r.ts, h.Timestamp)
		w.r.mu.Unlock()
	}
	return 12 + len(p), nil
}
func (w tsWriter) Write(b []byte) (int, error) { return len(b), nil }

// TestNewParametersNewInit: when the source's SPS changes at a keyframe (a
// camera switched resolution, a reconnect), fmp4 viewers get a new MOOV
// right before that keyframe.
func TestNewParametersNewInit(t *testing.T) {
	s := newTestStream(t)
	v, err := s.SubscribeFMP4()
	if err != nil {
		t.Fatal(err)
	}
	defer s.UnsubscribeFMP4(v)
	feed(s, 0, 30)
	aus, _ := SampleClip()
	key := aus[0]
	changed := AccessUnit{IDR: true}
	for _, n := range key.NALUs {
		if n[0]&0x1f == 7 {
			n = append([]byte(nil), n...)
			n[3] = 0x28 // level 4.0 instead of 3.1
		}
		changed.NALUs = append(changed.NALUs, n)
	}
	s.WriteVideo(VideoFrame{AU: changed, PTS: 30 * SampleFrameDuration, Duration: SampleFrameDuration})
	var p ems.Parser
	var inits []ems.Init
	var keysAfterInit []bool
	lastWasInit := false
	for range 1 + 30 + 2 {
		c := <-v.C
		if err := p.Feed(c.Data, func(in ems.Init) { inits = append(inits, in); lastWasInit = true }, func(ems.Segment) {
			if lastWasInit {
				keysAfterInit = append(keysAfterInit, c.Key)
			}
			lastWasInit = false
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(inits) != 2 || inits[0].Codecs() != "avc1.42c01f" || inits[1].Codecs() != "avc1.42c028" {
		t.Fatalf("inits %v, want the first and a new one with level 4.0", inits)
	}
	for _, k := range keysAfterInit {
		if !k {
			t.Fatal("a MOOV is followed by a frame that is not a keyframe")
		}
	}
}

// TestBurstWaitsForSRTP: pion binds an offerer's track before SRTP is up
// and drops what is written until then; the GOP burst must not be spent
// into that void.
func TestBurstWaitsForSRTP(t *testing.T) {
	s := newTestStream(t)
	v, err := s.SubscribeRTP()
	if err != nil {
		t.Fatal(err)
	}
	var ts tsRecorder
	sw := &switchWriter{w: tsWriter{&ts}}
	if _, err := v.video.Bind(switchContext{discardContext{id: "y"}, sw}); err != nil {
		t.Fatal(err)
	}
	feed(s, 0, 10) // SRTP not up: everything is dropped
	// Not live yet, the writer tries one packet per frame.
	deadline := time.Now().Add(10 * time.Second)
	for sw.tries.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("the writer tried %d frames of 10", sw.tries.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if ts.count() != 0 || sw.tries.Load() != 10 {
		t.Fatalf("%d frames went out before SRTP was up, %d packets tried", ts.count(), sw.tries.Load())
	}
	sw.up.Store(true)
	feed(s, 10, 1)
	ts.waitFor(t, tsOf(10))
	// The whole GOP (frames 0..10) at once, then live frames.
	if got := ts.count(); got != 11 {
		t.Fatalf("once SRTP is up the viewer got %d frames, want the GOP of 11", got)
	}
}

// switchWriter drops packets, as pion does before SRTP is up, until up.
type switchWriter struct {
	w     webrtc.TrackLocalWriter
	up    atomic.Bool
	tries atomic.Int64 // packets dropped
}

type switchContext struct {
	discardContext
	sw *switchWriter
}

func (c switchContext) WriteStream() webrtc.TrackLocalWriter { return c.sw }

func (w *switchWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	if !w.up.Load() {
		w.tries.Add(1)
		return 0, nil
	}
	return w.w.WriteRTP(h, p)
}
func (w *switchWriter) Write(b []byte) (int, error) { return len(b), nil }

func TestTicksDoNotOverflow(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second / 30, 90 * time.Second, 48 * time.Hour, 365 * 24 * time.Hour} {
		want := d.Seconds() * 90000
		if got := float64(ticks(d, 90000)); got < want-1 || got > want+1 {
			t.Errorf("ticks(%v) = %v, want %v", d, got, want)
		}
	}
}
