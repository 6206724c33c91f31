package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/pkg/formats/fmp4"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/node/media/ems"
)

// TestFMP4ViewerGetsH264AndAAC runs the EMS fmp4 transport with a pion
// viewer: data channels in the offer, fmp4Request/fmp4Response, then the
// record framing carrying an init segment with H.264 and AAC tracks and
// one media segment per frame, starting on a keyframe.
func TestFMP4ViewerGetsH264AndAAC(t *testing.T) {
	tm := newTestMesh(t)
	v := newTestViewer(t, tm, "viewer1", "fmp4", "cam")
	v.waitFor("60 segments", 20*time.Second, func() bool { return len(v.segments) >= 60 || v.parseErr != nil })
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.parseErr != nil {
		t.Fatal(v.parseErr)
	}
	if strings.Contains(v.offerSDP, "m=video") || strings.Contains(v.offerSDP, "m=audio") || !strings.Contains(v.offerSDP, "m=application") {
		t.Errorf("fmp4 offer must carry data channels and no media tracks:\n%s", v.offerSDP)
	}
	if v.response == nil || v.response.Status != "SUCCESS" || v.response.Name != "cam" {
		t.Fatalf("fmp4Response = %+v, want SUCCESS for cam", v.response)
	}
	if v.init == nil {
		t.Fatal("no MOOV record")
	}
	if got := v.init.Codecs(); got != "avc1.42c01f,mp4a.40.2" {
		t.Errorf("codecs from the MOOV header = %q, want avc1.42c01f,mp4a.40.2", got)
	}
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(v.init.Segment)); err != nil {
		t.Fatalf("init segment: %v", err)
	}
	if len(in.Tracks) != 2 {
		t.Fatalf("init segment has %d tracks, want video and audio", len(in.Tracks))
	}
	if _, ok := in.Tracks[1].Codec.(*fmp4.CodecMPEG4Audio); !ok {
		t.Errorf("second track is %T, want AAC", in.Tracks[1].Codec)
	}
	audioSamples := 0
	var lastVideo uint64
	for i, s := range v.segments {
		parts := parseSegment(t, s)
		if len(parts) != 1 || len(parts[0].Tracks) != 2 {
			t.Fatalf("segment %d: want one moof with a video and an audio traf", i)
		}
		video := parts[0].Tracks[0]
		if len(video.Samples) != 1 || !bytes.Equal(video.Samples[0].Payload, s.Video) {
			t.Fatalf("segment %d: the VIDEO record is not the video traf's sample", i)
		}
		if i == 0 && video.Samples[0].IsNonSyncSample {
			t.Fatal("the first segment is not a keyframe")
		}
		if i > 0 && video.BaseTime-lastVideo > 3001 {
			t.Fatalf("segment %d: video jumps by %d ticks: a frame is missing", i, video.BaseTime-lastVideo)
		}
		lastVideo = video.BaseTime
		for _, a := range parts[0].Tracks[1].Samples {
			audioSamples++
			if !bytes.Contains(s.Audio, a.Payload) {
				t.Fatalf("segment %d: audio sample not in the AUDIO record", i)
			}
		}
	}
	// 60 frames at 30 fps are 2 s: about 62 AAC frames of 32 ms.
	if audioSamples < 50 {
		t.Errorf("%d AAC frames in 60 video frames, want about 62", audioSamples)
	}
}

func TestFMP4UnknownStreamFails(t *testing.T) {
	tm := newTestMesh(t)
	v := newTestViewer(t, tm, "viewer1", "fmp4", "cam")
	v.requestName = "garage"
	v.waitFor("an fmp4Response", 15*time.Second, func() bool { return v.response != nil })
	v.mu.Lock()
	defer v.mu.Unlock()
	r := v.response
	if r.Status != "FAIL" || r.Name != "garage" || !strings.HasPrefix(r.Description, emsFailText) || !strings.Contains(r.Description, `"garage"`) || !strings.Contains(r.Description, "cam") {
		t.Fatalf("fmp4Response = %+v, want a FAIL naming the stream and what the device serves", r)
	}
}

// TestManySRTPViewersGetEveryFrame: 20 pion viewers each receive every
// frame, while a 21st stops reading altogether.
func TestManySRTPViewersGetEveryFrame(t *testing.T) {
	tm := newTestMesh(t)
	stalled := newTestViewer(t, tm, "stalled", "srtp", "cam")
	stalled.stall = true
	var viewers []*testViewer
	for i := range 20 {
		viewers = append(viewers, newTestViewer(t, tm, fmt.Sprintf("viewer%d", i), "srtp", "cam"))
	}
	var wg sync.WaitGroup
	for _, v := range viewers {
		wg.Go(func() {
			v.waitFor("90 frames", 30*time.Second, func() bool { return len(v.frames) >= 90 })
		})
	}
	wg.Wait()
	for i, v := range viewers {
		v.mu.Lock()
		frames := append([]uint32(nil), v.frames...)
		sdp, first := v.offerSDP, v.firstNAL
		v.mu.Unlock()
		// The first picture a viewer gets is decodable: the keyframe's
		// parameter sets (SPS, 7) or the IDR slice itself (5).
		if first != 7 && first != 5 {
			t.Errorf("viewer %d: first NAL unit type %d, want SPS or IDR", i, first)
		}
		if i == 0 && !strings.Contains(sdp, "\r\ni="+aacOnSRTPNote+"\r\n") {
			t.Errorf("srtp offer of an AAC stream lacks the note for the player:\n%s", sdp)
		}
		// Burst frames of the cached GOP are 1 tick apart, live ones
		// 3000 (30 fps): anything larger is a lost frame. A frame whose
		// last packet the kernel dropped on this loaded machine comes
		// again after a NACK, late: compare the set of frames, leaving out
		// the last ones whose repair may be under way.
		slices.Sort(frames)
		frames = slices.Compact(frames)
		frames = frames[:len(frames)-10]
		for j := 1; j < len(frames); j++ {
			if d := frames[j] - frames[j-1]; d == 0 || d > 3000 {
				t.Fatalf("viewer %d: frame %d is %d ticks after the previous: frames missing", i, j, d)
			}
		}
	}
}

// TestSRTPViewerGetsG711Audio: G.711 passes through to srtp viewers as a
// PCMU track next to the video.
func TestSRTPViewerGetsG711Audio(t *testing.T) {
	tm := newTestMesh(t)
	v := newTestViewer(t, tm, "viewer1", "srtp", "phone")
	v.waitFor("audio and video", 20*time.Second, func() bool { return v.audioPackets >= 50 && len(v.frames) >= 30 })
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.audioCodec != "audio/PCMU" {
		t.Errorf("audio codec %q, want audio/PCMU", v.audioCodec)
	}
	if strings.Contains(v.offerSDP, "\r\ni=") {
		t.Errorf("offer carries a note although the audio is sent:\n%s", v.offerSDP)
	}
}

// TestFMP4ViewersUnaffectedByStalledOne: fmp4 viewers each get every
// frame's segment while another fmp4 viewer has stopped reading its data
// channel altogether.
func TestFMP4ViewersUnaffectedByStalledOne(t *testing.T) {
	tm := newTestMesh(t)
	stalled := newTestViewer(t, tm, "stalled", "fmp4", "cam")
	stalled.stall = true
	var viewers []*testViewer
	for i := range 5 {
		viewers = append(viewers, newTestViewer(t, tm, fmt.Sprintf("viewer%d", i), "fmp4", "cam"))
	}
	var wg sync.WaitGroup
	for _, v := range viewers {
		wg.Go(func() {
			v.waitFor("90 segments", 30*time.Second, func() bool { return len(v.segments) >= 90 || v.parseErr != nil })
		})
	}
	wg.Wait()
	for i, v := range viewers {
		v.mu.Lock()
		segs, perr := append([]ems.Segment(nil), v.segments...), v.parseErr
		v.mu.Unlock()
		if perr != nil {
			t.Fatalf("viewer %d: %v", i, perr)
		}
		var last uint64
		for j, s := range segs {
			base := parseSegment(t, s)[0].Tracks[0].BaseTime
			if j > 0 && base-last > 3001 {
				t.Fatalf("viewer %d: segment %d jumps %d ticks: frames missing", i, j, base-last)
			}
			last = base
		}
	}
}

func FuzzFMP4Request(f *testing.F) {
	f.Add([]byte(`{"type":"fmp4Request","payload":{"name":"cam"}}`))
	f.Add([]byte(`{"type":"fmp4Request","payload":{}}`))
	f.Add([]byte(`{"type":"metadata","payload":{"data":1}}`))
	f.Add([]byte(`{"type":"fmp4Request","payload":"cam"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := parseFMP4Request(b)
		if err == nil && len(name) > len(b) {
			t.Fatalf("name of %d bytes from %d input bytes", len(name), len(b))
		}
		if err != nil && name != "" {
			t.Fatalf("error %v with a name", err)
		}
	})
}

func TestParseFMP4Request(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"fmp4Request","payload":{"name":"cam"}}`: "cam",
		`{"type":"fmp4Request","payload":{"name":""}}`:    "",
	} {
		if got, err := parseFMP4Request([]byte(in)); err != nil || got != want {
			t.Errorf("parse %s = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`{"type":"fmp4Request","payload":{}}`, `nonsense`, `{"type":"fmp4Request"}`, strings.Repeat(" ", maxCommandSize+1)} {
		if _, err := parseFMP4Request([]byte(in)); err == nil || errors.Is(err, errNotRequest) {
			t.Errorf("parse %.40q: err = %v, want a failure to answer", in, err)
		}
	}
	if _, err := parseFMP4Request([]byte(`{"type":"metadata"}`)); !errors.Is(err, errNotRequest) {
		t.Errorf("other commands: err = %v, want errNotRequest", err)
	}
}

// pairUp connects a device-side and a viewer-side PeerConnection in-process
// (full ICE gathering, no trickle).
func pairUp(t testing.TB, dev, viewer *webrtc.PeerConnection) {
	t.Helper()
	connected := make(chan struct{})
	var once sync.Once
	viewer.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	offer, err := dev.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gather := webrtc.GatheringCompletePromise(dev)
	if err := dev.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gather
	if err := viewer.SetRemoteDescription(*dev.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := viewer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gather = webrtc.GatheringCompletePromise(viewer)
	if err := viewer.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gather
	if err := dev.SetRemoteDescription(*viewer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatal("the viewer did not connect")
	}
}

// TestFMP4BackPressure: a viewer that stops reading its stream channel
// makes the device's bufferedAmount pass the limit; the device then skips
// frames (to the next keyframe) and the buffer stays bounded.
func TestFMP4BackPressure(t *testing.T) {
	stream := media.NewStream("hd", synthetic720p(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer stream.Close()
	api, err := newWebRTCAPI(true, iceFailedTimeout)
	if err != nil {
		t.Fatal(err)
	}
	dev, _, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	const limit = 64 << 10
	v, err := newFMP4Viewer(dev, map[string]*media.Stream{"hd": stream}, slog.New(slog.NewTextHandler(io.Discard, nil)), limit)
	if err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	viewer, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	unstall := make(chan struct{})
	got := make(chan int, 1)
	viewer.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() == commandChannelLabel {
			dc.OnOpen(func() { dc.SendText(`{"type":"fmp4Request","payload":{"name":"hd"}}`) })
			return
		}
		n := 0
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			if n += len(m.Data); n > 256<<10 {
				select {
				case got <- n:
				default:
				}
				<-unstall // stop reading: as a viewer on a link far too slow
			}
		})
	})
	defer func() {
		close(unstall)
		viewer.Close()
		dev.Close()
		v.detach()
	}()
	pairUp(t, dev, viewer)
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the viewer received nothing")
	}
	deadline := time.Now().Add(20 * time.Second)
	maxSeen := uint64(0)
	for v.skipped.Load() < 30 {
		maxSeen = max(maxSeen, v.data.BufferedAmount())
		if time.Now().After(deadline) {
			t.Fatalf("device skipped %d frames in 20 s (buffered %d), want it to skip once over %d", v.skipped.Load(), v.data.BufferedAmount(), limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Over the limit by at most one frame (a 60 KB keyframe and its records).
	if maxSeen > limit+80<<10 {
		t.Errorf("buffered up to %d bytes, want at most the %d limit and one frame", maxSeen, limit)
	}
}

// TestFMP4NoteForG711: an fmp4 viewer of a G.711 stream gets the video and
// a note that srtp carries the sound.
func TestFMP4NoteForG711(t *testing.T) {
	tm := newTestMesh(t)
	v := newTestViewer(t, tm, "viewer1", "fmp4", "phone")
	v.waitFor("10 segments", 15*time.Second, func() bool { return len(v.segments) >= 10 || v.parseErr != nil })
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.init == nil || v.init.Codecs() != "avc1.42c01f" {
		t.Errorf("init %+v, want video only", v.init)
	}
	if !strings.Contains(v.offerSDP, "\r\ni=This stream's audio is PCMU") || !strings.Contains(v.offerSDP, "srtp") {
		t.Errorf("offer lacks the note:\n%s", v.offerSDP)
	}
}

// TestFMP4FramesGoInBatches: pion's SCTP writes an fmp4 viewer's frames
// packet by packet from its association's goroutine; the viewer's sockets
// linger (udpbatch.Net.Linger) so that they leave in batches all the same,
// several DTLS records per system call, and the viewer gets every byte of
// every message in order.
func TestFMP4FramesGoInBatches(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stream := media.NewStream("hd", synthetic720p(t), log)
	defer stream.Close()
	dev, batch := newDevicePC(t)
	detach, err := attachFMP4(dev, batch, map[string]*media.Stream{"hd": stream}, log, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	viewer := newLoopbackViewer(t)
	var mu sync.Mutex
	var messages [][]byte
	viewer.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() == commandChannelLabel {
			dc.OnOpen(func() { dc.SendText(`{"type":"fmp4Request","payload":{"name":"hd"}}`) })
			return
		}
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			mu.Lock()
			messages = append(messages, m.Data)
			mu.Unlock()
		})
	})
	defer func() {
		viewer.Close()
		dev.Close()
		detach()
	}()
	pairUp(t, dev, viewer)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(messages)
	}
	// The MOOV, then a message per frame: two seconds of 720p30.
	for deadline := time.Now().Add(30 * time.Second); count() < 61; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the viewer got %d messages in 30 s, want 61", count())
		}
	}
	datagrams, calls := batch.Stats()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("viewer: %d messages; device: %d datagrams in %d system calls", len(messages), datagrams, calls)
	// 6.4 KB frames are 6 SCTP packets, a keyframe 52; one per call is
	// what a socket written packet by packet does.
	if calls == 0 || datagrams < 3*calls {
		t.Fatalf("%d datagrams in %d batched system calls: frames are not sent in batches", datagrams, calls)
	}
	// The records intact and in order: the MOOV, then a segment per
	// frame whose video is the source's (6.4 KB, a keyframe 60 KB).
	var p ems.Parser
	inits, segments := 0, 0
	for i, m := range messages {
		err := p.Feed(m, func(ems.Init) { inits++ }, func(s ems.Segment) {
			if n := len(s.Video); n < 6400 {
				t.Errorf("segment %d carries %d bytes of video, want a whole frame", segments, n)
			}
			segments++
		})
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if inits != 1 || segments < 60 {
		t.Fatalf("%d MOOV records and %d segments, want 1 and 60", inits, segments)
	}
}
