package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"
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
const (
	maxGOPFrames = 300      // frames kept since the last keyframe (10 s at 30 fps)
	maxGOPBytes  = 16 << 20 // bytes kept since the last keyframe
	viewerQueue  = maxGOPFrames + 64
	rtpMTU       = 1200 // leaves room for SRTP, TURN and IPv6 headers in 1500
	clockRate    = 90000
)

// Frame is one video frame prepared once for every viewer: packetized for
// RTP and muxed into an fMP4 segment in the EMS record framing. Its slices
// are shared by all viewers and never modified after the frame is made.
type Frame struct {
	Key bool
	TS  uint32        // RTP timestamp, 90 kHz
	RTP []*rtp.Packet // payloads shared; viewers copy the header
	EMS []byte        // BEGIN..END records; nil while the fMP4 init is unknown
}

func (f *Frame) size() int {
	n := len(f.EMS)
	for _, p := range f.RTP {
		n += len(p.Payload) + 12
	}
	return n
}

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

	mu         sync.Mutex // guards everything below; held per frame and per (un)subscribe
	audio      *AudioFormat
	audioTrack *webrtc.TrackLocalStaticSample // Opus, PCMU or PCMA for srtp viewers
	sps, pps   []byte
	mux        *fmp4Muxer
	moov       []byte // the EMS MOOV record, once sps/pps (and the audio format) are known
	moovGen    int    // counts MOOVs: a new SPS (a camera that changed resolution) makes a new one
	pending    []AudioFrame
	gop        []*Frame
	gopBytes   int
	gopFull    bool // the GOP outgrew the cache: new viewers wait for the next keyframe
	packetizer rtp.Packetizer
	lastPTS    time.Duration
	lastDur    time.Duration
	base       time.Duration // added to the source's PTS, so restarts continue the clock
	rebase     bool
	nextPTS    time.Duration
	fsubs      map[*FMP4Viewer]struct{}
	rsubs      map[*RTPViewer]struct{}
	frames     atomic.Uint64

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
		cancel: cancel, done: make(chan struct{}),
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

// AudioTrack is the shared audio track for srtp viewers, nil when the
// stream has no audio a WebRTC track can carry (none, or AAC).
func (s *Stream) AudioTrack() *webrtc.TrackLocalStaticSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.audioTrack
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
	switch f.Codec {
	case AudioOpus:
		c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	case AudioPCMU:
		c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}
	case AudioPCMA:
		c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}
	case AudioAAC:
		s.log.Info("audio is AAC: fmp4 viewers hear it; srtp viewers get video only, since WebRTC media tracks cannot carry AAC")
		return
	default:
		return
	}
	t, err := webrtc.NewTrackLocalStaticSample(c, "audio", "ersmesh-"+s.name)
	if err != nil {
		s.log.Error("create audio track", "err", err)
		return
	}
	s.audioTrack = t
}

// WriteAudio implements Writer.
func (s *Stream) WriteAudio(a AudioFrame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audio == nil {
		return
	}
	if s.audioTrack != nil {
		dur := time.Duration(a.Samples) * time.Second / time.Duration(max(s.audio.SampleRate, 1))
		if err := s.audioTrack.WriteSample(pionmedia.Sample{Data: a.Data, Duration: dur}); err != nil {
			s.log.Debug("write audio", "err", err)
		}
	}
	if s.audio.Codec == AudioAAC && s.mux != nil && s.mux.hasAudio {
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

	nalus := make([][]byte, 0, len(v.AU.NALUs))
	var sps, pps []byte
	for _, n := range v.AU.NALUs {
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
	if v.AU.IDR && sps != nil && pps != nil && (!bytes.Equal(sps, s.sps) || !bytes.Equal(pps, s.pps)) {
		if s.sps != nil {
			s.log.Info("the source's H.264 parameters changed; fmp4 viewers get a new init segment")
		}
		s.sps, s.pps, s.mux = bytes.Clone(sps), bytes.Clone(pps), nil
	}
	if s.mux == nil && v.AU.IDR && s.sps != nil && s.pps != nil {
		s.startMux()
	}

	f := &Frame{Key: v.AU.IDR, TS: uint32(ticks(pts, clockRate))}
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
		}
	}

	if f.Key {
		clear(s.gop)
		s.gop, s.gopBytes, s.gopFull = s.gop[:0], 0, false
	}
	if !s.gopFull {
		if len(s.gop) >= maxGOPFrames || s.gopBytes+f.size() > maxGOPBytes {
			s.gopFull = true
			clear(s.gop)
			s.gop, s.gopBytes = s.gop[:0], 0
		} else if len(s.gop) > 0 || f.Key {
			s.gop = append(s.gop, f)
			s.gopBytes += f.size()
		}
	}

	for v := range s.fsubs {
		v.push(s, f)
	}
	for v := range s.rsubs {
		v.write(s, f)
	}
}

func (s *Stream) startMux() {
	var aac *AudioFormat
	if s.audio != nil && s.audio.Codec == AudioAAC && s.audio.AAC != nil {
		aac = s.audio
	} else if s.audio != nil {
		s.log.Info("fmp4 viewers get video only: the audio codec is not AAC", "audio", s.audio.Codec)
	}
	m, moov, err := newFMP4Muxer(s.sps, s.pps, aac)
	if err != nil {
		s.log.Error("cannot build the fMP4 init segment; fmp4 viewers get nothing", "err", err)
		return
	}
	s.mux, s.moov = m, moov
	s.moovGen++
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

// Close stops the source, waits for its goroutine and ends every viewer's
// queue.
func (s *Stream) Close() error {
	s.once.Do(s.cancel)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for v := range s.fsubs {
		v.close()
	}
	clear(s.fsubs)
	clear(s.rsubs)
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

// Chunk is one piece of an fmp4 viewer's byte stream: the MOOV record, or
// one frame's segment records.
type Chunk struct {
	Data []byte
	Key  bool // a MOOV or a keyframe's segment: a skipping viewer resumes here
}

// FMP4Viewer receives a stream's EMS records. C holds at most viewerQueue
// chunks; when it is full the viewer skips to the next keyframe rather than
// holding the stream up.
type FMP4Viewer struct {
	C        <-chan Chunk
	c        chan Chunk
	sentMoov int // the stream's moovGen last sent
	waitKey  bool
	dropped  atomic.Uint64
	closed   bool
}

// Dropped counts frames skipped because the viewer's queue was full.
func (v *FMP4Viewer) Dropped() uint64 { return v.dropped.Load() }

func (v *FMP4Viewer) close() {
	if !v.closed {
		v.closed = true
		close(v.c)
	}
}

// push queues f (under the stream's lock), first the MOOV if not sent yet.
func (v *FMP4Viewer) push(s *Stream, f *Frame) {
	if f.EMS == nil {
		return
	}
	if v.sentMoov != s.moovGen {
		if !f.Key || !v.offer(Chunk{Data: s.moov, Key: true}) {
			v.waitKey = true
			return
		}
		v.sentMoov = s.moovGen
	}
	if v.waitKey && !f.Key {
		v.dropped.Add(1)
		return
	}
	if !v.offer(Chunk{Data: f.EMS, Key: f.Key}) {
		v.waitKey = true
		v.dropped.Add(1)
		return
	}
	v.waitKey = false
}

func (v *FMP4Viewer) offer(c Chunk) bool {
	select {
	case v.c <- c:
		return true
	default:
		return false
	}
}

// SubscribeFMP4 adds an fmp4 viewer. Its queue starts with the MOOV record
// and the current GOP, so the viewer's first frame is a keyframe at once.
func (s *Stream) SubscribeFMP4() (*FMP4Viewer, error) {
	c := make(chan Chunk, viewerQueue)
	v := &FMP4Viewer{C: c, c: c}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed() {
		return nil, ErrClosed
	}
	if s.moov != nil && !s.gopFull {
		for _, f := range s.gop {
			v.push(s, f)
		}
	}
	s.fsubs[v] = struct{}{}
	return v, nil
}

// UnsubscribeFMP4 removes v and closes its queue.
func (s *Stream) UnsubscribeFMP4(v *FMP4Viewer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.fsubs, v)
	v.close()
}

// RTPViewer is one srtp viewer's video: its own track, so that it gets its
// own sequence numbers, a burst of the current GOP when its track is bound,
// and no frame before a keyframe.
type RTPViewer struct {
	track     *boundTrack
	seq       uint16
	started   bool
	lastTS    uint32
	lastBurst time.Time
	pli       atomic.Bool
	errs      int
}

// RequestKeyframe answers a viewer's PLI or FIR (RFC 4585 §6.3.1, RFC
// 5104 §4.3.1) from the GOP cache: with the next frame the viewer gets the
// GOP again, from its keyframe, squeezed into the timestamps since the last
// frame it got. At most once a second per viewer.
func (v *RTPViewer) RequestKeyframe() { v.pli.Store(true) }

// Track is the viewer's video track, for its PeerConnection.
func (v *RTPViewer) Track() webrtc.TrackLocal { return v.track }

// boundTrack notices when pion binds the track and when its packets start
// to go out. An offerer's pion binds at SetRemoteDescription, before ICE and
// DTLS, and until SRTP is up it drops what is written, silently (it returns
// 0 bytes and no error): a GOP burst written then would be lost.
type boundTrack struct {
	*webrtc.TrackLocalStaticRTP
	bound atomic.Bool
	live  atomic.Bool // a packet went out
}

func (t *boundTrack) Bind(c webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	p, err := t.TrackLocalStaticRTP.Bind(liveContext{c, t})
	if err == nil {
		t.bound.Store(true)
	}
	return p, err
}

type liveContext struct {
	webrtc.TrackLocalContext
	t *boundTrack
}

func (c liveContext) WriteStream() webrtc.TrackLocalWriter {
	return liveWriter{c.TrackLocalContext.WriteStream(), c.t}
}

type liveWriter struct {
	webrtc.TrackLocalWriter
	t *boundTrack
}

func (w liveWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n, err := w.TrackLocalWriter.WriteRTP(h, payload)
	if n > 0 && !w.t.live.Load() {
		w.t.live.Store(true)
	}
	return n, err
}

// SubscribeRTP adds an srtp viewer.
func (s *Stream) SubscribeRTP() (*RTPViewer, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(H264Codec, "video", "ersmesh-"+s.name)
	if err != nil {
		return nil, fmt.Errorf("create video track: %w", err)
	}
	v := &RTPViewer{track: &boundTrack{TrackLocalStaticRTP: t}, seq: uint16(time.Now().UnixNano())}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed() {
		return nil, ErrClosed
	}
	s.rsubs[v] = struct{}{}
	return v, nil
}

// UnsubscribeRTP removes v.
func (s *Stream) UnsubscribeRTP(v *RTPViewer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rsubs, v)
}

// write sends f to the viewer (under the stream's lock). The first time the
// track is bound it sends the cached GOP first, with timestamps squeezed
// just before f's, so the browser decodes them at once and shows f on time.
func (v *RTPViewer) write(s *Stream, f *Frame) {
	if !v.track.bound.Load() {
		return
	}
	if !v.started {
		gop := s.gop
		if s.gopFull || len(gop) == 0 || gop[len(gop)-1] != f {
			if !f.Key {
				return // nothing decodable yet: wait for a keyframe
			}
			gop = []*Frame{f}
		}
		n := len(gop) - 1
		for i, g := range gop {
			if !v.send(s, g, f.TS-uint32(n-i)) {
				return // SRTP is not up yet: the next frame tries again
			}
			v.started = true
		}
		return
	} else if v.pli.Swap(false) && !f.Key && time.Since(v.lastBurst) > time.Second {
		gop := s.gop
		if !s.gopFull && len(gop) > 1 && gop[len(gop)-1] == f {
			n := len(gop) - 1
			if gap := f.TS - v.lastTS; uint32(n) < gap && gap < clockRate {
				v.lastBurst = time.Now()
				base := v.lastTS
				for i, g := range gop[:n] {
					v.send(s, g, base+1+uint32(i))
				}
			}
		}
	}
	v.send(s, f, f.TS)
}

// send writes f's packets with timestamp ts. Until the track's first
// packet has gone out it stops after one dropped packet and returns false.
func (v *RTPViewer) send(s *Stream, f *Frame, ts uint32) bool {
	// One add per frame, not per packet: every viewer's sender shares
	// the counter.
	sent := 0
	defer func() { s.sent.Add(uint64(sent)) }()
	for _, p := range f.RTP {
		pkt := rtp.Packet{Header: p.Header, Payload: p.Payload}
		pkt.SequenceNumber = v.seq
		pkt.Timestamp = ts
		v.lastTS = ts
		v.seq++
		if err := v.track.WriteRTP(&pkt); err != nil {
			// A closing PeerConnection: the session removes the viewer.
			if v.errs++; v.errs == 1 {
				s.log.Debug("write video", "err", err)
			}
		} else {
			sent += pkt.MarshalSize()
		}
		if !v.track.live.Load() {
			return false
		}
	}
	return true
}
