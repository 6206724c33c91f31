package demo

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/internal/testutil"
)

// TestBrowserPlaysWHEP is the player with ?protocol=whep: no Socket.IO, a
// fetch() POST of Chromium's offer to the bridge, the device's answer, the
// candidates trickled with PATCH, and video decoded.
func TestBrowserPlaysWHEP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startTest(t, ctx, Config{Logger: testutil.Logger(t)})
	b := browsertest.New(t)
	if err := browsertest.Navigate(b, d.URL+"&protocol=whep"); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, `document.body && document.body.dataset.stage === "playing"`)
	browsertest.WaitFor(b, t, 20*time.Second, `(() => {
		const v = document.getElementById("video");
		return v.getVideoPlaybackQuality().totalVideoFrames > 30 && v.currentTime > 1 && v.videoWidth === 640;
	})()`)
	// The stage timeline of PlayerBase: the way to playing, each finished
	// stage with its duration.
	stages, err := browsertest.Eval[string](b, `window.ersPlayer.timeline
		.map((e) => e.stage + (e.ms === null ? '' : typeof e.ms === 'number' && e.ms >= 0 ? ':ok' : ':bad')).join(' ')`)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^connecting:ok negotiating:ok (connected:ok )?playing$`).MatchString(stages) {
		t.Errorf("WHEP player's timeline %q, want connecting, negotiating, (connected,) playing", stages)
	}
	vs := d.Device().Viewers()
	if len(vs) != 1 || !vs[0].Answering {
		t.Fatalf("device viewers %+v, want one WHEP (answering) session", vs)
	}
	// The player trickled its candidates: Chromium's offer had none.
	if vs[0].RemoteCandidates == 0 {
		t.Errorf("no trickled candidate reached the device: %+v", vs[0])
	}
	// Closing the player DELETEs the session, which frees the device's.
	if _, err := browsertest.Eval[bool](b, `(window.ersPlayer.close(), true)`); err != nil {
		t.Fatal(err)
	}
	waitViewers(t, d, 0)
}

// whepPage is a WHEP client in a dozen lines of JavaScript, served from
// another origin than the bridge, so the browser checks the bridge's CORS
// answers (the preflight of a POST with Authorization and application/sdp,
// and of DELETE). It does not trickle: it waits for its ICE gathering, as
// simple WHEP clients do.
const whepPage = `<!doctype html>
<meta charset="utf-8">
<video id="v" autoplay muted playsinline></video>
<script>
window.whep = async (endpoint) => {
  const pc = new RTCPeerConnection();
  window.pc = pc;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.ontrack = (e) => { v.srcObject = e.streams[0] ?? new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === 'complete') return done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && done();
  });
  const r = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', 'Authorization': 'Bearer any-token' },
    body: pc.localDescription.sdp,
  });
  if (r.status !== 201) throw new Error('POST ' + r.status + ': ' + await r.text());
  window.session = new URL(r.headers.get('Location'), endpoint).href;
  window.links = r.headers.get('Link');
  await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
  return window.session;
};
</script>`

func TestBrowserFetchWHEPFromAnotherSite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := Start(ctx, Config{Addr: "127.0.0.1:0", Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, whepPage)
	}))
	defer site.Close()

	b := browsertest.New(t)
	if err := browsertest.Navigate(b, site.URL); err != nil {
		t.Fatal(err)
	}
	session, err := browsertest.Eval[string](b, `whep(`+jsString(d.Bridge+"/whep/demo/sample")+`)`)
	if err != nil {
		t.Fatalf("%v\n%s", err, browsertest.Describe(b))
	}
	t.Logf("WHEP session %s", session)
	browsertest.WaitFor(b, t, 20*time.Second, `(() => {
		const v = document.getElementById("v");
		return v.getVideoPlaybackQuality().totalVideoFrames > 30 && v.currentTime > 1;
	})()`)
	if n := len(d.Device().Viewers()); n != 1 {
		t.Fatalf("device has %d viewers, want 1", n)
	}
	status, err := browsertest.Eval[int](b, `fetch(window.session, { method: 'DELETE' }).then((r) => r.status)`)
	if err != nil || status != http.StatusOK {
		t.Fatalf("DELETE from the page: %d %v", status, err)
	}
	waitViewers(t, d, 0)
}

func waitViewers(t *testing.T, d *Demo, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(d.Device().Viewers()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("device has viewers %+v, want %d", d.Device().Viewers(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gstPython is Debian's Python, which has the GStreamer bindings (another
// python3 on PATH, such as a pyenv one, may not).
const gstPython = "/usr/bin/python3"

// needGStreamer skips the test when GStreamer's WebRTC pieces are missing,
// unless CI=true: .ci/run installs them, so there it is a failure.
func needGStreamer(t *testing.T) {
	t.Helper()
	checks := [][]string{
		{gstPython, "-c", `import gi; gi.require_version("GstWebRTC", "1.0"); gi.require_version("GstSdp", "1.0"); from gi.repository import GstWebRTC, GstSdp`},
		// gst-inspect also builds GStreamer's plugin registry, which the
		// first run of a pipeline would otherwise do under the test's clock.
		{"gst-inspect-1.0", "webrtcbin"},
		{"gst-inspect-1.0", "nicesrc"},
		{"gst-inspect-1.0", "openh264dec"},
		{"gst-inspect-1.0", "rtph264depay"},
	}
	for _, c := range checks {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			msg := fmt.Sprintf("GStreamer WebRTC is not installed (%s: %v %s); apt-get install gstreamer1.0-plugins-bad gstreamer1.0-plugins-good gstreamer1.0-nice gstreamer1.0-tools python3-gst-1.0 gir1.2-gst-plugins-bad-1.0",
				strings.Join(c, " "), err, strings.TrimSpace(string(out)))
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skipf("skipping outside CI (CI=true makes it a failure): %s", msg)
		}
	}
}

// TestGStreamerWHEP plays the demo's stream with GStreamer: webrtcbin (ICE
// by libnice, GStreamer's DTLS and SRTP) behind a few lines of WHEP in
// testdata/whep_gst.py, decoding H.264 frames with openh264. GStreamer's
// whepsrc itself is in gst-plugins-rs, which Debian 12 does not package.
func TestGStreamerWHEP(t *testing.T) {
	needGStreamer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := Start(ctx, Config{Addr: "127.0.0.1:0", Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out, err := exec.CommandContext(ctx, gstPython, "testdata/whep_gst.py", d.Bridge+"/whep/demo/sample", "30", "some-token").CombinedOutput()
	// The client prints how many frames it decoded: at least the 30 asked
	// for (more may arrive before it stops counting).
	var frames int
	if m := regexp.MustCompile(`frames (\d+)`).FindSubmatch(out); m != nil {
		frames, _ = strconv.Atoi(string(m[1]))
	}
	if err != nil || frames < 30 {
		t.Fatalf("GStreamer WHEP client: %v, %d frames\n%s", err, frames, out)
	}
	// The client DELETEd its session on the way out.
	waitViewers(t, d, 0)
}
