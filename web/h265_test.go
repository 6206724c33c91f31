package web_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/media"
)

// h265Stream is a stream of an H.265 clip that ffmpeg's libx265 made.
func h265Stream(t *testing.T) *media.Stream {
	t.Helper()
	path := testutil.H265File(t, 1)
	src, err := media.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := media.NewStream("hevc", src, nil)
	t.Cleanup(func() { s.Close() })
	return s
}

// TestH265SupportCheck: Chromium here cannot decode H.265 (no HEVC in its
// MSE or WebRTC), and the player says so in words on both transports when
// the camera sends H.265: over fmp4 once the MOOV names hev1, over srtp
// when the device refuses an answer without H.265.
func TestH265SupportCheck(t *testing.T) {
	hevc := h265Stream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Config{
		Addr: "127.0.0.1:0", Room: "cam",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		TuneDevice: func(c *node.Config) {
			streams := map[string]*media.Stream{"hevc": hevc}
			for k, v := range c.Streams {
				streams[k] = v
			}
			c.Streams = streams
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })

	b := browsertest.New(t)
	if err := browsertest.Navigate(b, d.Bridge+"/?room=cam"); err != nil {
		t.Fatal(err)
	}
	// What this Chromium can do, asked the way support.js asks.
	mse, err := browsertest.Eval[bool](b, `MediaSource.isTypeSupported('video/mp4; codecs="hev1.1.6.L30.90"') || MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L30.90"')`)
	if err != nil {
		t.Fatal(err)
	}
	rtc, err := browsertest.Eval[bool](b, `RTCRtpReceiver.getCapabilities('video').codecs.some((c) => c.mimeType.toLowerCase() === 'video/h265')`)
	if err != nil {
		t.Fatal(err)
	}
	if mse || rtc {
		t.Fatalf("this Chromium plays H.265 (MSE %v, WebRTC %v): the test needs one that cannot", mse, rtc)
	}
	// The module's verdicts: H.264 playable, H.265 not, on both transports.
	verdicts, err := browsertest.Eval[[]string](b, `import('/support.js').then((m) => [
		m.checkSupport('fmp4', 'avc1.42c01f,mp4a.40.2'), m.checkSupport('fmp4', 'hev1.1.6.L30.90'), m.checkSupport('srtp', 'hev1.1.6.L30.90')])`)
	if err != nil {
		t.Fatal(err)
	}
	if len(verdicts) != 3 || verdicts[0] != "" || !bytes.Contains([]byte(verdicts[1]), []byte("H.265")) || !bytes.Contains([]byte(verdicts[2]), []byte("getCapabilities")) {
		t.Fatalf("support.js verdicts %q", verdicts)
	}

	for _, transport := range []string{"fmp4", "srtp"} {
		t.Run(transport, func(t *testing.T) {
			b := browsertest.New(t)
			if err := browsertest.Navigate(b, d.Bridge+"/?room=cam&stream=hevc&transport="+transport); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitFor(b, t, 20*time.Second, `(() => { const m = document.getElementById('message').textContent;
				return document.body.dataset.stage === 'error' && document.body.dataset.reason === 'unsupported' && /H\.265/.test(m) && /cannot (play|receive)/.test(m) })()`)
		})
	}
}
