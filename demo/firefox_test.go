package demo

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/firefoxtest"
	"github.com/ersmesh/ersmesh/internal/testutil"
)

// TestFirefoxPlaysDemo is the whole flow in Gecko: Firefox ESR opens the
// bridge's player page and plays fmp4 (H.264 and AAC through Media Source
// Extensions, which Firefox decodes with the system's codecs) from a real
// device through a real bridge.
func TestFirefoxPlaysDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := startTest(t, ctx, Config{Logger: testutil.Logger(t)})
	ff := firefoxtest.New(t, nil)
	// No ?transport=: the player chooses fmp4 by itself, since Firefox's
	// WebRTC here cannot decode H.264 (below).
	if err := ff.Navigate(ctx, d.URL); err != nil {
		t.Fatal(err)
	}
	ff.WaitFor(t, 25*time.Second, `document.body && document.body.dataset.stage === "playing"`)
	ff.WaitFor(t, 20*time.Second, `(() => {
		const v = document.getElementById("video");
		return v.getVideoPlaybackQuality().totalVideoFrames > 30 && v.currentTime > 1;
	})()`)
	var choice struct {
		Transport, Reason string
		Auto              bool
	}
	if err := ff.Eval(ctx, `window.ersPlayer.transportChoice`, &choice); err != nil {
		t.Fatal(err)
	}
	if choice.Transport != "fmp4" || !choice.Auto || !strings.Contains(choice.Reason, "WebRTC cannot") {
		t.Errorf("transport choice %+v, want fmp4 chosen because WebRTC cannot decode H.264", choice)
	}
	// Firefox's transport stats count no bytes: the player's stall watch must
	// count its bytes from candidate pairs, not see a silent transport.
	for _, l := range ff.Console() {
		if strings.Contains(l, "interrupted") {
			t.Errorf("the player saw a stall while playing: %s", l)
		}
	}
	var src string
	if err := ff.Eval(ctx, `document.getElementById("video").src`, &src); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(src, "blob:") {
		t.Errorf("fmp4 video plays from %q, want a MediaSource blob URL", src)
	}
	var w float64
	if err := ff.Eval(ctx, `document.getElementById("video").videoWidth`, &w); err != nil {
		t.Fatal(err)
	}
	if w != 640 {
		t.Errorf("video width %v, want the sample's 640", w)
	}

	// Firefox's WebRTC decodes H.264 only with the OpenH264 plugin, which
	// Firefox downloads itself and which these machines cannot fetch: its
	// receiver capabilities list no H.264, and srtp, when forced, says so
	// and names fmp4.
	if err := ff.Navigate(ctx, d.URL+"&transport=srtp"); err != nil {
		t.Fatal(err)
	}
	ff.WaitFor(t, 10*time.Second, `document.body.dataset.stage === "error" &&
		document.getElementById("message").textContent.includes("H.264") &&
		document.getElementById("message").textContent.includes("fmp4")`)
}
