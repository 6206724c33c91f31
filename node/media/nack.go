package media

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// RegisterInterceptors sets up what a device's PeerConnections do per
// packet: NACK retransmission (RFC 4585) with the responder below, and
// RTCP receiver reports (RFC 3550) for what they receive (talkback).
// Nothing else: the device adapts no bitrate, so TWCC feedback would be
// computed for nothing, and nobody reads pion's stats interceptor; both
// cost CPU per packet per viewer. Sender reports come from the viewer's
// writer (RTPViewer.SetSenderReports), which knows what it sent: pion's
// report interceptor took a lock and read the clock for every packet.
func RegisterInterceptors(m *webrtc.MediaEngine, ir *interceptor.Registry) error {
	RegisterFeedback(m)
	return AddInterceptors(ir, nil)
}

// RegisterFeedback announces the RTCP feedback the device answers: NACK
// and PLI for video.
func RegisterFeedback(m *webrtc.MediaEngine) {
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
}

// AddInterceptors adds RegisterInterceptors' NACK responder and RTCP
// receiver reports to ir. With batch (the PeerConnection's own sockets,
// see SendBatch) the packets one NACK asks for go out in one batch.
func AddInterceptors(ir *interceptor.Registry, batch SendBatch) error {
	ir.Add(nackFactory{batch: batch})
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return err
	}
	ir.Add(rr)
	return nil
}

// NACK responder limits.
const (
	nackHistory = 512 // packets kept per stream: 2.5 s of 2 Mbit/s video
	// nackRepeat is how soon the same packet may be sent again for a
	// repeated NACK, on top of the round trip time: the first resend may
	// still be on its way.
	nackRepeat = 5 * time.Millisecond
	// nackBudget caps resends per stream per second, so that a viewer's
	// NACKs cannot make the device send its history over and over.
	nackBudget = 500
)

// nackFactory makes the device's NACK responder. Unlike pion's, it does not
// copy the packets it keeps for retransmission: a stream's packets are
// shared by all its viewers and never modified once made (Frame), so the
// history keeps the header by value and the payload by reference. Keeping a
// packet costs no allocation and no copy; pion's responder costs both, per
// packet per viewer.
type nackFactory struct{ batch SendBatch }

func (f nackFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &nackResponder{streams: map[uint32]*nackStream{}, batch: f.batch}, nil
}

type nackResponder struct {
	interceptor.NoOp
	batch   SendBatch  // nil: resends go one by one
	mu      sync.Mutex // guards streams
	streams map[uint32]*nackStream
}

type nackStream struct {
	w    interceptor.RTPWriter
	ssrc uint32
	// With RTX negotiated (RFC 4588) packets go again on their own SSRC
	// and sequence numbers: the viewer's SRTP replay protection would drop
	// a packet sent again as it was, if the viewer's SRTP saw it before a
	// later stage (a jitter buffer, a lossy link's test) lost it.
	rtxSSRC uint32
	rtxPT   uint8
	rtxSeq  uint16       // under mu
	rtt     atomic.Int64 // ns, from the viewer's receiver reports

	mu      sync.Mutex // guards below; never held across a write
	sent    [nackHistory]sentPacket
	second  int64 // unix second of the budget's count
	resends int
}

// sentPacket is one packet of the history: the header fields the
// device's packets have, so that a viewer's history takes 24 KB, not the
// 61 KB of whole headers. A header with more (CSRCs, extensions, padding:
// none of the device's, which negotiates no header extension) is kept
// whole, at one allocation per packet.
type sentPacket struct {
	payload []byte      // shared with the stream's Frame; nil: empty slot
	resent  int64       // unix ns of the last resend
	full    *rtp.Header // the header, when the fields below do not say it all
	ts      uint32
	seq     uint16
	pt      uint8
	marker  bool
}

// keep stores h and payload in p.
func (p *sentPacket) keep(h *rtp.Header, payload []byte) {
	*p = sentPacket{payload: payload, ts: h.Timestamp, seq: h.SequenceNumber, pt: h.PayloadType, marker: h.Marker}
	if h.Version != 2 || len(h.CSRC) > 0 || h.Extension || len(h.Extensions) > 0 || h.Padding {
		full := *h
		full.CSRC = slices.Clone(h.CSRC)
		full.Extensions = slices.Clone(h.Extensions)
		p.full = &full
	}
}

// header is the kept packet's header, ssrc the stream's.
func (p *sentPacket) header(ssrc uint32) rtp.Header {
	if p.full != nil {
		return *p.full
	}
	return rtp.Header{Version: 2, Marker: p.marker, PayloadType: p.pt, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: ssrc}
}

// BindLocalStream keeps each packet of a stream that negotiated NACK.
func (n *nackResponder) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	nack := false
	for _, fb := range info.RTCPFeedback {
		nack = nack || fb.Type == "nack" && fb.Parameter == ""
	}
	if !nack {
		return w
	}
	st := &nackStream{w: w, ssrc: info.SSRC, rtxSSRC: info.SSRCRetransmission, rtxPT: info.PayloadTypeRetransmission, rtxSeq: uint16(time.Now().UnixNano())}
	n.mu.Lock()
	n.streams[info.SSRC] = st
	n.mu.Unlock()
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if h.SSRC == info.SSRC {
			st.mu.Lock()
			st.sent[h.SequenceNumber%nackHistory].keep(h, payload)
			st.mu.Unlock()
		}
		return w.Write(h, payload, a)
	})
}

// UnbindLocalStream forgets the stream.
func (n *nackResponder) UnbindLocalStream(info *interceptor.StreamInfo) {
	n.mu.Lock()
	delete(n.streams, info.SSRC)
	n.mu.Unlock()
}

// BindRTCPReader answers the viewer's NACKs on the goroutine that reads
// its RTCP (the device reads every sender's RTCP).
func (n *nackResponder) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		i, a, err := r.Read(b, a)
		if err != nil {
			return 0, nil, err
		}
		if a == nil {
			a = interceptor.Attributes{}
		}
		pkts, err := a.GetRTCPPackets(b[:i])
		if err != nil {
			return 0, nil, err
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				n.resend(p)
			case *rtcp.ReceiverReport:
				n.updateRTT(p.Reports, time.Now())
			}
		}
		return i, a, nil
	})
}

// updateRTT takes the round trip time from receiver reports (RFC 3550
// §6.4.1: arrival - LSR - DLSR, in 1/65536 s).
func (n *nackResponder) updateRTT(reports []rtcp.ReceptionReport, now time.Time) {
	for _, r := range reports {
		if r.LastSenderReport == 0 {
			continue
		}
		n.mu.Lock()
		st := n.streams[r.SSRC]
		n.mu.Unlock()
		if st == nil {
			continue
		}
		if rtt := ntpShort(now) - r.LastSenderReport - r.Delay; rtt < 1<<31 {
			st.rtt.Store(int64(rtt) * int64(time.Second) >> 16)
		}
	}
}

// ntpTime is t as a 64-bit NTP timestamp (RFC 3550 §4).
func ntpTime(t time.Time) uint64 {
	ns := t.UnixNano()
	sec := uint64(ns/int64(time.Second)) + 2208988800 // 1900 to 1970
	frac := uint64(ns%int64(time.Second)) << 32 / uint64(time.Second)
	return sec<<32 | frac
}

// ntpShort is t in the middle 32 bits of NTP time (RFC 3550 §4).
func ntpShort(t time.Time) uint32 { return uint32(ntpTime(t) >> 16) }

func (n *nackResponder) resend(nack *rtcp.TransportLayerNack) {
	n.mu.Lock()
	st := n.streams[nack.MediaSSRC]
	n.mu.Unlock()
	if st == nil {
		return
	}
	// A NACK names up to 17 packets per pair, often many pairs after a
	// burst of loss: one system call for them all.
	if n.batch != nil {
		n.batch.Hold()
		defer n.batch.Flush()
	}
	// One clock reading for the whole NACK: the resends leave together,
	// and time.Now per packet showed in the profile (docs/media-benchmarks.md).
	now := time.Now()
	for _, pair := range nack.Nacks {
		pair.Range(func(seq uint16) bool {
			r := resends.Get().(*resendBuf)
			if st.take(seq, now, r) {
				// Written through by the time Write returns (SRTP
				// encrypts into its own buffer): r can go back.
				st.w.Write(&r.hdr, r.payload, nil)
			}
			r.payload = nil
			resends.Put(r)
			return true
		})
	}
}

// resendBuf is one packet being resent: its header, which the writers'
// interfaces would otherwise take to the heap, and the room for an RTX
// payload. A viewer that NACKs its budget every second allocates nothing
// for it.
type resendBuf struct {
	hdr     rtp.Header
	payload []byte // what is sent: the kept payload, or rtx
	rtx     []byte
}

var resends = sync.Pool{New: func() any { return &resendBuf{rtx: make([]byte, 0, 1500)} }}

// take puts in r the kept packet seq if it may be sent again now.
func (st *nackStream) take(seq uint16, now time.Time, r *resendBuf) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	p := &st.sent[seq%nackHistory]
	ns := now.UnixNano()
	if p.payload == nil || p.seq != seq || ns-p.resent < st.rtt.Load()+int64(nackRepeat) {
		return false
	}
	if s := now.Unix(); s != st.second {
		st.second, st.resends = s, 0
	}
	if st.resends >= nackBudget {
		return false
	}
	st.resends++
	p.resent = ns
	r.hdr = p.header(st.ssrc)
	if st.rtxSSRC == 0 || st.rtxPT == 0 {
		r.payload = p.payload
		return true
	}
	// RTX: the original sequence number, then the payload (RFC 4588 §4).
	r.rtx = append(binary.BigEndian.AppendUint16(r.rtx[:0], r.hdr.SequenceNumber), p.payload...)
	r.payload = r.rtx
	r.hdr.SSRC, r.hdr.PayloadType, r.hdr.SequenceNumber = st.rtxSSRC, st.rtxPT, st.rtxSeq
	r.hdr.Padding, r.hdr.PaddingSize = false, 0
	st.rtxSeq++
	return true
}
