package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/media/ems"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// watch subscribes to s as an fmp4 viewer and collects what it gets.
type watch struct {
	mu       sync.Mutex
	init     *ems.Init
	segments int
	keys     int
	err      error
	done     chan struct{}
}

func watchStream(t *testing.T, s *Stream) *watch {
	t.Helper()
	v, err := s.SubscribeFMP4()
	if err != nil {
		t.Fatal(err)
	}
	w := &watch{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var p ems.Parser
		for c := range v.C {
			w.mu.Lock()
			if w.err == nil {
				w.err = p.Feed(c.Data, func(in ems.Init) { w.init = &in }, func(ems.Segment) {
					w.segments++
					if c.Key {
						w.keys++
					}
				})
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { s.UnsubscribeFMP4(v); <-w.done })
	return w
}

// waitSegments waits until the viewer has n more segments than it had.
func (w *watch) waitSegments(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	w.mu.Lock()
	want := w.segments + n
	w.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		got, err := w.segments, w.err
		w.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d segments after %v, want %d", got, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *watch) codecs() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.init == nil {
		return ""
	}
	return w.init.Codecs()
}

func sampleFiles(t *testing.T) (h264, aac string) {
	dir := t.TempDir()
	h264, aac = filepath.Join(dir, "cam.h264"), filepath.Join(dir, "cam.aac")
	if err := os.WriteFile(h264, sampleClip, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aac, sampleAAC, 0o644); err != nil {
		t.Fatal(err)
	}
	return h264, aac
}

func TestFileSourceWithAudio(t *testing.T) {
	h264, aac := sampleFiles(t)
	src, err := Open(h264+",audio="+aac+",fps=30", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	w := watchStream(t, s)
	w.waitSegments(t, 40, 10*time.Second)
	if c := w.codecs(); c != "avc1.42c01f,mp4a.40.2" {
		t.Errorf("codecs %q, want H.264 and AAC", c)
	}
}

func TestBadSourcesNameThemselves(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.h264")
	os.WriteFile(garbage, []byte("this is not a video, just text that goes on"), 0o644)
	h264, _ := sampleFiles(t)
	for _, tc := range []struct{ source, want string }{
		{filepath.Join(dir, "missing.h264"), "missing.h264: no such file"},
		{garbage, garbage},
		{"ftp://cam/x", `"ftp://cam/x": unsupported scheme`},
		{h264 + ",colour=blue", `unknown option "colour"`},
		{h264 + ",fps=0", `fps "0"`},
		{h264 + ",audio=" + garbage, "audio files must be ADTS AAC (.aac) or Ogg Opus"},
		{"rtp://127.0.0.1:5004", "needs its SDP file"},
		{"rtp://127.0.0.1:5004,sdp=" + garbage, "not an SDP file"},
	} {
		_, err := Open(tc.source, nil)
		if err == nil || !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %v, want an ErrBadSource mentioning %q", tc.source, err, tc.want)
		}
	}
}

// TestOpenStreamsSkipsBadOnes: a bad --stream is reported and the good
// ones serve.
func TestOpenStreamsSkipsBadOnes(t *testing.T) {
	var logBuf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logBuf}, nil))
	streams, err := OpenStreams([]string{"good=sample:", "bad=/nonexistent/cam.h264"}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range streams {
			s.Close()
		}
	}()
	if len(streams) != 1 || streams["good"] == nil {
		t.Fatalf("streams %v, want only good", streams)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logBuf.String(), "/nonexistent/cam.h264") {
		t.Errorf("log does not name the bad source:\n%s", logBuf.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// ffmpegRTP runs ffmpeg with the input arguments given, sending RTP to
// port on loopback, and waits for the SDP it writes to contain want. stop
// ends ffmpeg and waits for it (also done when the test ends).
func ffmpegRTP(t *testing.T, ff string, port int, want string, input ...string) (sdpPath string, stop func()) {
	t.Helper()
	sdpPath = filepath.Join(t.TempDir(), "in.sdp")
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"-hide_banner", "-loglevel", "error", "-re"}, input...)
	args = append(args, "-f", "rtp", "-sdp_file", sdpPath, fmt.Sprintf("rtp://127.0.0.1:%d?pkt_size=1200", port))
	cmd := exec.CommandContext(ctx, ff, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); cmd.Wait() }) }
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(sdpPath); err == nil && bytes.Contains(b, []byte(want)) {
			return sdpPath, stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("ffmpeg wrote no SDP with %q: %s", want, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func needFFmpeg(t *testing.T) string {
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg is needed (CI=true)")
		}
		t.Skip("no ffmpeg (CI=true fails instead)")
	}
	return p
}

// TestPipeSourceFromFFmpeg: ffmpeg encodes a live test pattern to its
// stdout, as `ffmpeg ... -f h264 - | ersmesh device --stream cam=-` does.
func TestPipeSourceFromFFmpeg(t *testing.T) {
	ff := needFFmpeg(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, ff, "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
		"-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
		"-f", "h264", "-")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	src, err := Open("-", out)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	w := watchStream(t, s)
	w.waitSegments(t, 30, 15*time.Second)
	if c := w.codecs(); !strings.HasPrefix(c, "avc1.42") || strings.Contains(c, "mp4a") {
		t.Errorf("codecs %q, want H.264 baseline only", c)
	}
	cancel()
}

// rtspServer publishes the sample clip (H.264 and AAC) over RTSP, as a
// camera would.
type rtspServer struct {
	plis   atomic.Int32 // Picture Loss Indications from readers
	srv    *gortsplib.Server
	mu     sync.Mutex // guards stream: a client may come before it exists
	stream *gortsplib.ServerStream
	stop   chan struct{}
	wg     sync.WaitGroup
}

func (h *rtspServer) serverStream() (*base.Response, *gortsplib.ServerStream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, h.stream, nil
}

func (h *rtspServer) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return h.serverStream()
}

func (h *rtspServer) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return h.serverStream()
}

func (h *rtspServer) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	ctx.Session.OnPacketRTCPAny(func(_ *description.Media, p rtcp.Packet) {
		if _, ok := p.(*rtcp.PictureLossIndication); ok {
			h.plis.Add(1)
		}
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// startRTSPServer serves the sample's video with its AAC audio, or with
// G.711 µ-law silence when pcmu is set.
func startRTSPServer(t *testing.T, addr string, pcmu ...bool) *rtspServer {
	t.Helper()
	aus, _ := SampleClip()
	audio, afmt, _ := SampleAudio()
	h264 := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	aac := &format.MPEG4Audio{PayloadTyp: 97, Config: afmt.AAC, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
	g711 := &format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}
	usePCMU := len(pcmu) > 0 && pcmu[0]
	vm := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{h264}}
	am := &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{aac}}
	if usePCMU {
		am.Formats = []format.Format{g711}
	}
	h := &rtspServer{stop: make(chan struct{})}
	h.srv = &gortsplib.Server{Handler: h, RTSPAddress: addr}
	if err := h.srv.Start(); err != nil {
		t.Fatal(err)
	}
	stream := gortsplib.NewServerStream(h.srv, &description.Session{Medias: []*description.Media{vm, am}})
	h.mu.Lock()
	h.stream = stream
	h.mu.Unlock()
	venc, err := h264.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	aenc, err := aac.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	genc, err := g711.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	silence := bytes.Repeat([]byte{0xff}, 266) // 1/30 s of µ-law silence
	h.wg.Go(func() {
		tick := time.NewTicker(SampleFrameDuration)
		defer tick.Stop()
		na := 0
		for n := 0; ; n++ {
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
			pkts, err := venc.Encode(aus[n%len(aus)].NALUs)
			if err != nil {
				panic(err)
			}
			for _, p := range pkts {
				p.Timestamp = uint32(n * 3000)
				stream.WritePacketRTP(vm, p)
			}
			if usePCMU {
				// 266 µ-law samples: 1/30 s at 8 kHz.
				pkts, err := genc.Encode(silence[:min(len(silence), 266)])
				if err != nil {
					panic(err)
				}
				for _, p := range pkts {
					p.Timestamp = uint32(n * 8000 / 30)
					stream.WritePacketRTP(am, p)
				}
				continue
			}
			// Audio up to this frame's time: 32 kHz, 1024 samples a frame.
			for ; na*1024*30 < (n+1)*32000; na++ {
				pkts, err := aenc.Encode([][]byte{audio[na%len(audio)].Data})
				if err != nil {
					panic(err)
				}
				for _, p := range pkts {
					p.Timestamp = uint32(na * 1024)
					stream.WritePacketRTP(am, p)
				}
			}
		}
	})
	return h
}

func (h *rtspServer) close() {
	close(h.stop)
	h.wg.Wait()
	h.stream.Close()
	h.srv.Close()
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	switch network {
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	default:
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
}

// TestRTSPSourceReconnects pulls the sample from an in-process RTSP server,
// then restarts the server: the stream reconnects and goes on.
func TestRTSPSourceReconnects(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	srv := startRTSPServer(t, addr)
	src, err := Open("rtsp://user:secret@"+addr+"/cam", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(src.String(), "secret") {
		t.Errorf("source name %q shows the password", src.String())
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	w := watchStream(t, s)
	w.waitSegments(t, 30, 15*time.Second)
	if c := w.codecs(); c != "avc1.42c01f,mp4a.40.2" {
		t.Errorf("codecs %q, want H.264 and AAC", c)
	}
	srv.close()
	time.Sleep(300 * time.Millisecond) // the client notices the drop
	srv = startRTSPServer(t, addr)
	defer srv.close()
	w.waitSegments(t, 30, 20*time.Second)
}

// TestRTPSourceFromFFmpeg: ffmpeg pushes H.264 over RTP to a UDP port and
// writes the SDP that describes it.
func TestRTPSourceFromFFmpeg(t *testing.T) {
	ff := needFFmpeg(t)
	port := freePort(t, "udp")
	sdpPath, cancel := ffmpegRTP(t, ff, port, "m=video",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
		"-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30")
	if _, err := Open(fmt.Sprintf("rtp://127.0.0.1:%d,sdp=%s", port+2, sdpPath), nil); err == nil || !strings.Contains(err.Error(), "port") {
		t.Errorf("a URL port that is not the SDP's: err = %v", err)
	}
	src, err := Open(fmt.Sprintf("rtp://127.0.0.1:%d,sdp=%s", port, sdpPath), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	w := watchStream(t, s)
	w.waitSegments(t, 30, 15*time.Second)
	cancel()
}

// countingContext binds a track to a writer that counts packets.
type countingContext struct {
	discardContext
	codec webrtc.RTPCodecCapability
	pt    webrtc.PayloadType
	n     *atomic.Int64
}

func (c countingContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{{RTPCodecCapability: c.codec, PayloadType: c.pt}}
}
func (c countingContext) WriteStream() webrtc.TrackLocalWriter { return countingWriter{c.n} }

type countingWriter struct{ n *atomic.Int64 }

func (w countingWriter) WriteRTP(_ *rtp.Header, p []byte) (int, error) {
	w.n.Add(1)
	return 12 + len(p), nil
}
func (w countingWriter) Write(b []byte) (int, error) { w.n.Add(1); return len(b), nil }

// TestRTSPSourceG711PassThrough: a camera with G.711 audio gets a PCMU
// track for srtp viewers, fed with the camera's packets.
func TestRTSPSourceG711PassThrough(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	srv := startRTSPServer(t, addr, true)
	defer srv.close()
	src, err := Open("rtsp://"+addr+"/cam", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	w := watchStream(t, s)
	w.waitSegments(t, 10, 15*time.Second)
	if c := w.codecs(); c != "avc1.42c01f" {
		t.Errorf("fmp4 codecs %q, want video only (G.711 is not AAC)", c)
	}
	v, err := s.SubscribeRTP()
	if err != nil {
		t.Fatal(err)
	}
	defer s.UnsubscribeRTP(v)
	a, _ := v.AudioTrack().(*boundTrack)
	if a == nil || a.Codec().MimeType != webrtc.MimeTypePCMU {
		t.Fatalf("audio track %v, want PCMU", a)
	}
	var n atomic.Int64
	if _, err := a.Bind(countingContext{discardContext{id: "x"}, a.Codec(), 0, &n}); err != nil {
		t.Fatal(err)
	}
	defer a.Unbind(countingContext{discardContext: discardContext{id: "x"}})
	deadline := time.Now().Add(10 * time.Second)
	for n.Load() < 30 {
		if time.Now().After(deadline) {
			t.Fatalf("%d audio packets sent to the bound track in 10 s", n.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMP4Source: an MP4 that ffmpeg muxed from the sample (H.264 and AAC).
func TestMP4Source(t *testing.T) {
	ff := needFFmpeg(t)
	h264, aac := sampleFiles(t)
	out := filepath.Join(t.TempDir(), "clip.mp4")
	cmd := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-r", "30", "-i", h264, "-i", aac, "-c", "copy", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	src, err := Open(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	loop := src.(*LoopSource)
	if len(loop.Video) != 120 || loop.FrameDuration < 33*time.Millisecond || loop.FrameDuration > 34*time.Millisecond {
		t.Errorf("%d frames of %v, want 120 of 1/30 s", len(loop.Video), loop.FrameDuration)
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	w := watchStream(t, s)
	w.waitSegments(t, 30, 10*time.Second)
	if c := w.codecs(); c != "avc1.42c01f,mp4a.40.2" {
		t.Errorf("codecs %q, want H.264 and AAC", c)
	}
	// Not an MP4 at all.
	bad := filepath.Join(t.TempDir(), "bad.mp4")
	os.WriteFile(bad, []byte("RIFF....WAVEfmt "), 0o644)
	if _, err := Open(bad, nil); !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), "bad.mp4") {
		t.Errorf("Open(garbage mp4) = %v, want an ErrBadSource naming it", err)
	}
}

// TestFileSourceWithOggOpus: Opus from an Ogg file that ffmpeg wrote goes
// to srtp viewers' audio track; fmp4 viewers get the video.
func TestFileSourceWithOggOpus(t *testing.T) {
	ff := needFFmpeg(t)
	h264, _ := sampleFiles(t)
	ogg := filepath.Join(t.TempDir(), "tone.ogg")
	cmd := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
		"-c:a", "libopus", "-b:a", "32k", ogg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	src, err := Open(h264+",audio="+ogg, nil)
	if err != nil {
		t.Fatal(err)
	}
	loop := src.(*LoopSource)
	// 2 s of 20 ms packets.
	if n := len(loop.Audio); n < 95 || n > 105 {
		t.Errorf("%d Opus packets in 2 s, want about 100", n)
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	w := watchStream(t, s)
	w.waitSegments(t, 10, 10*time.Second)
	v, err := s.SubscribeRTP()
	if err != nil {
		t.Fatal(err)
	}
	defer s.UnsubscribeRTP(v)
	a, _ := v.AudioTrack().(*boundTrack)
	if a == nil || a.Codec().MimeType != webrtc.MimeTypeOpus {
		t.Fatalf("audio track %v, want Opus", a)
	}
	var n atomic.Int64
	if _, err := a.Bind(countingContext{discardContext{id: "x"}, a.Codec(), 111, &n}); err != nil {
		t.Fatal(err)
	}
	defer a.Unbind(countingContext{discardContext: discardContext{id: "x"}})
	deadline := time.Now().Add(10 * time.Second)
	for n.Load() < 25 {
		if time.Now().After(deadline) {
			t.Fatalf("%d Opus packets sent to the bound track in 10 s", n.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := readAllOggOpus(bytes.NewReader(sampleAAC)); !errors.Is(err, ErrNotOggOpus) {
		t.Errorf("AAC read as Ogg Opus: %v", err)
	}
}

// watchLog collects a stream's log lines.
type watchLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *watchLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{&l.mu, &l.buf}, nil))
}

func (l *watchLog) waitFor(t *testing.T, timeout time.Duration, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		text := l.buf.String()
		l.mu.Unlock()
		all := true
		for _, p := range parts {
			all = all && strings.Contains(text, p)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q after %v:\n%s", parts, timeout, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUnreachableCameraIsRetried: the log names the camera and the stream
// keeps trying.
func TestUnreachableCameraIsRetried(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	src, err := Open("rtsp://"+addr+"/cam", nil)
	if err != nil {
		t.Fatal(err)
	}
	var l watchLog
	s := NewStream("cam", src, l.logger())
	defer s.Close()
	l.waitFor(t, 5*time.Second, "source failed; retrying", "rtsp://"+addr+"/cam", "connection refused")
	// And when the camera comes up, the stream plays.
	srv := startRTSPServer(t, addr)
	defer srv.close()
	w := watchStream(t, s)
	w.waitSegments(t, 10, 15*time.Second)
}

// TestGarbagePipeStopsTheStream: a pipe of garbage is reported once, naming
// the source, and not retried.
func TestGarbagePipeStopsTheStream(t *testing.T) {
	src, err := Open("pipe:", strings.NewReader(strings.Repeat("garbage ", 100)))
	if err != nil {
		t.Fatal(err)
	}
	var l watchLog
	s := NewStream("cam", src, l.logger())
	defer s.Close()
	l.waitFor(t, 5*time.Second, "source unusable; stream stopped", "pipe:", "not an H.264 Annex-B stream")
}

// TestRTSPKeyframeRequest: a viewer's keyframe request reaches the camera
// as an RTCP PLI, at most once a second however many viewers ask.
func TestRTSPKeyframeRequest(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	srv := startRTSPServer(t, addr)
	defer srv.close()
	src, err := Open("rtsp://"+addr+"/cam", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream("cam", src, quietLog())
	defer s.Close()
	w := watchStream(t, s)
	w.waitSegments(t, 5, 15*time.Second)
	for range 50 { // a burst from many viewers
		s.RequestKeyframe()
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.plis.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the camera got no PLI")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if n := srv.plis.Load(); n != 1 {
		t.Errorf("the camera got %d PLIs for one burst, want 1", n)
	}
	// A file source cannot make keyframes: asking is harmless.
	file := NewStream("file", &LoopSource{Name: "loop", Video: nil}, quietLog())
	file.RequestKeyframe()
	file.Close()
}
