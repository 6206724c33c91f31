package media

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/pkg/formats/fmp4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/media/ems"
)

// h265Clip is a short H.265 clip that ffmpeg's libx265 made, as an Annex-B
// file and as an MP4 (the same bitstream, -c copy), and its access units
// as ffmpeg's MP4 muxer cut them: the reference the viewers' samples are
// compared with, found by another parser than ours.
type h265Clip struct {
	annexB, mp4    string
	aus            [][][]byte // NAL units of each access unit, AUDs left out
	vps, sps, pps  []byte
	wantCodecsHEVC string
}

// needX265 is ffmpeg with the libx265 encoder; like needFFmpeg, a missing
// one skips the test outside CI and fails it in CI.
func needX265(t *testing.T) string {
	t.Helper()
	ff := needFFmpeg(t)
	out, err := exec.Command(ff, "-hide_banner", "-encoders").Output()
	if err != nil || !bytes.Contains(out, []byte("libx265")) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ffmpeg with libx265 is needed (CI=true): %v", err)
		}
		t.Skip("ffmpeg has no libx265 (CI=true fails instead)")
	}
	return ff
}

func makeH265Clip(t *testing.T) *h265Clip {
	t.Helper()
	ff := needX265(t)
	dir := t.TempDir()
	c := &h265Clip{annexB: filepath.Join(dir, "cam.h265"), mp4: filepath.Join(dir, "cam265.mp4")}
	// A keyframe every 5 frames with the parameter sets repeated, no
	// B-frames (the device passes frames in decoding order as PTS order).
	enc := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=128x72:rate=10",
		"-t", "1.5", "-c:v", "libx265", "-preset", "ultrafast",
		"-x265-params", "keyint=5:min-keyint=5:bframes=0:repeat-headers=1:info=0:log-level=error",
		"-pix_fmt", "yuv420p", "-f", "hevc", c.annexB)
	if b, err := enc.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	mux := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-r", "10", "-i", c.annexB, "-c", "copy", "-tag:v", "hvc1", c.mp4)
	if b, err := mux.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	file, err := os.ReadFile(c.mp4)
	if err != nil {
		t.Fatal(err)
	}
	info, err := mp4.Probe(bytes.NewReader(file))
	if err != nil || len(info.Tracks) != 1 {
		t.Fatalf("probe ffmpeg's MP4: %v", err)
	}
	tr := info.Tracks[0]
	i := 0
	for _, ch := range tr.Chunks {
		off := ch.DataOffset
		for range ch.SamplesPerChunk {
			n := uint64(tr.Samples[i].Size)
			nalus, err := h264.AVCCUnmarshal(file[off : off+n])
			if err != nil {
				t.Fatal(err)
			}
			var au [][]byte
			for _, u := range nalus {
				switch h265.NALUType((u[0] >> 1) & 0x3f) {
				case h265.NALUType_AUD_NUT:
					continue
				case h265.NALUType_VPS_NUT:
					c.vps = u
				case h265.NALUType_SPS_NUT:
					c.sps = u
				case h265.NALUType_PPS_NUT:
					c.pps = u
				}
				au = append(au, u)
			}
			c.aus = append(c.aus, au)
			off += n
			i++
		}
	}
	if len(c.aus) != 15 || c.vps == nil || c.sps == nil || c.pps == nil {
		t.Fatalf("ffmpeg's clip: %d access units, VPS %x SPS %x PPS %x", len(c.aus), c.vps, c.sps, c.pps)
	}
	return c
}

// annexBView is the clip as an Annex-B reader sees it: ffmpeg's MP4 muxer
// kept the zero_byte before x265's 4-byte start codes as the previous NAL
// unit's last byte, which H.265 (B.2) says belongs to the byte stream and
// a NAL unit never ends with.
func (c *h265Clip) annexBView() *h265Clip {
	v := *c
	v.aus = make([][][]byte, len(c.aus))
	for i, au := range c.aus {
		for _, n := range au {
			v.aus[i] = append(v.aus[i], bytes.TrimRight(n, "\x00"))
		}
	}
	return &v
}

// match finds got among the clip's access units: a looping source starts
// a viewer anywhere.
func (c *h265Clip) match(got [][]byte) int {
	for i, au := range c.aus {
		if nalusEqual(au, got) {
			return i
		}
	}
	return -1
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

// checkSequence checks that aus are consecutive access units of the clip
// (wrapping around when loop), byte for byte, starting on a keyframe.
func (c *h265Clip) checkSequence(t *testing.T, what string, aus [][][]byte, loop bool) {
	t.Helper()
	if len(aus) == 0 {
		t.Fatalf("%s: no access units", what)
	}
	k := c.match(aus[0])
	if k < 0 {
		t.Fatalf("%s: the first access unit (%d NAL units, first type %d) is none of the source's", what, len(aus[0]), (aus[0][0][0]>>1)&0x3f)
	}
	if !isIRAP265(aus[0][len(aus[0])-1]) {
		t.Errorf("%s: the viewer starts on access unit %d, not a keyframe", what, k)
	}
	for i, au := range aus {
		j := k + i
		if loop {
			j %= len(c.aus)
		} else if j >= len(c.aus) {
			t.Fatalf("%s: %d access units, the source has %d from %d", what, len(aus), len(c.aus)-k, k)
		}
		if !nalusEqual(c.aus[j], au) {
			t.Fatalf("%s: access unit %d (source's %d) differs", what, i, j)
		}
	}
}

// fmp4Collector is an fmp4 viewer that parses what it gets with
// mediacommon: the init segment and each fragment's video samples.
type fmp4Collector struct {
	mu   sync.Mutex
	init *ems.Init
	hevc *fmp4.CodecH265
	aus  [][][]byte
	keys []bool
	err  error
}

func collectFMP4(t *testing.T, s *Stream) *fmp4Collector {
	t.Helper()
	v, err := s.SubscribeFMP4()
	if err != nil {
		t.Fatal(err)
	}
	c := &fmp4Collector{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var p ems.Parser
		for m := range v.C {
			c.mu.Lock()
			if c.err == nil {
				c.err = p.Feed(m.Data, c.onInit, c.onSegment)
			}
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { s.UnsubscribeFMP4(v); <-done })
	return c
}

func (c *fmp4Collector) onInit(in ems.Init) {
	c.init = &in
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(in.Segment)); err != nil {
		c.err = fmt.Errorf("init segment: %w", err)
		return
	}
	if len(init.Tracks) == 0 {
		c.err = fmt.Errorf("init segment without tracks")
		return
	}
	h, ok := init.Tracks[0].Codec.(*fmp4.CodecH265)
	if !ok {
		c.err = fmt.Errorf("init segment's video is %T, want H.265", init.Tracks[0].Codec)
		return
	}
	c.hevc = h
}

func (c *fmp4Collector) onSegment(s ems.Segment) {
	var parts fmp4.Parts
	if err := parts.Unmarshal(s.Bytes()); err != nil {
		c.err = fmt.Errorf("fragment: %w", err)
		return
	}
	for _, p := range parts {
		for _, tr := range p.Tracks {
			if tr.ID != videoTrackID {
				continue
			}
			for _, smp := range tr.Samples {
				nalus, err := h264.AVCCUnmarshal(smp.Payload)
				if err != nil {
					c.err = fmt.Errorf("sample: %w", err)
					return
				}
				c.aus = append(c.aus, nalus)
				c.keys = append(c.keys, !smp.IsNonSyncSample)
			}
		}
	}
}

func (c *fmp4Collector) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.mu.Lock()
		got, err := len(c.aus), c.err
		c.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d H.265 samples in 15 s, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check compares what the viewer got with the clip: hvcC's parameter sets
// are the source's, the codec string is built from them, and the samples
// are the source's access units.
func (c *fmp4Collector) check(t *testing.T, clip *h265Clip, what string, loop bool) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.init == nil || c.hevc == nil {
		t.Fatalf("%s: no H.265 init segment", what)
	}
	if c.init.Mask&ems.MaskH265 == 0 || c.init.Mask&ems.MaskVideo == 0 {
		t.Errorf("%s: MOOV mask %#x, want video and H.265", what, c.init.Mask)
	}
	if !bytes.Equal(c.hevc.VPS, clip.vps) || !bytes.Equal(c.hevc.SPS, clip.sps) || !bytes.Equal(c.hevc.PPS, clip.pps) {
		t.Errorf("%s: hvcC holds VPS %x SPS %x PPS %x, want the source's %x %x %x", what, c.hevc.VPS, c.hevc.SPS, c.hevc.PPS, clip.vps, clip.sps, clip.pps)
	}
	if got := c.init.Codecs(); got != clip.codecString(t) {
		t.Errorf("%s: codecs %q, want %q", what, got, clip.codecString(t))
	}
	c.checkKeys(t, what)
	clip.checkSequence(t, what, c.aus, loop)
}

func (c *fmp4Collector) checkKeys(t *testing.T, what string) {
	t.Helper()
	for i, au := range c.aus {
		irap := false
		for _, n := range au {
			irap = irap || isIRAP265(n)
		}
		if c.keys[i] != irap {
			t.Fatalf("%s: sample %d marked sync=%v, holds a random access picture: %v", what, i, c.keys[i], irap)
		}
	}
}

// codecString is the clip's RFC 6381 codec string, from its SPS as
// mediacommon parses it (the constraint flags by hand: x265 writes
// progressive_source and frame_only_constraint, 0x90, and no others).
func (c *h265Clip) codecString(t *testing.T) string {
	var sps h265.SPS
	if err := sps.Unmarshal(c.sps); err != nil {
		t.Fatal(err)
	}
	p := sps.ProfileTierLevel
	if !p.GeneralProgressiveSourceFlag || !p.GeneralFrameOnlyConstraintFlag || p.GeneralInterlacedSourceFlag || p.GeneralNonPackedConstraintFlag {
		t.Fatalf("x265's SPS flags changed: %+v", p)
	}
	return ems.HEVCCodecString(p.GeneralProfileSpace, p.GeneralTierFlag == 1, p.GeneralProfileIdc,
		p.GeneralProfileCompatibilityFlag, [6]uint8{0x90}, p.GeneralLevelIdc)
}

// rtpCollector binds an srtp viewer's video track and depacketizes what
// it sends with gortsplib's RFC 7798 decoder (not pion's, which packetized).
type rtpCollector struct {
	mu  sync.Mutex
	dec interface {
		Decode(*rtp.Packet) ([][]byte, error)
	}
	mime string
	aus  [][][]byte
}

type recordingContext struct {
	discardContext
	codec webrtc.RTPCodecCapability
	c     *rtpCollector
}

func (r recordingContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{{RTPCodecCapability: r.codec, PayloadType: 96}}
}
func (r recordingContext) WriteStream() webrtc.TrackLocalWriter { return r.c }

func (c *rtpCollector) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	p := &rtp.Packet{Header: *h, Payload: bytes.Clone(payload)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if au, err := c.dec.Decode(p); err == nil {
		c.aus = append(c.aus, au)
	}
	return 12 + len(payload), nil
}
func (c *rtpCollector) Write(b []byte) (int, error) { return len(b), nil }

func collectRTP(t *testing.T, s *Stream) *rtpCollector {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := s.WaitVideoCodec(ctx); err != nil || c != VideoH265 {
		t.Fatalf("stream's codec %v, %v; want H.265", c, err)
	}
	v, err := s.SubscribeRTP()
	if err != nil {
		t.Fatal(err)
	}
	bt := v.Track().(*boundTrack)
	f := &format.H265{PayloadTyp: 96}
	dec, err := f.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	c := &rtpCollector{dec: dec, mime: bt.Codec().MimeType}
	rc := recordingContext{discardContext{id: "h265"}, bt.Codec(), c}
	if _, err := bt.Bind(rc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bt.Unbind(rc); s.UnsubscribeRTP(v) })
	return c
}

func (c *rtpCollector) wait(t *testing.T, n int) [][][]byte {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.aus)
		c.mu.Unlock()
		if got >= n {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.aus[:n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d H.265 access units over RTP in 15 s, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkH265Stream watches s on both transports and compares both with
// the clip.
func checkH265Stream(t *testing.T, clip *h265Clip, what string, s *Stream, loop bool, n int) {
	t.Helper()
	f := collectFMP4(t, s)
	r := collectRTP(t, s)
	if !strings.EqualFold(r.mime, webrtc.MimeTypeH265) {
		t.Errorf("%s: srtp track is %s, want H.265", what, r.mime)
	}
	f.wait(t, n)
	f.check(t, clip, what+" (fmp4)", loop)
	clip.checkSequence(t, what+" (srtp)", r.wait(t, n), loop)
}

// TestH265AnnexBFile: an H.265 Annex-B file loops to fmp4 and srtp viewers
// unchanged: hev1+hvcC with the file's parameter sets, each access unit
// byte for byte, across the loop's wrap.
func TestH265AnnexBFile(t *testing.T) {
	clip := makeH265Clip(t)
	src, err := Open(clip.annexB+",fps=50", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	checkH265Stream(t, clip.annexBView(), "Annex-B file", s, true, 2*len(clip.aus)+3)
}

// TestH265Pipe: the same from a pipe, which does not loop: the viewers
// subscribe first, so they get every access unit from the first.
func TestH265Pipe(t *testing.T) {
	clip := makeH265Clip(t).annexBView()
	b, err := os.ReadFile(clip.annexB)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	src, err := Open("-", pr)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	// The first frame tells the stream its codec; the viewers come after
	// it and start at the next keyframe, which the rest of the pipe holds.
	if _, err := pw.Write(b[:len(b)/3]); err != nil {
		t.Fatal(err)
	}
	f := collectFMP4Later(t, s)
	r := collectRTP(t, s)
	if _, err := pw.Write(b[len(b)/3:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	n := len(clip.aus) - 10 // the keyframes are 0, 5 and 10: the last GOP at least
	f.wait(t, n)
	f.check(t, clip, "pipe (fmp4)", false)
	clip.checkSequence(t, "pipe (srtp)", r.wait(t, n), false)
}

// collectFMP4Later is collectFMP4 once the stream has its codec.
func collectFMP4Later(t *testing.T, s *Stream) *fmp4Collector {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.WaitVideoCodec(ctx); err != nil {
		t.Fatal(err)
	}
	return collectFMP4(t, s)
}

// TestH265MP4: an MP4 with an hvc1 track (parameter sets in hvcC and in
// band, as ffmpeg writes it).
func TestH265MP4(t *testing.T) {
	clip := makeH265Clip(t)
	src, err := Open(clip.mp4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := src.(*LoopSource); len(l.Video) != len(clip.aus) || l.FrameDuration != 100*time.Millisecond {
		t.Errorf("%d frames of %v, want %d of 100 ms", len(l.Video), l.FrameDuration, len(clip.aus))
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	checkH265Stream(t, clip, "MP4", s, true, len(clip.aus)+3)
}

// startRTSPServer265 serves aus in a loop as an H.265 camera would over
// RTSP (RFC 7798 by gortsplib's packetizer), video only, the parameter
// sets in the SDP too.
func startRTSPServer265(t *testing.T, addr string, clip *h265Clip) *rtspServer {
	t.Helper()
	f := &format.H265{PayloadTyp: 96, VPS: clip.vps, SPS: clip.sps, PPS: clip.pps}
	vm := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}
	h := &rtspServer{stop: make(chan struct{})}
	h.srv = &gortsplib.Server{Handler: h, RTSPAddress: addr}
	if err := h.srv.Start(); err != nil {
		t.Fatal(err)
	}
	stream := gortsplib.NewServerStream(h.srv, &description.Session{Medias: []*description.Media{vm}})
	h.mu.Lock()
	h.stream = stream
	h.mu.Unlock()
	enc, err := f.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	h.wg.Go(func() {
		tick := time.NewTicker(30 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
			pkts, err := enc.Encode(clip.aus[n%len(clip.aus)])
			if err != nil {
				panic(err)
			}
			for _, p := range pkts {
				p.Timestamp = uint32(n * 2700)
				stream.WritePacketRTP(vm, p)
			}
		}
	})
	return h
}

// TestH265RTSP: an H.265 RTSP camera's access units reach both kinds of
// viewer as the camera sent them.
func TestH265RTSP(t *testing.T) {
	clip := makeH265Clip(t).annexBView()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	srv := startRTSPServer265(t, addr, clip)
	defer srv.close()
	src, err := Open("rtsp://"+addr+"/cam", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	checkH265Stream(t, clip, "RTSP", s, true, len(clip.aus)+3)
}

// TestH265RTPFromFFmpeg: ffmpeg sends the clip unchanged (-c copy, from
// the MP4: its raw H.265 demuxer cannot loop) as RTP with an SDP file, as
// `ersmesh device --stream cam=rtp://…,sdp=…` takes it.
func TestH265RTPFromFFmpeg(t *testing.T) {
	clip := makeH265Clip(t)
	ff := needX265(t)
	port := freePort(t, "udp")
	sdpPath, cancel := ffmpegRTP(t, ff, port, "H265/90000", "-stream_loop", "-1", "-i", clip.mp4, "-c", "copy")
	src, err := Open(fmt.Sprintf("rtp://127.0.0.1:%d,sdp=%s", port, sdpPath), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	checkH265Stream(t, clip, "RTP", s, true, len(clip.aus)+3)
	cancel()
}
