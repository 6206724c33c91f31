package media

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/pkg/codecs/h265"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

// H264Codec is what a Stream's video tracks announce: Constrained Baseline
// with packetization mode 1, which every WebRTC browser decodes.
var H264Codec = webrtc.RTPCodecCapability{
	MimeType:    webrtc.MimeTypeH264,
	ClockRate:   90000,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
}

// Limits of the per-stream caches and per-viewer queues. They bound memory
// whatever the source sends and however slow a viewer is.
// H265Codec is what the video tracks of an H.265 stream announce (RFC
// 7798). Pion's default codecs offer it, so a browser that can receive
// H.265 keeps it in its answer; one that cannot leaves it out, and the
// track cannot bind (see ErrNoH265 in package node).
var H265Codec = webrtc.RTPCodecCapability{
	MimeType:  webrtc.MimeTypeH265,
	ClockRate: 90000,
}

const (
	maxGOPFrames = 300      // frames kept since the last keyframe (10 s at 30 fps)
	maxGOPBytes  = 16 << 20 // bytes kept since the last keyframe
	viewerQueue  = maxGOPFrames + 64
	rtpMTU       = 1200 // leaves room for SRTP, TURN and IPv6 headers in 1500
	clockRate    = 90000
)

// Writer takes a source's frames. Stream implements it; a source calls it
// from one goroutine.
type Writer interface {
	// SetAudio announces the audio track; call it before the first frame.
	SetAudio(AudioFormat)
	WriteVideo(VideoFrame)
	WriteAudio(AudioFrame)
}

// Source produces a stream's frames. Run calls w until ctx ends or the
// source fails; it returns nil only when the source ended on its own (the
// end of a pipe). String names the source for logs and errors.
type Source interface {
	Run(ctx context.Context, w Writer) error
	String() string
}

// KeyframeRequester is a Source that can be asked for a keyframe: a live
// camera, unlike a file or a pipe.
type KeyframeRequester interface {
	RequestKeyframe()
}

// keyframeInterval bounds how often a stream passes viewers' keyframe
// requests on to its source: one per second for all viewers together.
const keyframeInterval = time.Second

// AddSent counts n bytes handed to a viewer's transport (for a transport
// that sends outside the Stream, such as fmp4's data channels).
func (s *Stream) AddSent(n int) { s.sent.Add(uint64(n)) }

// Sent is the media bytes sent to this stream's viewers so far.
func (s *Stream) Sent() uint64 { return s.sent.Load() }

// RequestKeyframe passes a viewer's keyframe request on to the source when
// it can make one, at most once per keyframeInterval. Viewers are answered
// from the GOP cache meanwhile (RTPViewer.RequestKeyframe); a fresh
// keyframe from the camera shortens the GOP they then have to decode.
func (s *Stream) RequestKeyframe() {
	kr, ok := s.src.(KeyframeRequester)
	if !ok {
		return
	}
	now := time.Now().UnixNano()
	last := s.lastKeyReq.Load()
	if now-last < int64(keyframeInterval) || !s.lastKeyReq.CompareAndSwap(last, now) {
		return
	}
	kr.RequestKeyframe()
}

// Stream is one named stream of a device: one goroutine reads its source,
// and each frame is packetized and muxed once and handed to every viewer.
// It keeps the current GOP so that a new viewer starts on a keyframe at once.
type Stream struct {
	name string
	src  Source
	log  *slog.Logger

	lastKeyReq atomic.Int64  // unix ns of the last keyframe request passed to src
	sent       atomic.Uint64 // media bytes handed to viewers' transports

	// mu guards everything below; held per frame and per (un)subscribe,
	// never across a viewer's send: viewers' writers send from their own
	// queues.
	mu          sync.Mutex
	audio       *AudioFormat
	audioCodec  *webrtc.RTPCodecCapability // Opus, PCMU or PCMA: srtp viewers' audio tracks
	audioPacket rtp.Packetizer             // for audioCodec, once for all viewers
	sps, pps    []byte
	vps         []byte     // H.265 only
	codec       VideoCodec // the first frame's; frames of another codec are dropped
	codecKnown  bool
	codecSeen   chan struct{} // closed once codec is known
	mux         *fmp4Muxer
	moov        []byte // the EMS MOOV record, once sps/pps (and the audio format) are known
	moovGen     int    // counts MOOVs: a new SPS (a camera that changed resolution) makes a new one
	pending     []AudioFrame
	gop         gopCache
	packetizer  rtp.Packetizer
	lastPTS     time.Duration
	lastDur     time.Duration
	base        time.Duration // added to the source's PTS, so restarts continue the clock
	rebase      bool
	nextPTS     time.Duration
	fsubs       map[*FMP4Viewer]struct{}
	// signer, when set, signs every fmp4 unit once for all signed viewers
	// (docs/relay.md): unitSeq counts units, moovSeq is the current MOOV's
	// seq and moovSig its SIG record.
	signer  UnitSigner
	unitSeq uint64
	moovSeq uint64
	moovSig []byte
	rsubs   map[*RTPViewer]struct{}
	// heldAudio are audio packets for the srtp viewers waiting for the
	// next video frame (holdAudio); audioTimer sends them if none comes.
	heldAudio   []*rtp.Packet
	heldAudioAt time.Time // when the last of them came
	audioTimer  *time.Timer
	audioArmed  sync.WaitGroup // one per arming of audioTimer: done when stopped or run
	audioHold   time.Duration  // audioHold; tests change it
	frames      atomic.Uint64

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewStream starts reading src. A source that fails is restarted with a
// backoff (a camera that dropped comes back); one that ends, or fails with
// ErrBadSource (garbage, an unsupported codec), ends the stream.
func NewStream(name string, src Source, log *slog.Logger) *Stream {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stream{
		name: name, src: src, log: log.With("stream", name, "source", src.String()),
		fsubs: map[*FMP4Viewer]struct{}{}, rsubs: map[*RTPViewer]struct{}{},
		cancel: cancel, done: make(chan struct{}), codecSeen: make(chan struct{}), audioHold: audioHold,
		packetizer: rtp.NewPacketizer(rtpMTU, 0, 0, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), clockRate),
	}
	if l, ok := src.(interface{ setLogger(*slog.Logger) }); ok {
		l.setLogger(s.log)
	}
	go s.run(ctx)
	return s
}

// NewSampleStream starts a stream that loops the built-in clip (H.264 and
// AAC) forever.
func NewSampleStream(name string, log *slog.Logger) (*Stream, error) {
	src, err := NewSampleSource()
	if err != nil {
		return nil, err
	}
	return NewStream(name, src, log), nil
}

func (s *Stream) run(ctx context.Context) {
	defer close(s.done)
	backoff := 500 * time.Millisecond
	for {
		s.mu.Lock()
		s.rebase = true
		s.mu.Unlock()
		started := time.Now()
		err := s.src.Run(ctx, s)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			s.log.Info("source ended")
			return
		}
		if errors.Is(err, ErrBadSource) {
			// Garbage or an unsupported codec: trying again cannot help.
			s.log.Error("source unusable; stream stopped", "err", err)
			return
		}
		if time.Since(started) > 30*time.Second {
			backoff = 500 * time.Millisecond
		}
		s.log.Warn("source failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// Name is the stream name viewers ask for.
func (s *Stream) Name() string { return s.name }

// VideoCodec is the codec of the stream's video, once its source delivered
// a frame; known is false before.
func (s *Stream) VideoCodec() (c VideoCodec, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codec, s.codecKnown
}

// WaitVideoCodec waits until the source delivered its first frame or ctx
// ends, and returns the stream's video codec: an srtp viewer's track must
// announce it before the offer is made.
func (s *Stream) WaitVideoCodec(ctx context.Context) (VideoCodec, error) {
	select {
	case <-s.codecSeen:
		c, _ := s.VideoCodec()
		return c, nil
	case <-s.done:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Source names the stream's source.
func (s *Stream) Source() string { return s.src.String() }

// Frames counts the video frames the stream has handled.
func (s *Stream) Frames() uint64 { return s.frames.Load() }

// Audio is the stream's audio format, nil if it has none (or none yet).
func (s *Stream) Audio() *AudioFormat {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.audio
}

// SetAudio implements Writer.
func (s *Stream) SetAudio(f AudioFormat) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audio != nil {
		if s.audio.Codec != f.Codec || s.audio.SampleRate != f.SampleRate || s.audio.Channels != f.Channels {
			s.log.Warn("source changed its audio format; keeping the first for viewers", "was", s.audio.Codec, "now", f.Codec)
		}
		return
	}
	s.audio = &f
	var c webrtc.RTPCodecCapability
	var p rtp.Payloader
	switch f.Codec {
	case AudioOpus:
		c, p = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, &codecs.OpusPayloader{}
	case AudioPCMU:
		c, p = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, &codecs.G711Payloader{}
	case AudioPCMA:
		c, p = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, &codecs.G711Payloader{}
	case AudioAAC:
		s.log.Info("audio is AAC: fmp4 viewers hear it; srtp viewers get video only, since WebRTC media tracks cannot carry AAC")
		return
	default:
		return
	}
	s.audioCodec = &c
	s.audioPacket = rtp.NewPacketizer(rtpMTU, 0, 0, p, rtp.NewRandomSequencer(), c.ClockRate)
}

// WriteAudio implements Writer.
func (s *Stream) WriteAudio(a AudioFrame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audio == nil {
		return
	}
	if s.audioPacket != nil {
		dur := time.Duration(a.Samples) * time.Second / time.Duration(max(s.audio.SampleRate, 1))
		samples := uint32(ticks(dur, int64(s.audioCodec.ClockRate)))
		if len(s.rsubs) == 0 {
			s.audioPacket.SkipSamples(samples)
		} else {
			// Packetized once (the payloader copies the data); each
			// viewer's writer sends the packets with its own sequence
			// numbers.
			s.holdAudio(s.audioPacket.Packetize(a.Data, samples))
		}
	}
	// The muxer has an audio track only for codecs fMP4 carries (AAC, Opus).
	if s.mux != nil && s.mux.hasAudio {
		// Bounded: audio without video for a long time is dropped.
		if len(s.pending) < 256 {
			// Sources may reuse their buffers once we return (gortsplib
			// does): keep a copy until the next video frame.
			a.Data = bytes.Clone(a.Data)
			s.pending = append(s.pending, a)
		}
	}
}

// WriteVideo implements Writer: the per-frame work, done once for all viewers.
func (s *Stream) WriteVideo(v VideoFrame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rebase {
		// A (re)started source counts from zero again: continue our clock.
		s.base = s.nextPTS - v.PTS
		s.rebase = false
	}
	pts := v.PTS + s.base
	if pts < s.lastPTS {
		pts = s.lastPTS + time.Millisecond
	}
	dur := v.Duration
	if dur <= 0 {
		if d := pts - s.lastPTS; s.frames.Load() > 0 && d > 0 && d < time.Second {
			dur = d
		} else if s.lastDur > 0 {
			dur = s.lastDur
		} else {
			dur = time.Second / 30
		}
	}
	s.lastPTS, s.lastDur, s.nextPTS = pts, dur, pts+dur
	s.frames.Add(1)

	if !s.codecKnown {
		s.codec, s.codecKnown = v.AU.Codec, true
		if s.codec == VideoH265 {
			s.packetizer = rtp.NewPacketizer(rtpMTU, 0, 0, &codecs.H265Payloader{}, rtp.NewRandomSequencer(), clockRate)
		}
		s.log.Info("video codec", "codec", s.codec)
		close(s.codecSeen)
	} else if v.AU.Codec != s.codec {
		// Viewers' tracks and init segments are of the first codec; a
		// source that changes codec needs the stream restarted.
		if s.frames.Load()%300 == 1 {
			s.log.Warn("source changed its video codec; frames dropped", "was", s.codec, "now", v.AU.Codec)
		}
		return
	}

	nalus := make([][]byte, 0, len(v.AU.NALUs))
	var vps, sps, pps []byte
	for _, n := range v.AU.NALUs {
		if s.codec == VideoH265 {
			switch h265Type(n) {
			case h265.NALUType_VPS_NUT:
				vps = n
			case h265.NALUType_SPS_NUT:
				sps = n
			case h265.NALUType_PPS_NUT:
				pps = n
			case h265.NALUType_AUD_NUT:
				continue
			}
			nalus = append(nalus, n)
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		}
		nalus = append(nalus, n)
	}
	if len(nalus) == 0 {
		return
	}
	if s.codec == VideoH265 && vps == nil {
		vps = s.vps
	}
	if v.AU.IDR && sps != nil && pps != nil && (s.codec != VideoH265 || vps != nil) &&
		(!bytes.Equal(sps, s.sps) || !bytes.Equal(pps, s.pps) || !bytes.Equal(vps, s.vps)) {
		if s.sps != nil {
			s.log.Info("the source's video parameters changed; fmp4 viewers get a new init segment", "codec", s.codec)
		}
		s.vps, s.sps, s.pps, s.mux = bytes.Clone(vps), bytes.Clone(sps), bytes.Clone(pps), nil
	}
	if s.mux == nil && v.AU.IDR && s.sps != nil && s.pps != nil {
		s.startMux()
	}

	f := &Frame{Key: v.AU.IDR, TS: uint32(ticks(pts, clockRate)), At: time.Now()}
	f.RTP = s.packetizer.Packetize(annexB(nalus), 0)
	for _, p := range f.RTP {
		p.Timestamp = f.TS
	}
	if s.mux != nil {
		ems, err := s.mux.segment(nalus, v.AU.IDR, pts, dur, s.pending)
		s.pending = s.pending[:0]
		if err != nil {
			s.log.Warn("fMP4 mux", "err", err)
		} else {
			f.EMS = ems
			if s.signer != nil && s.moovSig != nil {
				s.unitSeq++
				f.Sig = s.signer(f.Key, false, s.unitSeq, s.moovSeq, ems)
			}
		}
	}

	s.gop.add(f)
	for v := range s.fsubs {
		v.push(s, f)
	}
	gop := s.gop.snapshot(f)
	audio, audioAt := s.takeAudio()
	for v := range s.rsubs {
		v.pushVideo(f, gop, audio, audioAt)
	}
}

// audioHold bounds how long an srtp viewer's audio waits for the next
// video frame, whose system call it then shares: one frame interval at
// 25 fps. Each audio packet sent alone cost a viewer's writer a wakeup and
// a system call of its own, 50 times a second, and nearly half as much CPU
// as the video (docs/media-benchmarks.md); the packets keep their
// timestamps, so a receiver's lip sync is unchanged.
const audioHold = 40 * time.Millisecond

// holdAudio keeps one audio sample's packets (under the stream's lock) for
// the next video frame's jobs, or for the timer when no frame comes within
// audioHold.
func (s *Stream) holdAudio(pkts []*rtp.Packet) {
	if len(s.heldAudio) == 0 {
		s.audioArmed.Add(1)
		if s.audioTimer == nil {
			s.audioTimer = time.AfterFunc(s.audioHold, s.flushAudio)
		} else {
			s.audioTimer.Reset(s.audioHold)
		}
	}
	s.heldAudio = append(s.heldAudio, pkts...)
	s.heldAudioAt = time.Now()
}

// takeAudio hands over the held audio packets (under the stream's lock):
// the viewers' queues share the slice, so the next packets go in a new one.
func (s *Stream) takeAudio() (pkts []*rtp.Packet, at time.Time) {
	a := s.heldAudio
	if len(a) > 0 {
		s.heldAudio = nil
		if s.audioTimer.Stop() {
			s.audioArmed.Done() // else flushAudio runs, or is running, and says so
		}
	}
	return a, s.heldAudioAt
}

// flushAudio queues held audio that no video frame took in time.
func (s *Stream) flushAudio() {
	defer s.audioArmed.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, at := s.takeAudio(); len(a) > 0 {
		for v := range s.rsubs {
			v.pushAudio(a, at)
		}
	}
}

func (s *Stream) startMux() {
	var audio *AudioFormat
	if s.audio != nil && (s.audio.Codec == AudioAAC && s.audio.AAC != nil || s.audio.Codec == AudioOpus) {
		audio = s.audio
	} else if s.audio != nil {
		s.log.Info("fmp4 viewers get video only: fMP4 carries AAC or Opus audio", "audio", s.audio.Codec)
	}
	m, moov, err := newFMP4Muxer(s.codec, s.vps, s.sps, s.pps, audio)
	if err != nil {
		s.log.Error("cannot build the fMP4 init segment; fmp4 viewers get nothing", "err", err)
		return
	}
	s.mux, s.moov = m, moov
	s.moovGen++
	s.signMoov()
}

// UnitSigner signs one unit of the fmp4 stream (docs/relay.md): covered is
// the MOOV record (moov) or one frame's BEGIN..END records (key: a
// keyframe's); it returns the SIG record that goes before them, or nil. It
// is called under the stream's lock, once per unit for every viewer.
type UnitSigner func(key, moov bool, seq, moovSeq uint64, covered []byte) []byte

// SetSigner makes the stream sign its units from now on: the current MOOV
// at once unless it is signed already, then every new MOOV and frame.
func (s *Stream) SetSigner(f UnitSigner) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signer = f
	// A MOOV signed before keeps its seq: the cached GOP's signed frames
	// came after it and carry higher seqs. Signed again it would get a
	// seq above theirs, and a viewer that joins now, which gets the MOOV
	// and then that GOP, would see its units out of order (docs/relay.md,
	// "replay") and start over.
	if s.moovSig == nil {
		s.signMoov()
	}
}

func (s *Stream) signMoov() {
	if s.signer == nil || s.moov == nil {
		return
	}
	s.unitSeq++
	s.moovSeq = s.unitSeq
	s.moovSig = s.signer(false, true, s.unitSeq, s.moovSeq, s.moov)
}

// ticks converts d to a clock of rate Hz without overflowing for any
// stream length (d*rate alone would overflow int64 after a day at 90 kHz).
func ticks(d time.Duration, rate int64) int64 {
	return int64(d/time.Second)*rate + int64(d%time.Second)*rate/int64(time.Second)
}

func annexB(nalus [][]byte) []byte {
	n := 0
	for _, u := range nalus {
		n += 4 + len(u)
	}
	out := make([]byte, 0, n)
	for _, u := range nalus {
		out = append(out, 0, 0, 0, 1)
		out = append(out, u...)
	}
	return out
}

// Close stops the source, waits for its goroutine, ends every viewer's
// queue and waits for the srtp viewers' writers.
func (s *Stream) Close() error {
	s.once.Do(s.cancel)
	<-s.done
	s.mu.Lock()
	for v := range s.fsubs {
		v.close()
	}
	clear(s.fsubs)
	rsubs := make([]*RTPViewer, 0, len(s.rsubs))
	for v := range s.rsubs {
		v.close()
		rsubs = append(rsubs, v)
	}
	clear(s.rsubs)
	s.takeAudio() // stops the timer
	s.mu.Unlock()
	s.audioArmed.Wait() // a flushAudio under way
	for _, v := range rsubs {
		<-v.done
	}
	return nil
}

// ErrClosed is returned when subscribing to a closed stream.
var ErrClosed = errors.New("stream closed")

func (s *Stream) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}
