package demo

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/internal/testutil"
)

// TestBrowserHearsOpusOverFMP4: a camera with Opus audio (here an H.264
// Annex-B file and an Ogg Opus file, made by ffmpeg) reaches an fmp4
// viewer with its sound: Chromium's MSE decodes the "Opus" sample entry
// (dOps) the device muxes, and its decoded audio bytes keep growing.
func TestBrowserHearsOpusOverFMP4(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := playOpusCamera(t, ctx, "fmp4")
	first, err := browsertest.Eval[float64](b, `document.getElementById("video").webkitAudioDecodedByteCount`)
	if err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 10*time.Second, `document.getElementById("video").webkitAudioDecodedByteCount > `+strconv.Itoa(int(first)+1000))
	// No "video only" note: the audio came along.
	if note, _ := browsertest.Eval[string](b, `document.getElementById("message").textContent`); note != "" {
		t.Errorf("message %q while playing Opus over fmp4, want none", note)
	}
	found := false
	for _, l := range browsertest.Console(b) {
		if strings.Contains(l, "fmp4: playing") && strings.Contains(l, `,opus"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("the player did not open MSE with Opus:\n%s", browsertest.Describe(b))
	}
}

// opusCamera makes a camera with Opus audio for the demo's source: an
// H.264 Annex-B file and an Ogg Opus file, made by ffmpeg.
func opusCamera(t *testing.T) string {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no ffmpeg (CI=true, so this is an error): %v", err)
		}
		t.Skipf("no ffmpeg: %v", err)
	}
	dir := t.TempDir()
	video, audio := filepath.Join(dir, "v.h264"), filepath.Join(dir, "a.ogg")
	for _, args := range [][]string{
		{"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "4", "-c:v", "libx264", "-profile:v", "baseline",
			"-g", "25", "-pix_fmt", "yuv420p", "-bsf:v", "h264_mp4toannexb", "-f", "h264", video},
		{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4", "-ac", "2", "-c:a", "libopus", "-b:a", "64k", audio},
	} {
		cmd := exec.Command(ffmpeg, append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	return video + ",audio=" + audio + ",fps=25"
}

// playOpusCamera starts the demo with opusCamera's source and a browser
// that plays it with transport, and returns the browser once video plays.
func playOpusCamera(t *testing.T, ctx context.Context, transport string) context.Context {
	t.Helper()
	d := startTest(t, ctx, Config{Logger: testutil.Logger(t), Source: opusCamera(t)})
	b := browsertest.New(t)
	if err := browsertest.Navigate(b, d.URL+"&transport="+transport); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, `document.body.dataset.stage === "playing" && (() => {
		const v = document.getElementById("video");
		return v.getVideoPlaybackQuality().totalVideoFrames > 10 && v.currentTime > 0.5;
	})()`)
	return b
}

// TestBrowserHearsOpusOverSRTP: the same camera's Opus reaches an srtp
// viewer on its WebRTC audio track, its packets riding in the video
// frames' batches, and Chromium gets sender reports for both tracks (its
// remote-outbound-rtp statistics exist only from them; its lip sync rests
// on them) and plays the audio without concealing much of it.
func TestBrowserHearsOpusOverSRTP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := playOpusCamera(t, ctx, "srtp")
	// Sender reports come once a second per track: wait for two of each,
	// and two seconds of audio.
	const stats = `(async () => {
		const r = {};
		(await ersPlayer.peerConnection.getStats()).forEach((s) => {
			if (s.type === "inbound-rtp") r[s.kind] = {packets: s.packetsReceived, samples: s.totalSamplesReceived || 0, concealed: s.concealedSamples || 0};
			if (s.type === "remote-outbound-rtp") r[s.kind + "Reports"] = s.reportsSent;
		});
		return JSON.stringify(r);
	})()`
	browsertest.WaitFor(b, t, 20*time.Second, `(async () => {
		const r = JSON.parse(await `+stats+`);
		return r.audio && r.audio.samples > 96000 && r.audioReports >= 2 && r.videoReports >= 2;
	})()`)
	got, err := browsertest.Eval[string](b, stats)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Chromium's receiver: %s", got)
	var r struct {
		Audio struct{ Packets, Samples, Concealed float64 }
	}
	if err := json.Unmarshal([]byte(got), &r); err != nil {
		t.Fatal(err)
	}
	// Audio that came too late or not at all is concealed: a healthy
	// loopback stream's start-up conceals a few percent (0.4–8.5 % in
	// runs on a loaded machine, the same before audio waited for the
	// video frames); a third is audio that does not flow.
	if r.Audio.Concealed > r.Audio.Samples/3 {
		t.Errorf("Chromium concealed %.0f of %.0f audio samples", r.Audio.Concealed, r.Audio.Samples)
	}
}
