package media

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// holdLog records, for an srtp viewer, every packet written and the batch
// (SendBatch hold) it was written in.
type holdLog struct {
	mu      sync.Mutex
	hold    int // the current hold's number; 0: none open
	holds   int
	written []loggedPacket
}

type loggedPacket struct {
	audio, marker bool
	ts            uint32
	hold          int
}

func (l *holdLog) Hold() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holds++
	l.hold = l.holds
}

func (l *holdLog) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hold = 0
}

func (l *holdLog) packets() []loggedPacket {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loggedPacket(nil), l.written...)
}

// waitFor waits until ok holds for the packets written, for up to 10 s.
func (l *holdLog) waitFor(t *testing.T, what string, ok func([]loggedPacket) bool) []loggedPacket {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if p := l.packets(); ok(p) {
			return p
		} else if time.Now().After(deadline) {
			t.Fatalf("after 10 s, still waiting for %s; written: %+v", what, p)
		}
	}
}

type holdLogWriter struct {
	l     *holdLog
	audio bool
}

func (w holdLogWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	w.l.written = append(w.l.written, loggedPacket{audio: w.audio, marker: h.Marker, ts: h.Timestamp, hold: w.l.hold})
	return 12 + len(p), nil
}
func (w holdLogWriter) Write(b []byte) (int, error) { return len(b), nil }

type holdLogContext struct {
	discardContext
	codec webrtc.RTPCodecCapability
	w     holdLogWriter
}

func (c holdLogContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{{RTPCodecCapability: c.codec, PayloadType: 102}}
}
func (c holdLogContext) WriteStream() webrtc.TrackLocalWriter { return c.w }

// subscribeHoldLog adds an srtp viewer to s whose tracks and batches log
// into a holdLog.
func subscribeHoldLog(t *testing.T, s *Stream) *holdLog {
	t.Helper()
	v, err := s.SubscribeRTP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.UnsubscribeRTP(v) })
	l := &holdLog{}
	v.SetSendBatch(l)
	if _, err := v.video.Bind(holdLogContext{discardContext{id: "v"}, H264Codec, holdLogWriter{l, false}}); err != nil {
		t.Fatal(err)
	}
	if v.audio == nil {
		t.Fatal("no audio track for an Opus stream")
	}
	if _, err := v.audio.Bind(holdLogContext{discardContext{id: "a"}, *s.audioCodec, holdLogWriter{l, true}}); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestAudioRidesWithTheNextFrame: an srtp viewer's audio packets wait for
// the next video frame and go out in its batch (one system call), before
// its packets; none is sent on its own while video flows.
func TestAudioRidesWithTheNextFrame(t *testing.T) {
	s := newTestStream(t)
	s.SetAudio(AudioFormat{Codec: AudioOpus, SampleRate: 48000, Channels: 2})
	s.audioHold = time.Hour // video always comes first here
	l := subscribeHoldLog(t, s)
	frames := func(p []loggedPacket) (n int) {
		for _, x := range p {
			if !x.audio && x.marker {
				n++
			}
		}
		return n
	}
	feed(s, 0, 1) // the keyframe: the viewer's video starts
	l.waitFor(t, "the keyframe", func(p []loggedPacket) bool { return frames(p) == 1 })
	for i := 1; i < 10; i++ {
		before := len(l.packets())
		s.WriteAudio(AudioFrame{Data: []byte{0xfc, byte(i), 1}, Samples: 960})
		s.WriteAudio(AudioFrame{Data: []byte{0xfc, byte(i), 2}, Samples: 960})
		// Given time to go out on its own, the audio does not.
		time.Sleep(20 * time.Millisecond)
		if p := l.packets(); len(p) > before {
			t.Fatalf("frame %d: audio went out before the next video frame: %+v", i, p[before:])
		}
		feed(s, i, 1)
		p := l.waitFor(t, "the frame and its audio", func(p []loggedPacket) bool { return frames(p) == i+1 })[before:]
		if len(p) < 3 || !p[0].audio || !p[1].audio || p[2].audio {
			t.Fatalf("frame %d: want its two audio packets, then its video; got %+v", i, p)
		}
		for _, x := range p {
			if x.hold == 0 || x.hold != p[0].hold {
				t.Fatalf("frame %d: its audio and video did not go in one batch: %+v", i, p)
			}
		}
	}
}

// TestAudioWithoutVideoStillGoes: audio held for a video frame that does
// not come goes out alone after audioHold, every packet, in order.
func TestAudioWithoutVideoStillGoes(t *testing.T) {
	s := newTestStream(t)
	s.SetAudio(AudioFormat{Codec: AudioOpus, SampleRate: 48000, Channels: 2})
	s.audioHold = time.Millisecond
	l := subscribeHoldLog(t, s)
	for i := range 5 {
		s.WriteAudio(AudioFrame{Data: []byte{0xfc, byte(i)}, Samples: 960})
	}
	p := l.waitFor(t, "five audio packets", func(p []loggedPacket) bool { return len(p) >= 5 })
	for i, x := range p {
		if !x.audio || i > 0 && x.ts != p[i-1].ts+960 {
			t.Fatalf("want five audio packets 960 samples apart, in order: %+v", p)
		}
	}
}
