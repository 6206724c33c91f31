package demo

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Library goroutines that outlive their users by design: Pebble's
		// validation loop (a test CA, never stopped), certmagic's
		// per-CA rate limiters (package globals) and its lock-file
		// refresher (ends within seconds of the lock's release).
		goleak.IgnoreTopFunction("github.com/letsencrypt/pebble/v2/va.VAImpl.processTasks"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
	)
}

// TestBrowserPlaysDemo is the whole flow, for each transport: a bootstrap,
// a bridge and a device, each its own libp2p host; headless Chromium opens
// the bridge's player page, which joins the room over Socket.IO, gets the
// device's offer relayed through the bridge and libp2p, and decodes video
// peer to peer: fragmented MP4 (H.264 and AAC) through Media Source
// Extensions for fmp4, WebRTC tracks for srtp.
func TestBrowserPlaysDemo(t *testing.T) {
	for _, transport := range []string{"fmp4", "srtp"} {
		t.Run(transport, func(t *testing.T) { testBrowserPlays(t, transport) })
	}
}

// startTest starts the demo on a loopback port with cfg and closes it when
// the test ends, failing the test if it does not close cleanly.
func startTest(t *testing.T, ctx context.Context, cfg Config) *Demo {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	d, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close demo: %v", err)
		}
	})
	return d
}

func testBrowserPlays(t *testing.T, transport string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startTest(t, ctx, Config{Logger: testutil.Logger(t)})

	// No ExposeLocalIPs: Chromium keeps hiding its host candidates behind
	// mDNS names, as real browsers do; the device must cope.
	b := browsertest.New(t)
	if _, err := browsertest.Eval[bool](b, `(location.href = `+jsString(d.URL+"&transport="+transport)+`, true)`); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, `document.body && document.body.dataset.stage === "playing"`)
	// Decoded frames, and the clock moving: the picture is live, not one
	// still frame.
	browsertest.WaitFor(b, t, 20*time.Second, `(() => {
		const v = document.getElementById("video");
		return v.getVideoPlaybackQuality().totalVideoFrames > 30 && v.currentTime > 1;
	})()`)
	w, err := browsertest.Eval[float64](b, `document.getElementById("video").videoWidth`)
	if err != nil {
		t.Fatal(err)
	}
	if w != 640 {
		t.Errorf("video width %v, want the sample's 640", w)
	}
	switch transport {
	case "fmp4":
		if src, _ := browsertest.Eval[string](b, `document.getElementById("video").src`); !strings.HasPrefix(src, "blob:") {
			t.Errorf("fmp4 video plays from %q, want a MediaSource blob URL", src)
		}
		// AAC through MSE: the element decodes audio, and keeps decoding.
		first := audioBytes(t, b)
		browsertest.WaitFor(b, t, 10*time.Second, `document.getElementById("video").webkitAudioDecodedByteCount > `+strconv.Itoa(first+1000))
		if first == 0 {
			t.Log("audio started after the first check; it advanced afterwards")
		}
	case "srtp":
		// The sample's audio is AAC, which tracks cannot carry: the player
		// says so.
		browsertest.WaitFor(b, t, 5*time.Second, `document.getElementById("message").textContent.includes("AAC") &&
			document.getElementById("message").textContent.includes("fmp4")`)
	}
}

func audioBytes(t *testing.T, b context.Context) int {
	t.Helper()
	n, err := browsertest.Eval[float64](b, `document.getElementById("video").webkitAudioDecodedByteCount`)
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// TestBrowserShowsEmptyRoom checks the player's words when no device serves
// the room it was asked for.
func TestBrowserShowsEmptyRoom(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := Start(ctx, Config{Addr: "127.0.0.1:0", Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b := browsertest.New(t)
	url := d.URL[:len(d.URL)-len("?room=demo&stream=sample")] + "?room=nobody-here"
	if _, err := browsertest.Eval[bool](b, `(location.href = `+jsString(url)+`, true)`); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 15*time.Second, `document.body && document.body.dataset.stage === "waiting" &&
		document.getElementById("message").textContent.includes("nobody-here")`)
}

func jsString(s string) string {
	b := []byte{'"'}
	for _, r := range s {
		switch r {
		case '"', '\\':
			b = append(b, '\\', byte(r))
		default:
			b = append(b, string(r)...)
		}
	}
	return string(append(b, '"'))
}
