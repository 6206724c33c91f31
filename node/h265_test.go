package node

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/pkg/formats/fmp4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/signalwire"
)

// h265Source is an H.265 Annex-B clip libx265 made (a keyframe every 5
// frames, parameter sets repeated) opened as the device's source, and its
// access units as the media package reads them (whose parser the media
// tests compare with ffmpeg's MP4 muxer).
func h265Source(t *testing.T) (media.Source, []media.AccessUnit) {
	t.Helper()
	path := testutil.H265File(t, 1.5)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	aus, err := media.ReadAll(bytes.NewReader(b))
	if err != nil || len(aus) != 15 || aus[0].Codec != media.VideoH265 {
		t.Fatalf("the clip: %d access units, %v", len(aus), err)
	}
	src, err := media.Open(path+",fps=30", nil)
	if err != nil {
		t.Fatal(err)
	}
	return src, aus
}

func withH265Stream(src media.Source) func(*Config) {
	return func(c *Config) {
		streams := map[string]*media.Stream{"hevc": media.NewStream("hevc", src, nil)}
		for k, v := range c.Streams {
			streams[k] = v
		}
		c.Streams = streams
	}
}

// checkLoop checks that got are consecutive access units of the looping
// clip, byte for byte, starting on a keyframe.
func checkLoop(t *testing.T, what string, aus []media.AccessUnit, got [][][]byte) {
	t.Helper()
	k := -1
	for i, au := range aus {
		if len(got) > 0 && nalusEqual(au.NALUs, got[0]) {
			k = i
			break
		}
	}
	if k < 0 || !aus[k].IDR {
		t.Fatalf("%s: the first access unit is not one of the source's keyframes (index %d)", what, k)
	}
	for i, g := range got {
		if j := (k + i) % len(aus); !nalusEqual(aus[j].NALUs, g) {
			t.Fatalf("%s: access unit %d (the source's %d) differs", what, i, j)
		}
	}
}

func nalusEqual(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// rtpRecorder is an interceptor nearest the network on the viewer's side:
// it keeps the decrypted H.265 RTP packets the viewer receives.
type rtpRecorder struct {
	interceptor.NoOp
	mu   sync.Mutex
	pkts []*rtp.Packet
}

func (r *rtpRecorder) NewInterceptor(string) (interceptor.Interceptor, error) { return r, nil }

func (r *rtpRecorder) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	// The codec is not known yet when pion binds a remote stream: keep
	// every packet, accessUnits picks the H.265 payload type's.
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := reader.Read(b, a)
		if err == nil {
			var p rtp.Packet
			if p.Unmarshal(bytes.Clone(b[:n])) == nil {
				r.mu.Lock()
				r.pkts = append(r.pkts, &p)
				r.mu.Unlock()
			}
		}
		return n, a, err
	})
}

// accessUnits depacketizes what arrived with gortsplib's RFC 7798 decoder
// (pion packetized it), in sequence order, a retransmission counted once.
func (r *rtpRecorder) accessUnits(t *testing.T, pt webrtc.PayloadType) [][][]byte {
	t.Helper()
	r.mu.Lock()
	var pkts []*rtp.Packet
	for _, p := range r.pkts {
		if p.PayloadType == uint8(pt) {
			pkts = append(pkts, p)
		}
	}
	r.mu.Unlock()
	dec, err := (&format.H265{PayloadTyp: 96}).CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var out [][][]byte
	seen := map[uint16]bool{}
	var last uint16
	for i, p := range pkts {
		if seen[p.SequenceNumber] {
			continue
		}
		seen[p.SequenceNumber] = true
		if i > 0 && p.SequenceNumber != last+1 {
			break // a loss or reordering on loopback: compare what came before
		}
		last = p.SequenceNumber
		if au, err := dec.Decode(p); err == nil {
			out = append(out, au)
		}
	}
	return out
}

// TestH265ReachesPionViewers: an H.265 stream reaches a pion viewer over
// srtp (an H265 track, RFC 7798, depacketized to the source's NAL units)
// and another over fmp4 (hev1/hvcC with the source's parameter sets,
// samples equal to its access units).
func TestH265ReachesPionViewers(t *testing.T) {
	src, aus := h265Source(t)
	tm := newTestMeshWith(t, withH265Stream(src))
	rec := &rtpRecorder{}
	sv := newTestViewer(t, tm, "srtp1", "srtp", "hevc", rec)
	fv := newTestViewer(t, tm, "fmp41", "fmp4", "hevc")
	sv.waitFor("40 H.265 frames over srtp", 20*time.Second, func() bool { return len(sv.frames) >= 40 })
	fv.waitFor("40 fmp4 segments", 20*time.Second, func() bool { return len(fv.segments) >= 40 || fv.parseErr != nil })

	sv.mu.Lock()
	offer := sv.offerSDP
	sv.mu.Unlock()
	if !strings.Contains(offer, " H265/90000") {
		t.Errorf("the srtp offer has no H265 codec:\n%s", offer)
	}
	var pt webrtc.PayloadType
	for _, tr := range sv.pc.GetTransceivers() {
		if tk := tr.Receiver().Track(); tk != nil && tk.Kind() == webrtc.RTPCodecTypeVideo {
			if c := tk.Codec(); strings.EqualFold(c.MimeType, webrtc.MimeTypeH265) {
				pt = c.PayloadType
			}
		}
	}
	if pt == 0 {
		t.Fatal("the srtp viewer has no H.265 track")
	}
	got := rec.accessUnits(t, pt)
	if len(got) < 30 {
		t.Fatalf("%d H.265 access units depacketized, want 30", len(got))
	}
	checkLoop(t, "srtp", aus, got)

	fv.mu.Lock()
	defer fv.mu.Unlock()
	if fv.parseErr != nil {
		t.Fatal(fv.parseErr)
	}
	if fv.init == nil || !strings.HasPrefix(fv.init.Codecs(), "hev1.1.6.L") {
		t.Fatalf("MOOV %+v, want an H.265 Main codec string", fv.init)
	}
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(fv.init.Segment)); err != nil {
		t.Fatalf("init segment: %v", err)
	}
	hc, ok := in.Tracks[0].Codec.(*fmp4.CodecH265)
	if !ok {
		t.Fatalf("video track is %T, want H.265", in.Tracks[0].Codec)
	}
	first := aus[0].NALUs
	if !bytes.Equal(hc.VPS, first[0]) || !bytes.Equal(hc.SPS, first[1]) || !bytes.Equal(hc.PPS, first[2]) {
		t.Errorf("hvcC's parameter sets are not the source's")
	}
	var samples [][][]byte
	for _, s := range fv.segments {
		for _, smp := range parseSegment(t, s)[0].Tracks[0].Samples {
			nalus, err := h264.AVCCUnmarshal(smp.Payload)
			if err != nil {
				t.Fatal(err)
			}
			samples = append(samples, nalus)
		}
	}
	checkLoop(t, "fmp4", aus, samples)
}

// TestH265RefusedToBrowserWithoutIt: a viewer whose WebRTC has no H.265
// (its answer leaves it out, as Chromium's here does) is told so in
// words, instead of a connection that never shows a picture.
func TestH265RefusedToBrowserWithoutIt(t *testing.T) {
	src, _ := h265Source(t)
	tm := newTestMeshWith(t, withH265Stream(src))
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "noh265", Room: "lobby", Stream: "hevc", Transport: "srtp"})
	if m, err := c.Recv(5 * time.Second); err != nil || m.Kind != signalwire.KindAccept {
		t.Fatalf("join: %v %+v", err, m)
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: media.H264Codec, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		msg, err := c.Recv(10 * time.Second)
		if err != nil {
			t.Fatalf("no refusal: %v", err)
		}
		switch {
		case msg.Kind == signalwire.KindSignal && msg.Type == "offer":
			var offer webrtc.SessionDescription
			if err := json.Unmarshal(msg.Payload, &offer); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(offer.SDP, " H265/90000") {
				t.Fatalf("the offer has no H265 codec:\n%s", offer.SDP)
			}
			if err := pc.SetRemoteDescription(offer); err != nil {
				t.Fatal(err)
			}
			ans, err := pc.CreateAnswer(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := pc.SetLocalDescription(ans); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(ans.SDP, "H265") {
				t.Fatalf("the viewer's answer lists H.265:\n%s", ans.SDP)
			}
			payload, _ := json.Marshal(ans)
			c.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "answer", SID: msg.SID, Payload: payload})
		case msg.Kind == signalwire.KindLeave:
			if msg.Code != signalwire.CodeUnsupported || !strings.Contains(msg.Reason, "H.265") || !strings.Contains(msg.Reason, "fmp4") {
				t.Fatalf("leave %q (%s), want the H.265 explanation", msg.Reason, msg.Code)
			}
			return
		}
	}
	t.Fatal("no refusal in 15 s")
}

// TestH265ViewerOffers: in the WHEP direction (the viewer offers), an
// H.265 stream is answered with H.265 to an offer that lists it, and
// video flows; an offer without H.265 is refused in words.
func TestH265ViewerOffers(t *testing.T) {
	src, _ := h265Source(t)
	tm := newTestMeshWith(t, withH265Stream(src))

	pc, packets := newViewer(t) // pion's default codecs: H.265 among them
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "whep265", Room: "lobby", Stream: "hevc", Transport: "srtp", ViewerOffers: true})
	if err := c.Send(signalOf(t, "offer", completeOffer(t, pc))); err != nil {
		t.Fatal(err)
	}
	if m := recvSkippingPings(t, c, 5*time.Second); m.Kind != signalwire.KindAccept {
		t.Fatalf("join: got %+v, want accept", m)
	}
	m := recvSkippingPings(t, c, 10*time.Second)
	if m.Kind != signalwire.KindSignal || m.Type != "answer" {
		t.Fatalf("got %+v, want the answer", m)
	}
	var answer webrtc.SessionDescription
	if err := json.Unmarshal(m.Payload, &answer); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(answer.SDP, " H265/90000") {
		t.Fatalf("the answer has no H.265:\n%s", answer.SDP)
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-packets:
	case <-time.After(15 * time.Second):
		t.Fatal("no H.265 video within 15 s")
	}
	c.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "test done"})

	// A browser without H.265 in its WebRTC.
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: media.H264Codec, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	pc2, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc2.Close()
	if _, err := pc2.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	c2 := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "whep264", Room: "lobby", Stream: "hevc", Transport: "srtp", ViewerOffers: true})
	if err := c2.Send(signalOf(t, "offer", completeOffer(t, pc2))); err != nil {
		t.Fatal(err)
	}
	for {
		m := recvSkippingPings(t, c2, 10*time.Second)
		if m.Kind == signalwire.KindAccept {
			continue
		}
		if (m.Kind != signalwire.KindLeave && m.Kind != signalwire.KindReject) || m.Code != signalwire.CodeUnsupported || !strings.Contains(m.Reason, "H.265") {
			t.Fatalf("got %+v, want a refusal that names H.265", m)
		}
		break
	}
}
