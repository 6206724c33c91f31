package web_test

import (
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
)

// TestAutomaticTransport: without ?transport= the player chooses from what
// the browser can do and plays by itself through a real bridge and device,
// says why in the stats overlay, and falls back to the other transport
// when the first fails to start.
func TestAutomaticTransport(t *testing.T) {
	d := startTestDemo(t, demo.Config{})

	for _, c := range []struct {
		name, stub, want, why string
	}{
		// Both work: fmp4, which also carries the sample's AAC.
		{"both", ``, "fmp4", `/Media Source Extensions play H\.264/.test(w) && /srtp if it fails/.test(w)`},
		// WebRTC without H.264 (Firefox without its OpenH264 plugin): fmp4.
		{"no H.264 in WebRTC", `RTCRtpReceiver.getCapabilities = () => ({codecs: [{mimeType: 'video/VP8'}], headerExtensions: []});`,
			"fmp4", `/WebRTC cannot/.test(w)`},
		// No MSE (an iPhone before ManagedMediaSource): srtp.
		{"no MSE", `delete window.MediaSource;`, "srtp", `/Media Source Extensions cannot/.test(w)`},
		// MSE plays H.264 but refuses this stream's codecs (here: its AAC;
		// in life an H.265 stream, a profile the decoder lacks): fmp4
		// fails to start and the player moves to srtp by itself.
		{"fmp4 fails to start", `{ const real = MediaSource.isTypeSupported.bind(MediaSource);
			MediaSource.isTypeSupported = (type) => !type.includes('mp4a') && real(type); }`,
			"srtp", `/fmp4 failed to start/.test(w) && /cannot play/.test(w)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := browsertest.New(t)
			if c.stub != "" {
				if err := browsertest.BeforeLoad(b, c.stub); err != nil {
					t.Fatal(err)
				}
			}
			if err := browsertest.Navigate(b, d.URL+"&stats=1"); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitFor(b, t, 30*time.Second, `document.body.dataset.stage === "playing" && (() => {
				const v = document.getElementById("video");
				return v.getVideoPlaybackQuality().totalVideoFrames > 10 && v.currentTime > 0.5;
			})()`)
			browsertest.WaitFor(b, t, 5*time.Second, `(() => { const p = window.ersPlayer, w = document.getElementById("stat-transport-why").textContent;
				return p.transport === "`+c.want+`" && p.transportChoice.auto && /chosen by the player/.test(w) && `+c.why+`; })()`)
			if c.want == "srtp" {
				if src, _ := browsertest.Eval[string](b, `document.getElementById("video").src`); src != "" {
					t.Errorf("srtp plays from src %q, want a MediaStream", src)
				}
			}
		})
	}

	// ?transport= still forces one, and the overlay says so.
	t.Run("forced", func(t *testing.T) {
		b := browsertest.New(t)
		if err := browsertest.Navigate(b, d.URL+"&stats=1&transport=srtp"); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitFor(b, t, 30*time.Second, `document.body.dataset.stage === "playing" && window.ersPlayer.transport === "srtp" &&
			!window.ersPlayer.transportChoice.auto && /forced/.test(document.getElementById("stat-transport-why").textContent)`)
	})
}
