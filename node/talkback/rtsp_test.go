package talkback

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/pion/rtp"

	"github.com/ersmesh/ersmesh/internal/testutil"
)

// onvifCamera is an RTSP server that offers only an ONVIF audio
// backchannel (G.711 µ-law, sendonly from its side) and keeps the RTP it
// receives on it. gortsplib's own server drops RTP from a playing client,
// so the camera's side is written out here with gortsplib's message codec.
type onvifCamera struct {
	ln      net.Listener
	mu      sync.Mutex
	packets []*rtp.Packet
	require string // the Require header of the DESCRIBE
	wg      sync.WaitGroup
	ended   chan struct{} // a connection ended (one per test)
}

func newONVIFCamera(t *testing.T) *onvifCamera {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cam := &onvifCamera{ln: ln, ended: make(chan struct{}, 8)}
	cam.wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			cam.wg.Go(func() { cam.serve(nc) })
		}
	})
	t.Cleanup(func() { ln.Close(); cam.wg.Wait() })
	return cam
}

const backchannelSDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
	"m=audio 0 RTP/AVP 0\r\na=control:trackID=1\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n"

func (cam *onvifCamera) serve(nc net.Conn) {
	defer func() { nc.Close(); cam.ended <- struct{}{} }()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := conn.NewConn(nc)
	for {
		what, err := c.Read()
		if err != nil {
			return
		}
		switch m := what.(type) {
		case *base.InterleavedFrame:
			if m.Channel != 0 {
				continue
			}
			var p rtp.Packet
			if p.Unmarshal(m.Payload) == nil {
				cam.mu.Lock()
				cam.packets = append(cam.packets, &p)
				cam.mu.Unlock()
			}
		case *base.Request:
			res := &base.Response{StatusCode: base.StatusOK, Header: base.Header{"CSeq": m.Header["CSeq"]}}
			switch m.Method {
			case base.Options:
				res.Header["Public"] = base.HeaderValue{"DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"}
			case base.Describe:
				cam.mu.Lock()
				cam.require = strings.Join(m.Header["Require"], ",")
				cam.mu.Unlock()
				res.Header["Content-Type"] = base.HeaderValue{"application/sdp"}
				res.Header["Content-Base"] = base.HeaderValue{m.URL.String() + "/"}
				res.Body = []byte(backchannelSDP)
			case base.Setup:
				res.Header["Transport"] = base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=0-1"}
				res.Header["Session"] = base.HeaderValue{"cafe;timeout=60"}
			case base.Play, base.Teardown, base.GetParameter:
				res.Header["Session"] = base.HeaderValue{"cafe"}
			}
			if c.WriteResponse(res) != nil {
				return
			}
		}
	}
}

// sayOgg gives the sink that spec names one spurt of Ogg Opus and waits
// for its Close.
func sayOgg(t *testing.T, spec string, ogg []byte) {
	t.Helper()
	sink, err := ParseSink(spec)
	if err != nil {
		t.Fatal(err)
	}
	w, err := sink.Open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(ogg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRTSPSinkSpeaksThroughTheBackchannel: a second of a 1 kHz tone as Ogg
// Opus reaches the camera as G.711 µ-law RTP whose decoded audio is the tone.
func TestRTSPSinkSpeaksThroughTheBackchannel(t *testing.T) {
	testutil.NeedFFmpeg(t, "for the backchannel's transcoding")
	ogg := testutil.ToneOgg(t, 1)
	cam := newONVIFCamera(t)
	sayOgg(t, "rtsp://"+cam.ln.Addr().String()+"/cam", ogg)
	select { // every frame sent is read by the camera
	case <-cam.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the RTSP session did not end after the spurt")
	}
	cam.mu.Lock()
	pkts, require := cam.packets, cam.require
	cam.mu.Unlock()
	if require != "www.onvif.org/ver20/backchannel" {
		t.Fatalf("DESCRIBE's Require is %q", require)
	}
	if len(pkts) < 45 {
		t.Fatalf("%d RTP packets for a second of audio, want about 50", len(pkts))
	}
	var mulaw []byte
	for i, p := range pkts {
		if p.PayloadType != 0 {
			t.Fatalf("packet %d has payload type %d, want 0 (PCMU)", i, p.PayloadType)
		}
		if i > 0 && (p.SequenceNumber != pkts[i-1].SequenceNumber+1 || p.Timestamp != pkts[i-1].Timestamp+uint32(len(pkts[i-1].Payload))) {
			t.Fatalf("packet %d does not follow the one before", i)
		}
		mulaw = append(mulaw, p.Payload...)
	}
	// Decode the camera's µ-law with ffmpeg, and look for the tone.
	dec := exec.Command("ffmpeg", "-v", "error", "-f", "mulaw", "-ar", "8000", "-ac", "1", "-i", "pipe:0", "-f", "s16le", "pipe:1")
	dec.Stdin = bytes.NewReader(mulaw)
	pcm, err := dec.Output()
	if err != nil {
		t.Fatal(err)
	}
	s := testutil.PCMSamples(pcm)
	mid := s[len(s)/4 : 3*len(s)/4]
	if g := testutil.ToneShare(mid, 8000, 1000); g < 0.5 {
		t.Fatalf("only %.2f of the camera's audio is at 1 kHz", g)
	}
	if g := testutil.ToneShare(mid, 8000, 1500); g > 0.1 {
		t.Fatalf("%.2f of the camera's audio at 1.5 kHz: not the tone", g)
	}
}

// TestPCMCommandSink: a spurt reaches the command as 16 kHz s16le PCM that
// is the tone sent.
func TestPCMCommandSink(t *testing.T) {
	testutil.NeedFFmpeg(t, "for the pcm sink")
	ogg := testutil.ToneOgg(t, 1)
	out := filepath.Join(t.TempDir(), "heard.raw")
	sayOgg(t, "pcm:16000:tee "+out, ogg)
	pcm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	s := testutil.PCMSamples(pcm)
	if len(s) < 15000 || len(s) > 17000 {
		t.Fatalf("%d samples for a second at 16 kHz", len(s))
	}
	if g := testutil.ToneShare(s[len(s)/4:3*len(s)/4], 16000, 1000); g < 0.5 {
		t.Fatalf("only %.2f of the command's audio is at 1 kHz", g)
	}
}
