package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"
)

// H264Codec is what a Stream's track announces: Constrained Baseline with
// packetization mode 1, which every WebRTC browser decodes.
var H264Codec = webrtc.RTPCodecCapability{
	MimeType:    webrtc.MimeTypeH264,
	ClockRate:   90000,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
}

// Stream is one named video stream of a device. Its single pacing goroutine
// writes every frame once to a shared track; pion packetizes it once and
// sends the packets to every PeerConnection the track is added to.
type Stream struct {
	name  string
	track *webrtc.TrackLocalStaticSample
	log   *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewSampleStream starts a stream that loops the built-in clip forever.
// RTP timestamps keep advancing across loops (each sample carries its
// duration), so to a viewer the loop is one continuous stream.
func NewSampleStream(name string, log *slog.Logger) (*Stream, error) {
	aus, err := SampleClip()
	if err != nil {
		return nil, err
	}
	return newLoopStream(name, aus, SampleFrameDuration, log)
}

func newLoopStream(name string, aus []AccessUnit, frame time.Duration, log *slog.Logger) (*Stream, error) {
	if len(aus) == 0 {
		return nil, errors.New("no frames to stream")
	}
	if log == nil {
		log = slog.Default()
	}
	track, err := webrtc.NewTrackLocalStaticSample(H264Codec, "video", "ersmesh-"+name)
	if err != nil {
		return nil, fmt.Errorf("create video track for stream %q: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stream{name: name, track: track, log: log, cancel: cancel, done: make(chan struct{})}
	frames := make([][]byte, len(aus))
	for i, au := range aus {
		frames[i] = au.AnnexB()
	}
	go s.loop(ctx, frames, frame)
	return s, nil
}

// Name is the stream name viewers ask for.
func (s *Stream) Name() string { return s.name }

// Track is the shared video track to add to each viewer's PeerConnection.
func (s *Stream) Track() *webrtc.TrackLocalStaticSample { return s.track }

func (s *Stream) loop(ctx context.Context, frames [][]byte, frame time.Duration) {
	defer close(s.done)
	// Pace against an absolute schedule so that jitter in one tick does not
	// accumulate into drift.
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		data := frames[n%len(frames)]
		if err := s.track.WriteSample(pionmedia.Sample{Data: data, Duration: frame}); err != nil {
			s.log.Warn("write video frame", "stream", s.name, "err", err)
		}
		next := start.Add(time.Duration(n+1) * frame)
		wait := time.Until(next)
		if wait < -time.Second {
			// We were stalled (a suspended machine, a debugger): start a new
			// schedule rather than bursting the missed frames.
			start, n = time.Now(), -1
			wait = frame
		}
		timer.Reset(wait)
	}
}

// Close stops the stream and waits for its goroutine.
func (s *Stream) Close() error {
	s.once.Do(s.cancel)
	<-s.done
	return nil
}
