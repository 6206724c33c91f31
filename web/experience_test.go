package web_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/access"
	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/web"
)

// This file tests what a viewer sees: the stages and how long each took,
// the stats overlay, the words for each failure, failover across bridges,
// and the module used from a page on another origin. The mesh, bridge and
// device are real (package demo).

// shownStats is the overlay's numbers as the page shows them, and the
// player's own.
type shownStats struct {
	Resolution, FPS, Bitrate, RTT, Loss, Path, Frames, Buffered, Transport string
	Raw                                                                    struct {
		Width, Height     int
		FPS, Bitrate      float64
		RTT, PacketLoss   *float64
		Buffered          *float64
		Candidate         string
		RemoteCandidate   string
		FramesDecoded     int
		Transport, Bridge string
	}
}

const readStats = `(async () => {
	const t = (id) => document.getElementById('stat-' + id).textContent;
	return {
		resolution: t('resolution'), fps: t('fps'), bitrate: t('bitrate'), rtt: t('rtt'), loss: t('loss'),
		path: t('path'), frames: t('frames'), buffered: t('buffered'), transport: t('transport'),
		raw: await ersPlayer.getStats(),
	};
})()`

// statsReady is true once the overlay shows a measured frame rate and path.
// The device sends its cached GOP at once, so the first second may show a
// burst of frames: the rate must settle.
const statsReady = `!document.getElementById('stats').hidden &&
	parseFloat(document.getElementById('stat-fps').textContent) > 5 &&
	parseFloat(document.getElementById('stat-fps').textContent) < 120 &&
	document.getElementById('stat-path').textContent.includes('↔') &&
	/\d/.test(document.getElementById('stat-rtt').textContent)`

func TestStatsOverlayAndTimings(t *testing.T) {
	base, room := startDemo(t, true, "")
	b := browsertest.New(t)
	for _, transport := range []string{"fmp4", "srtp"} {
		t.Run(transport, func(t *testing.T) {
			u := base + "/?" + url.Values{"room": {room}, "transport": {transport}}.Encode()
			if err := browsertest.Navigate(b, u); err != nil {
				t.Fatal(err)
			}
			// While connecting, the card lists the stages so far with their times.
			browsertest.WaitFor(b, t, 10*time.Second, `document.querySelectorAll('#timeline li').length >= 1 &&
				/\d+ (ms|s)/.test(document.querySelector('#timeline li').textContent)`)
			browsertest.WaitFor(b, t, 20*time.Second, playing)

			// Every stage passed on the way has a duration; the last is playing.
			tl, err := browsertest.Eval[[]struct {
				Stage string
				Start int
				MS    *int
			}](b, `ersPlayer.timeline`)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for i, e := range tl {
				names = append(names, e.Stage)
				if i < len(tl)-1 && (e.MS == nil || *e.MS < 0) {
					t.Errorf("stage %s has no duration: %+v", e.Stage, tl)
				}
				if i > 0 && e.Start < tl[i-1].Start {
					t.Errorf("stage %s starts before the one before it: %+v", e.Stage, tl)
				}
			}
			got := strings.Join(names, ",")
			if !strings.HasPrefix(got, "connecting,") || !strings.Contains(got, "negotiating,connected,playing") || !strings.HasSuffix(got, "playing") {
				t.Errorf("timeline %s, want connecting … negotiating,connected,playing", got)
			}

			// The overlay: off at first, on with the S key.
			if hidden, _ := browsertest.Eval[bool](b, `document.getElementById('stats').hidden`); !hidden {
				t.Error("the stats overlay is shown before it was asked for")
			}
			if _, err := browsertest.Eval[any](b, `document.dispatchEvent(new KeyboardEvent('keydown', {key: 's'}))`); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitFor(b, t, 10*time.Second, statsReady)
			s, err := browsertest.Eval[shownStats](b, readStats)
			if err != nil {
				t.Fatal(err)
			}
			if s.Resolution != "640×360" || s.Raw.Width != 640 || s.Raw.Height != 360 {
				t.Errorf("resolution shown %q, measured %dx%d; want the sample's 640×360", s.Resolution, s.Raw.Width, s.Raw.Height)
			}
			if s.Raw.FPS <= 5 || s.Raw.FPS > 120 {
				t.Errorf("frame rate %v (%q shown), want a sane rate", s.Raw.FPS, s.FPS)
			}
			if s.Raw.Bitrate <= 0 || !strings.Contains(s.Bitrate, "bit/s") {
				t.Errorf("bitrate %v (%q shown), want > 0", s.Raw.Bitrate, s.Bitrate)
			}
			if s.Raw.RTT == nil || *s.Raw.RTT < 0 || *s.Raw.RTT > 1000 {
				t.Errorf("round trip %v (%q shown), want a loopback's", s.Raw.RTT, s.RTT)
			}
			// Everything runs on this machine: the browser's side of the
			// path is a host candidate.
			if s.Raw.Candidate != "host" || !strings.HasPrefix(s.Path, "host ↔ ") {
				t.Errorf("candidate %q (%q shown), want host", s.Raw.Candidate, s.Path)
			}
			if s.Raw.FramesDecoded <= 0 {
				t.Errorf("frames decoded %d, want some", s.Raw.FramesDecoded)
			}
			switch transport {
			case "fmp4":
				if s.Raw.Buffered == nil || *s.Raw.Buffered < 0 || *s.Raw.Buffered > 5 {
					t.Errorf("buffered %v (%q shown), want the seconds ahead of playback", s.Raw.Buffered, s.Buffered)
				}
				if s.Raw.PacketLoss != nil || !strings.Contains(s.Loss, "reliable") {
					t.Errorf("packet loss %v (%q shown) on a reliable channel", s.Raw.PacketLoss, s.Loss)
				}
			case "srtp":
				if s.Raw.PacketLoss == nil || *s.Raw.PacketLoss < 0 || *s.Raw.PacketLoss > 5 || !strings.HasSuffix(s.Loss, "%") {
					t.Errorf("packet loss %v (%q shown), want a small percentage on loopback", s.Raw.PacketLoss, s.Loss)
				}
			}
			if !strings.HasPrefix(s.Transport, transport) {
				t.Errorf("transport shown %q, want %s", s.Transport, transport)
			}
			// An owned room's device is verified, and the badge says so.
			browsertest.WaitFor(b, t, 5*time.Second, `document.getElementById('badge').dataset.state === 'verified' &&
				!document.getElementById('badge').hidden && /Verified/.test(document.getElementById('badge').textContent)`)

			// The button turns it off again.
			if _, err := browsertest.Eval[any](b, `document.getElementById('stats-toggle').click()`); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitFor(b, t, 2*time.Second, `document.getElementById('stats').hidden &&
				document.getElementById('stats-toggle').getAttribute('aria-pressed') === 'false'`)
			if transport != "fmp4" {
				return
			}
			// A screenshot of the playing page with the overlay, for a look
			// (ERSMESH_SCREENSHOT=path keeps it).
			if _, err := browsertest.Eval[any](b, `document.getElementById('stats-toggle').click()`); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitFor(b, t, 5*time.Second, statsReady)
			shot := os.Getenv("ERSMESH_SCREENSHOT")
			if shot == "" {
				shot = t.TempDir() + "/playing.png"
			}
			if err := browsertest.Screenshot(b, shot); err != nil {
				t.Fatal(err)
			}
			png, err := os.ReadFile(shot)
			if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 10000 {
				t.Errorf("screenshot %s: %d bytes (%v), want a PNG of the picture", shot, len(png), err)
			}
		})
	}
}

// deadBridge returns the URL of a port nothing listens on.
func deadBridge(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestBridgeFailover(t *testing.T) {
	base, room := startDemo(t, false, "")
	dead := deadBridge(t)
	b := browsertest.New(t)

	// The first bridge is gone: the player says so and plays through the second.
	u := base + "/?" + url.Values{"room": {room}, "bridges": {dead + "," + base}}.Encode()
	if err := browsertest.Navigate(b, u); err != nil {
		t.Fatal(err)
	}
	if _, err := browsertest.Eval[any](b, `(() => { window.changes = [];
		ersPlayer.addEventListener('bridgeChanged', (e) => changes.push(e.detail)); })()`); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, playing)
	got, err := browsertest.Eval[struct {
		Bridge  string
		Bridges []string
		Log     string
	}](b, `({bridge: ersPlayer.bridge, bridges: ersPlayer.bridges,
		log: ersPlayer.timeline.map((e) => e.stage + ': ' + e.message).join('\n')})`)
	if err != nil {
		t.Fatal(err)
	}
	if got.Bridge != base || strings.Join(got.Bridges, ",") != dead+","+base {
		t.Errorf("playing through %s of %v, want %s", got.Bridge, got.Bridges, base)
	}
	if c := strings.Join(browsertest.Console(b), "\n"); !strings.Contains(c, "leaving bridge "+dead) {
		t.Errorf("console does not tell that %s was left:\n%s", dead, c)
	}

	// Both gone: the player says that no bridge answers, and backs off.
	u = base + "/?" + url.Values{"room": {room}, "bridges": {dead + "," + deadBridge(t)}}.Encode()
	if err := browsertest.Navigate(b, u); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 15*time.Second, `document.body.dataset.stage === 'error' &&
		document.body.dataset.reason === 'bridge-unreachable' &&
		/None of the 2 bridges can be reached/.test(document.getElementById('message').textContent) &&
		/retrying in \d+ s/.test(document.getElementById('message').textContent) &&
		/bridge cannot be reached/i.test(document.getElementById('stage').textContent)`)
}

// TestBridgeFailoverEmptyRoom: a bridge that answers but finds no device
// (its mesh lacks the room) is left after a few tries for one that does.
func TestBridgeFailoverEmptyRoom(t *testing.T) {
	base, room := startDemo(t, false, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	other, err := demo.Start(ctx, demo.Config{
		Addr: "127.0.0.1:0", Room: "elsewhere",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })

	b := browsertest.New(t)
	u := base + "/?" + url.Values{"room": {room}, "bridges": {other.Bridge + "," + base}}.Encode()
	if err := browsertest.Navigate(b, u); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 15*time.Second, `document.body.dataset.reason === 'no-device' &&
		/No device is serving room/.test(document.getElementById('message').textContent)`)
	browsertest.WaitFor(b, t, 40*time.Second, playing+` && ersPlayer.bridge === `+jsString(base))
}

// TestPlayerFromAnotherOrigin: a page on another web server imports the
// module from the bridge and plays.
func TestPlayerFromAnotherOrigin(t *testing.T) {
	base, room := startDemo(t, false, "")
	page := fmt.Sprintf(`<!doctype html><meta charset="utf-8"><title>my camera</title><link rel="icon" href="data:,">
<video id="v" autoplay muted playsinline></video>
<script type="module">
import { Player, REASONS } from %[1]q;
const video = document.getElementById('v');
window.events = [];
window.defaultBridge = new Player({ room: 'x', video }).bridge;
window.single = new Player({ bridge: %[2]q + '/some/path', room: 'x', video }).bridges;
const p = new Player({ bridges: [%[2]q], room: %[3]q, stream: 'sample', video });
for (const n of ['joinedRoom', 'createdPeer', 'checkingPeer', 'connectedPeer', 'playerstarted']) {
  p.addEventListener(n, () => events.push(n));
}
p.addEventListener('stage', (e) => { document.body.dataset.stage = e.detail.stage; });
window.ersPlayer = p;
p.start();
</script>`, base+"/ersmesh.js", base, room)
	var requests atomic.Int32
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	}))
	t.Cleanup(site.Close)

	b := browsertest.New(t)
	if err := browsertest.Navigate(b, site.URL+"/"); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, `document.body.dataset.stage === 'playing' &&
		document.getElementById('v').getVideoPlaybackQuality().totalVideoFrames > 10`)
	got, err := browsertest.Eval[struct {
		Origin, DefaultBridge string
		Events, Single        []string
		Width                 int
	}](b, `({origin: location.origin, defaultBridge, single, events, width: document.getElementById('v').videoWidth})`)
	if err != nil {
		t.Fatal(err)
	}
	if got.Origin == base || got.Origin != site.URL {
		t.Fatalf("page origin %s, bridge %s: want them apart", got.Origin, base)
	}
	// Without a bridge the module talks to the one it came from.
	if got.DefaultBridge != base {
		t.Errorf("default bridge %s, want the module's origin %s", got.DefaultBridge, base)
	}
	// The single bridge of older pages still works.
	if len(got.Single) != 1 || got.Single[0] != base {
		t.Errorf("bridge option %v, want [%s]", got.Single, base)
	}
	if e := strings.Join(got.Events, ","); e != "joinedRoom,createdPeer,checkingPeer,connectedPeer,playerstarted" {
		t.Errorf("events %s", e)
	}
	if got.Width != 640 {
		t.Errorf("video width %d, want 640", got.Width)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests to the page's server, want 1 (the page; the rest comes from the bridge)", n)
	}
}

// TestUnsupportedBrowser: a browser without H.264 in MSE (or in WebRTC) is
// told so before any connection is tried.
func TestUnsupportedBrowser(t *testing.T) {
	var sio atomic.Int32
	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.HandleFunc("/socket.io/", func(w http.ResponseWriter, r *http.Request) {
		sio.Add(1)
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	for _, c := range []struct {
		name, stub, query, want string
	}{
		{"no H.264 in MSE", `MediaSource.isTypeSupported = () => false;`, "&transport=fmp4", `/cannot play H\.264/.test(m) && /isTypeSupported/.test(m)`},
		{"no MSE", `delete window.MediaSource;`, "&transport=fmp4", `/no Media Source Extensions/.test(m) && /transport=srtp/.test(m)`},
		{"neither, chosen automatically", `delete window.MediaSource;
			RTCRtpReceiver.getCapabilities = () => ({codecs: [{mimeType: 'video/VP8'}], headerExtensions: []});`,
			"", `/no Media Source Extensions/.test(m) && /cannot decode H\.264/.test(m)`},
		{"no H.264 in WebRTC", `RTCRtpReceiver.getCapabilities = () => ({codecs: [{mimeType: 'video/VP8'}], headerExtensions: []});`,
			"&transport=srtp", `/cannot decode H\.264/.test(m) && /getCapabilities/.test(m)`},
		{"WHEP without H.264 in WebRTC", `RTCRtpReceiver.getCapabilities = () => ({codecs: [{mimeType: 'video/VP8'}], headerExtensions: []});`,
			"&protocol=whep", `/cannot decode H\.264/.test(m)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := browsertest.New(t)
			if err := browsertest.BeforeLoad(b, c.stub); err != nil {
				t.Fatal(err)
			}
			if err := browsertest.Navigate(b, srv.URL+"/?room=frontdoor"+c.query); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitFor(b, t, 5*time.Second, `(() => { const m = document.getElementById('message').textContent;
				return document.body.dataset.stage === 'error' && document.body.dataset.reason === 'unsupported' &&
					/cannot play the stream/.test(document.getElementById('stage').textContent) && `+c.want+` })()`)
		})
	}
	if n := sio.Load(); n != 0 {
		t.Errorf("%d Socket.IO requests from a browser that cannot play", n)
	}
}

// TestDeviceUnreachable: a room whose device is published but gone is
// told apart from an empty room.
func TestDeviceUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Config{
		Addr: "127.0.0.1:0", Room: "cam",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	// The device stops serving; its record stays in the DHT until it expires.
	if err := d.Device().Close(); err != nil {
		t.Fatal(err)
	}
	b := browsertest.New(t)
	if err := browsertest.Navigate(b, d.Bridge+"/?room=cam"); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 30*time.Second, `document.body.dataset.stage === 'waiting' &&
		document.body.dataset.reason === 'device-unreachable' &&
		/cannot be reached right now/.test(document.getElementById('message').textContent) &&
		/device cannot be reached/i.test(document.getElementById('stage').textContent)`)
}

func jsString(s string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q", s)
	return b.String()
}

// forceRelay makes every RTCPeerConnection of the page relay-only, through
// the TURN servers whose URLs match only (a regexp source).
func forceRelay(only string) string {
	return `(() => {
	const Base = RTCPeerConnection;
	const only = new RegExp(` + jsString(only) + `);
	window.RTCPeerConnection = class extends Base {
		constructor(conf = {}) {
			const iceServers = (conf.iceServers ?? [])
				.map((s) => ({ ...s, urls: [].concat(s.urls).filter((u) => /^turns?:/.test(u) && only.test(u)) }))
				.filter((s) => s.urls.length > 0);
			super({ ...conf, iceServers, iceTransportPolicy: 'relay' });
		}
	};
})()`
}

// TestStatsThroughTURN: the overlay names the relay and the protocol the
// browser speaks to the TURN server.
func TestStatsThroughTURN(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Config{
		Addr: "127.0.0.1:0", Room: "cam", TURN: true,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			b := browsertest.New(t)
			if err := browsertest.BeforeLoad(b, forceRelay(`transport=`+proto)); err != nil {
				t.Fatal(err)
			}
			if err := browsertest.Navigate(b, d.Bridge+"/?room=cam&stats=1"); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitFor(b, t, 25*time.Second, playing)
			browsertest.WaitFor(b, t, 10*time.Second, statsReady)
			s, err := browsertest.Eval[shownStats](b, readStats)
			if err != nil {
				t.Fatal(err)
			}
			if want := "relay " + proto; s.Raw.Candidate != want || !strings.HasPrefix(s.Path, want+" ↔ ") {
				t.Errorf("candidate %q (%q shown), want %s", s.Raw.Candidate, s.Path, want)
			}
		})
	}
}

// TestBridgeFailoverOnRefusal: a bridge that wants a token this viewer
// lacks is left for one that does not; alone, its refusal stands and says
// what to do.
func TestBridgeFailoverOnRefusal(t *testing.T) {
	base, room := startDemo(t, false, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	strict, err := demo.Start(ctx, demo.Config{
		Addr: "127.0.0.1:0", Room: room,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		TuneBridge: func(c *bridge.Config) { c.Access = access.NewStore(true) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { strict.Close() })

	b := browsertest.New(t)
	u := base + "/?" + url.Values{"room": {room}, "bridges": {strict.Bridge + "," + base}}.Encode()
	if err := browsertest.Navigate(b, u); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, playing+` && ersPlayer.bridge === `+jsString(base))

	u = base + "/?" + url.Values{"room": {room}, "bridge": {strict.Bridge}}.Encode()
	if err := browsertest.Navigate(b, u); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 10*time.Second, `document.body.dataset.stage === 'error' && document.body.dataset.reason === 'token' &&
		/requires a token/.test(document.getElementById('message').textContent) &&
		/add \?token=/.test(document.getElementById('message').textContent)`)
}
