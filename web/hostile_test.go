package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/web"
)

// Hostile-bridge tests of issue 13 (holes 3, 7, 8, 12) on the player's
// side, in Chromium: each bridge here relays a real device but rewrites
// what passes, as a stranger's bridge could.

const refusedUntrusted = `document.body.dataset.stage === 'error' && document.body.dataset.reason === 'untrusted'`

// startTwoStreams runs the demo with an owned room whose device serves two
// streams, "sample" and "other".
func startTwoStreams(t *testing.T) (base, room string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Config{
		Addr: "127.0.0.1:0", Room: "cam",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		TuneDevice: func(c *node.Config) {
			room = "cam@" + c.Mesh.ID().String()
			c.Rooms = []string{room}
			other, err := media.NewSampleStream("other", nil)
			if err != nil {
				t.Error(err)
				return
			}
			c.Streams["other"] = other
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	u, _ := url.Parse(d.URL)
	return "http://" + u.Host, room
}

// TestBridgeSwapsStream is hole 12: the bridge joins the device for
// another stream than the page asked for. The offer is the device's, and
// signed, but for that other stream: the player must refuse it.
func TestBridgeSwapsStream(t *testing.T) {
	base, room := startTwoStreams(t)
	swap := func(name string, args []json.RawMessage) []json.RawMessage {
		if name != "join" || len(args) < 2 {
			return args
		}
		var opts map[string]any
		if json.Unmarshal(args[1], &opts) == nil {
			opts["streamName"] = "other"
			args[1], _ = json.Marshal(opts)
		}
		return args
	}
	b := browsertest.New(t)
	// The honest relay plays "sample", verified.
	honest := newMITM(t, base, nil)
	if err := browsertest.Navigate(b, playerURL(honest.ts.URL, room, "&stream=sample")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 25*time.Second, playing)
	for _, transport := range []string{"srtp", "fmp4"} {
		hostile := newMITMUp(t, base, nil, swap)
		u := hostile.ts.URL + "/?" + url.Values{"room": {room}, "stream": {"sample"}, "transport": {transport}}.Encode()
		if err := browsertest.Navigate(b, u); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitFor(b, t, 25*time.Second, refusedUntrusted+` && /signature/.test(document.getElementById('message').textContent)`)
		if frames, _ := browsertest.Eval[float64](b, `document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames`); frames > 0 {
			t.Errorf("%s: %v frames of the swapped stream shown", transport, frames)
		}
	}
}

// TestStrippedSignaturePinned is hole 7: a browser that saw a device sign
// its offers for an open room treats an unsigned offer from it (a bridge
// stripped the signature) as a changed device.
func TestStrippedSignaturePinned(t *testing.T) {
	base, room := startDemo(t, false, "")
	var strip atomic.Bool
	// One relay (one page origin, so one store of pins), honest at first.
	m := newMITM(t, base, func(msg map[string]any) {
		if strip.Load() && msg["type"] == "offer" {
			delete(msg["payload"].(map[string]any), "signature")
		}
	})
	b := browsertest.New(t)
	if err := browsertest.Navigate(b, playerURL(m.ts.URL, room, "")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 25*time.Second, playing)
	browsertest.WaitFor(b, t, 5*time.Second, `document.getElementById('trust').dataset.state === 'pinned'`)
	strip.Store(true)
	if err := browsertest.Navigate(b, playerURL(m.ts.URL, room, "")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 25*time.Second, `document.getElementById('trust').dataset.state === 'changed' && /not signed/.test(document.getElementById('trust').textContent)`)
}

// TestChallengeFromStranger is hole 3 (the player's half): a challenge
// that does not come from the device the join reached is not answered, so
// no stranger gets a proof to guess the secret against offline.
func TestChallengeFromStranger(t *testing.T) {
	base, room := startDemo(t, true, "hunter2")
	const stranger = "12D3KooWStrangerStrangerStrangerStrangerStrangerX"
	var mu sync.Mutex
	var proofsTo []string
	m := newMITMUp(t, base, func(msg map[string]any) {
		if msg["type"] == "challenge" {
			msg["from"] = stranger
		}
	}, func(name string, args []json.RawMessage) []json.RawMessage {
		var msg struct{ To, Type string }
		if name == "message" && len(args) == 1 && json.Unmarshal(args[0], &msg) == nil && msg.Type == "auth" {
			mu.Lock()
			proofsTo = append(proofsTo, msg.To)
			mu.Unlock()
		}
		return args
	})
	b := browsertest.New(t)
	// The query, which the old player read too (the new one moves it to the
	// fragment).
	if err := browsertest.Navigate(b, playerURL(m.ts.URL, room, "&secret=hunter2")); err != nil {
		t.Fatal(err)
	}
	// The device waits for a proof that never comes, and says so.
	browsertest.WaitFor(b, t, 30*time.Second, `document.body.dataset.stage === 'error' || document.body.dataset.stage === 'waiting'`)
	mu.Lock()
	defer mu.Unlock()
	if len(proofsTo) > 0 {
		t.Errorf("the player sent proofs of the room secret to %v, not to the device joined", proofsTo)
	}
}

// whepProxy is a hostile WHEP bridge in front of a real one: rewrite may
// change each request and each response.
func whepProxy(t *testing.T, upstream string, req func(*http.Request), resp func(*http.Response)) string {
	t.Helper()
	u, _ := url.Parse(upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	director := rp.Director
	rp.Director = func(r *http.Request) {
		director(r)
		if req != nil {
			req(r)
		}
	}
	rp.ModifyResponse = func(r *http.Response) error {
		if resp != nil {
			resp(r)
		}
		return nil
	}
	rp.ErrorLog = nil
	mux := http.NewServeMux()
	mux.Handle("/whep/", rp)
	mux.Handle("/", web.Handler())
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts.URL
}

// TestWHEPAnswerSigned is hole 8: over WHEP, an owned room plays verified
// through an honest bridge, and is refused when the bridge drops the
// device's signature, forges one, or plays another stream.
func TestWHEPAnswerSigned(t *testing.T) {
	base, room := startTwoStreams(t)
	whepURL := func(origin string) string {
		return origin + "/?" + url.Values{"room": {room}, "stream": {"sample"}, "protocol": {"whep"}}.Encode()
	}
	b := browsertest.New(t)
	if err := browsertest.Navigate(b, whepURL(whepProxy(t, base, nil, nil))); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 25*time.Second, playing)
	browsertest.WaitFor(b, t, 5*time.Second, `document.getElementById('trust').dataset.state === 'verified'`)

	for name, p := range map[string]struct {
		req  func(*http.Request)
		resp func(*http.Response)
	}{
		"signature dropped": {resp: func(r *http.Response) { r.Header.Del("Ersmesh-Signature") }},
		"signature forged": {resp: func(r *http.Response) {
			if s := r.Header.Get("Ersmesh-Signature"); s != "" {
				r.Header.Set("Ersmesh-Signature", "A"+s[1:])
			}
		}},
		"another stream": {req: func(r *http.Request) {
			r.URL.Path = strings.Replace(r.URL.Path, "/sample", "/other", 1)
			r.URL.RawPath = ""
		}},
		"answer altered": {resp: func(r *http.Response) {
			if r.StatusCode != http.StatusCreated {
				return
			}
			body, _ := io.ReadAll(r.Body)
			body = []byte(strings.Replace(string(body), "a=sendonly", "a=sendonly\r\na=tool:hostile", 1))
			r.Body = io.NopCloser(strings.NewReader(string(body)))
			r.ContentLength = int64(len(body))
			r.Header.Del("Content-Length")
		}},
	} {
		if err := browsertest.Navigate(b, whepURL(whepProxy(t, base, p.req, p.resp))); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitFor(b, t, 25*time.Second, refusedUntrusted)
		if frames, _ := browsertest.Eval[float64](b, `document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames`); frames > 0 {
			t.Errorf("%s: %v frames shown", name, frames)
		}
	}
}

// TestSecretStaysInFragment is hole 2's secret: the player hosted apart
// from the bridge (here, a server of the viewer's choosing that serves
// only the player) reads the room secret from the URL fragment, which the
// browser sends to no server; the page says whom it trusts.
func TestSecretStaysInFragment(t *testing.T) {
	bridge, room := startDemo(t, true, "hunter2")
	var mu sync.Mutex
	var seen []string
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.String())
		mu.Unlock()
		web.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(host.Close)
	b := browsertest.New(t)
	u := host.URL + "/?" + url.Values{"room": {room}, "transport": {"srtp"}, "bridge": {bridge}}.Encode() + "#secret=hunter2"
	if err := browsertest.Navigate(b, u); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 25*time.Second, playing+` && document.getElementById('trust').dataset.state === 'verified'`)
	browsertest.WaitFor(b, t, 5*time.Second, `document.getElementById('origin').dataset.trusts === 'host'`)
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if strings.Contains(s, "hunter2") {
			t.Errorf("the secret reached the page's server: %s", s)
		}
	}
}

// TestPlayerModulesPinned is hole 2's pinning: the page carries the
// Subresource Integrity of its modules, so a copy of it loads no module
// that a server (a bridge, a CDN) altered; here trust.js altered to accept
// any signature.
func TestPlayerModulesPinned(t *testing.T) {
	serve := func(tamper bool) string {
		files := web.Handler()
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tamper && r.URL.Path == "/trust.js" {
				b, _ := fs.ReadFile(web.FS(), "trust.js")
				w.Header().Set("Content-Type", "text/javascript")
				io.WriteString(w, strings.Replace(string(b), "return s.verify(", "return true || s.verify(", 1))
				return
			}
			files.ServeHTTP(w, r)
		}))
		t.Cleanup(ts.Close)
		return ts.URL + "/?room=cam@12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	}
	b := browsertest.New(t)
	if err := browsertest.Navigate(b, serve(false)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 10*time.Second, `window.ersPlayer !== undefined`)
	if err := browsertest.Navigate(b, serve(true)); err != nil {
		t.Fatal(err)
	}
	// Module scripts run before the document completes: once it has, the
	// page has run or its module graph has failed.
	browsertest.WaitFor(b, t, 10*time.Second, `document.readyState === 'complete' && performance.getEntriesByType('resource').some((e) => e.name.endsWith('/trust.js'))`)
	if ok, _ := browsertest.Eval[bool](b, `window.ersPlayer !== undefined`); ok {
		t.Error("the page ran with an altered trust.js")
	}
}

// TestWHEPSecretNeverReachesBridge: the WHEP player watches a room with a
// secret through a bridge that records every request, headers and bodies;
// it proves the secret (Ersmesh-Secret-Proof) without the secret itself
// passing, and a wrong secret is refused as such.
func TestWHEPSecretNeverReachesBridge(t *testing.T) {
	const secret = "hunter2-for-the-whep-player"
	base, room := startDemo(t, true, secret)
	target, _ := url.Parse(base)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var seen []string
	proofs := 0
	bridge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s %v %s", r.Method, r.URL, r.Header, body))
		if r.Header.Get("Ersmesh-Secret-Proof") != "" {
			proofs++
		}
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(bridge.Close)
	host := httptest.NewServer(web.Handler()) // the player, hosted apart
	t.Cleanup(host.Close)
	page := func(s string) string {
		return host.URL + "/?" + url.Values{"room": {room}, "protocol": {"whep"}, "bridge": {bridge.URL}}.Encode() + "#" + url.Values{"secret": {s}}.Encode()
	}
	b := browsertest.New(t)
	if err := browsertest.Navigate(b, page(secret)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 25*time.Second, playing+` && document.getElementById('trust').dataset.state === 'verified'`)
	if err := browsertest.Navigate(b, page("not-the-secret")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 25*time.Second, `document.body.dataset.stage === 'error' && document.body.dataset.reason === 'secret-wrong'`)
	mu.Lock()
	defer mu.Unlock()
	if proofs < 2 {
		t.Errorf("%d POSTs carried a proof, want the right one and the wrong one", proofs)
	}
	for _, s := range seen {
		if strings.Contains(s, "hunter2") {
			t.Errorf("the secret reached the bridge: %s", s)
		}
	}
}
