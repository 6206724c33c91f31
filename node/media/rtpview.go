package media

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// rtpQueue bounds an srtp viewer's queue, in video frames and audio
// samples together: about three seconds of 30 fps video with 50 audio
// packets a second. A viewer further behind skips to the next keyframe.
const rtpQueue = 256

// rtpJob is one entry of an srtp viewer's queue: a video frame with the
// cached GOP that ends with it (nil if none), for the viewer's first frame
// and its keyframe requests, and the audio packets that came before it
// (Stream.holdAudio); or audio packets alone.
type rtpJob struct {
	f       *Frame
	gop     []*Frame
	audio   []*rtp.Packet
	audioAt time.Time // when the last of audio came from the source
}

// RTPViewer is one srtp viewer: its own tracks, so that it gets its own
// sequence numbers, a burst of the current GOP when its video track is
// bound, and no frame before a keyframe; and its own queue and writer
// goroutine, so that a viewer whose sends block holds up nobody else, and
// a stream's viewers are written on as many cores as the machine has.
type RTPViewer struct {
	s     *Stream
	video *boundTrack
	audio *boundTrack // nil when the stream's audio cannot go on a WebRTC track
	q     chan rtpJob
	done  chan struct{} // closed when the writer has ended
	stop  atomic.Bool   // the viewer left: the writer drops what is queued

	// The stream's goroutine's, under the stream's lock.
	waitKey bool // the queue overflowed: skip video to the next keyframe
	closed  bool
	dropped atomic.Uint64

	pli atomic.Bool

	batch   atomic.Pointer[batchRef]   // SetSendBatch's
	reports atomic.Pointer[reportsRef] // SetSenderReports'

	// The writer goroutine's alone.
	hdr       rtp.Header // the packet being sent: one for all, so no header escapes per packet
	seq, aseq uint16
	started   bool
	lastTS    uint32
	lastBurst time.Time
	errs      int
	vrep      senderState // what went out on the video track, for its sender reports
	arep      senderState
	lastSR    time.Time // the source time of the last sender reports
}

// Track is the viewer's video track, for its PeerConnection.
func (v *RTPViewer) Track() webrtc.TrackLocal { return v.video }

// AudioTrack is the viewer's audio track (Opus, PCMU or PCMA), nil when
// the stream has no audio a WebRTC track can carry (none yet, or AAC).
func (v *RTPViewer) AudioTrack() webrtc.TrackLocal {
	if v.audio == nil {
		return nil
	}
	return v.audio
}

// Dropped counts video frames the viewer skipped because its queue was
// full.
func (v *RTPViewer) Dropped() uint64 { return v.dropped.Load() }

// RequestKeyframe answers a viewer's PLI or FIR (RFC 4585 §6.3.1, RFC
// 5104 §4.3.1) from the GOP cache: with the next frame the viewer gets the
// GOP again, from its keyframe, squeezed into the timestamps since the last
// frame it got. At most once a second per viewer.
func (v *RTPViewer) RequestKeyframe() { v.pli.Store(true) }

// SendBatch is what sends a viewer's packets in batches: between Hold and
// Flush its PeerConnection's sockets queue what they are asked to send, and
// Flush sends it with as few system calls as it can (node/udpbatch). Holds
// may overlap (the writer's and the NACK responder's): each Hold is ended
// by one Flush.
type SendBatch interface {
	Hold()
	Flush()
}

type batchRef struct{ b SendBatch }

// SetSendBatch makes the viewer's writer hold b while it writes a frame
// (or, when it is behind, the frames queued) and flush it after: a
// frame's packets to the viewer go out in one system call instead of one
// each.
func (v *RTPViewer) SetSendBatch(b SendBatch) { v.batch.Store(&batchRef{b}) }

type reportsRef struct{ w func([]rtcp.Packet) error }

// SetSenderReports makes the viewer's writer send RTCP sender reports for
// its tracks (RFC 3550 §6.4.1) with w, about once a second: what a
// receiver's lip sync and round trip time rest on. The writer knows what
// it sent and when each frame and audio packet came from the source, so
// no interceptor has to look at every packet for it.
func (v *RTPViewer) SetSenderReports(w func([]rtcp.Packet) error) {
	v.reports.Store(&reportsRef{w})
}

// SubscribeRTP adds an srtp viewer and starts its writer.
func (s *Stream) SubscribeRTP() (*RTPViewer, error) {
	seq := uint16(time.Now().UnixNano())
	v := &RTPViewer{s: s, q: make(chan rtpJob, rtpQueue), done: make(chan struct{}), seq: seq, aseq: seq ^ 0x5555}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed() {
		return nil, ErrClosed
	}
	// The track announces the source's codec; before the first frame it is
	// H.264 (callers that care wait with WaitVideoCodec).
	vc := H264Codec
	if s.codecKnown && s.codec == VideoH265 {
		vc = H265Codec
	}
	var err error
	if v.video, err = newBoundTrack(vc, "video", "ersmesh-"+s.name); err != nil {
		return nil, fmt.Errorf("create video track: %w", err)
	}
	if s.audioCodec != nil {
		if v.audio, err = newBoundTrack(*s.audioCodec, "audio", "ersmesh-"+s.name); err != nil {
			return nil, fmt.Errorf("create audio track: %w", err)
		}
	}
	s.rsubs[v] = struct{}{}
	go v.run()
	return v, nil
}

// UnsubscribeRTP removes v and waits for its writer to end.
func (s *Stream) UnsubscribeRTP(v *RTPViewer) {
	s.mu.Lock()
	delete(s.rsubs, v)
	v.close()
	s.mu.Unlock()
	<-v.done
}

// close ends the viewer's queue (under the stream's lock).
func (v *RTPViewer) close() {
	if !v.closed {
		v.closed = true
		v.stop.Store(true)
		close(v.q)
	}
}

// pushVideo queues f, after the audio packets held for it (under the
// stream's lock). A viewer whose queue is full loses f and every frame
// after it up to the next keyframe.
func (v *RTPViewer) pushVideo(f *Frame, gop []*Frame, audio []*rtp.Packet, audioAt time.Time) {
	if v.audio == nil || !v.audio.bound.Load() {
		audio = nil
	}
	if !v.video.bound.Load() || v.waitKey && !f.Key {
		if v.video.bound.Load() {
			v.dropped.Add(1)
		}
		v.pushAudio(audio, audioAt)
		return
	}
	select {
	case v.q <- rtpJob{f: f, gop: gop, audio: audio, audioAt: audioAt}:
		v.waitKey = false
	default:
		v.waitKey = true
		v.dropped.Add(1)
	}
}

// pushAudio queues one audio sample's packets (under the stream's lock); a
// full queue loses them.
func (v *RTPViewer) pushAudio(pkts []*rtp.Packet, at time.Time) {
	if len(pkts) == 0 || v.audio == nil || !v.audio.bound.Load() {
		return
	}
	select {
	case v.q <- rtpJob{audio: pkts, audioAt: at}:
	default:
	}
}

// run is the viewer's writer goroutine.
func (v *RTPViewer) run() {
	defer close(v.done)
	var held SendBatch // holding: the queue had more when the last job was written
	defer func() {
		if held != nil {
			held.Flush()
		}
	}()
	for j := range v.q {
		if v.stop.Load() {
			continue // drain: the PeerConnection is going away
		}
		if held == nil {
			if r := v.batch.Load(); r != nil {
				held = r.b
				held.Hold()
			}
		}
		at := j.audioAt
		if len(j.audio) > 0 {
			v.writeAudio(j.audio, j.audioAt) // held for the frame: they came first
		}
		if j.f != nil {
			v.writeVideo(j.f, j.gop)
			v.vrep.sent(j.f.TS, j.f.At) // the frame's own timestamp, whatever burst went before
			at = j.f.At
		}
		if at.Sub(v.lastSR) >= srInterval {
			v.lastSR = at
			v.sendReports()
		}
		// A writer that is behind sends what is queued in one batch;
		// one that is not sends each frame as it comes.
		if held != nil && len(v.q) == 0 {
			held.Flush()
			held = nil
		}
	}
}

// writeVideo sends f. The first time it sends the cached GOP first, with
// timestamps squeezed just before f's, so the browser decodes them at once
// and shows f on time; after a keyframe request it sends the GOP again.
func (v *RTPViewer) writeVideo(f *Frame, gop []*Frame) {
	if !v.started {
		if gop == nil {
			if !f.Key {
				return // nothing decodable yet: wait for a keyframe
			}
			gop = []*Frame{f}
		}
		n := len(gop) - 1
		for i, g := range gop {
			if !v.send(g, f.TS-uint32(n-i)) {
				return // SRTP is not up yet: the next frame tries again
			}
			v.started = true
		}
		return
	} else if v.pli.Swap(false) && !f.Key && time.Since(v.lastBurst) > time.Second && len(gop) > 1 {
		n := len(gop) - 1
		if gap := f.TS - v.lastTS; uint32(n) < gap && gap < clockRate {
			v.lastBurst = time.Now()
			base := v.lastTS
			for i, g := range gop[:n] {
				v.send(g, base+1+uint32(i))
			}
		}
	}
	v.send(f, f.TS)
}

// send writes f's packets with timestamp ts. Until the track's first
// packet has gone out it stops after one dropped packet and returns false.
func (v *RTPViewer) send(f *Frame, ts uint32) bool {
	// One add per frame, not per packet: every viewer's writer shares
	// the counter.
	sent := 0
	for _, p := range f.RTP {
		h := &v.hdr
		*h = p.Header
		h.SequenceNumber = v.seq
		h.Timestamp = ts
		v.lastTS = ts
		v.seq++
		if n, err := v.video.write(h, p.Payload); err != nil {
			v.writeFailed(err)
		} else if n > 0 {
			sent += h.MarshalSize() + len(p.Payload)
			v.vrep.count(len(p.Payload))
		}
		if !v.video.live.Load() {
			v.s.sent.Add(uint64(sent))
			return false
		}
	}
	v.s.sent.Add(uint64(sent))
	return true
}

func (v *RTPViewer) writeAudio(pkts []*rtp.Packet, at time.Time) {
	sent := 0
	for _, p := range pkts {
		h := &v.hdr
		*h = p.Header
		h.SequenceNumber = v.aseq
		v.aseq++
		if n, err := v.audio.write(h, p.Payload); err != nil {
			v.writeFailed(err)
		} else if n > 0 {
			sent += h.MarshalSize() + len(p.Payload)
			v.arep.count(len(p.Payload))
		}
	}
	if len(pkts) > 0 {
		v.arep.sent(pkts[len(pkts)-1].Timestamp, at)
	}
	v.s.sent.Add(uint64(sent))
}

// srInterval is how often the writer sends sender reports, as pion's
// report interceptor did.
const srInterval = time.Second

// senderState is what a track's sender reports say: the counts of RTP
// packets and payload bytes sent, and the RTP timestamp of the last
// frame or audio packet sent with the time its source delivered it.
type senderState struct {
	packets, octets uint32
	ts              uint32
	at              time.Time
}

func (st *senderState) count(payload int) {
	st.packets++
	st.octets += uint32(payload)
}

// sent records the last timestamp sent, once something went out.
func (st *senderState) sent(ts uint32, at time.Time) {
	if st.packets > 0 {
		st.ts, st.at = ts, at
	}
}

// report is the track's sender report at now, nil before any packet went
// out: the RTP time of now is extrapolated from the last timestamp and
// the time its source delivered it, so that audio and video, delivered
// by the source on one clock, map to one wall clock for the receiver's
// lip sync, however long their packets waited in queues.
func (st *senderState) report(t *boundTrack, now time.Time) *rtcp.SenderReport {
	b := t.b.Load()
	if st.packets == 0 || b == nil {
		return nil
	}
	rate := t.Codec().ClockRate
	return &rtcp.SenderReport{
		SSRC:        b.ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     st.ts + uint32(ticks(now.Sub(st.at), int64(rate))),
		PacketCount: st.packets,
		OctetCount:  st.octets,
	}
}

// sendReports sends the tracks' sender reports in one compound packet.
func (v *RTPViewer) sendReports() {
	r := v.reports.Load()
	if r == nil {
		return
	}
	now := time.Now()
	var pkts []rtcp.Packet
	if sr := v.vrep.report(v.video, now); sr != nil {
		pkts = append(pkts, sr)
	}
	if v.audio != nil {
		if sr := v.arep.report(v.audio, now); sr != nil {
			pkts = append(pkts, sr)
		}
	}
	if len(pkts) > 0 {
		if err := r.w(pkts); err != nil {
			v.writeFailed(err)
		}
	}
}

func (v *RTPViewer) writeFailed(err error) {
	// A closing PeerConnection: the session removes the viewer.
	if v.errs++; v.errs == 1 {
		v.s.log.Debug("write media", "err", err)
	}
}
