package web_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/bridge/socketio"
	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/internal/sioclient"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/web"
)

// mitm is a hostile bridge: it serves the player page and speaks ERS to
// the browser like any bridge, but relays through a real bridge and may
// rewrite what the device sends. It is what a stranger's bridge could do.
type mitm struct {
	upstream string
	// tamper rewrites a device message (decoded) before the browser sees
	// it; nil relays honestly.
	tamper func(msg map[string]any)
	// up, when set, sees (and may rewrite) each event the browser sends
	// before it goes to the real bridge.
	up  func(name string, args []json.RawMessage) []json.RawMessage
	srv *socketio.Server
	ts  *httptest.Server

	mu    sync.Mutex
	conns map[string]*sioclient.Client
	wg    sync.WaitGroup
}

func newMITM(t *testing.T, upstream string, tamper func(map[string]any)) *mitm {
	return newMITMUp(t, upstream, tamper, nil)
}

// newMITMUp is newMITM with a rewriter of what the browser sends, too.
func newMITMUp(t *testing.T, upstream string, tamper func(map[string]any), up func(string, []json.RawMessage) []json.RawMessage) *mitm {
	m := &mitm{upstream: upstream, tamper: tamper, up: up, conns: map[string]*sioclient.Client{}}
	m.srv = socketio.NewServer(socketio.Config{}, m)
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", m.srv)
	mux.Handle("/", web.Handler())
	m.ts = httptest.NewServer(mux)
	t.Cleanup(func() {
		m.srv.Close()
		m.ts.Close()
		m.mu.Lock()
		for _, c := range m.conns {
			c.Close()
		}
		m.mu.Unlock()
		m.wg.Wait()
	})
	return m
}

func (m *mitm) Connect(s *socketio.Socket) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	up, err := sioclient.Dial(ctx, m.upstream, nil)
	if err != nil {
		s.Close()
		return
	}
	m.mu.Lock()
	m.conns[s.ID()] = up
	m.mu.Unlock()
	m.wg.Go(func() {
		for {
			p, err := up.Next(context.Background())
			if err != nil {
				return
			}
			e, err := sioclient.DecodeEvent(p)
			if err != nil {
				continue
			}
			args := make([]any, len(e.Args))
			for i, a := range e.Args {
				args[i] = a
			}
			if e.Name == "message" && m.tamper != nil && len(e.Args) == 1 {
				var msg map[string]any
				if json.Unmarshal(e.Args[0], &msg) == nil {
					m.tamper(msg)
					args[0] = msg
				}
			}
			s.Emit(e.Name, args...)
		}
	})
}

func (m *mitm) Event(s *socketio.Socket, name string, args []json.RawMessage, ack socketio.AckFunc) error {
	m.mu.Lock()
	up := m.conns[s.ID()]
	m.mu.Unlock()
	if up == nil {
		return nil
	}
	if m.up != nil {
		args = m.up(name, args)
	}
	a := make([]any, len(args))
	for i := range args {
		a[i] = args[i]
	}
	if ack == nil {
		return up.Emit(context.Background(), name, a...)
	}
	m.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := up.EmitAck(ctx, name, a...)
		if err != nil {
			return
		}
		r := make([]any, len(res))
		for i := range res {
			r[i] = res[i]
		}
		ack(r...)
	})
	return nil
}

func (m *mitm) Disconnect(s *socketio.Socket, _ error) {
	m.mu.Lock()
	up := m.conns[s.ID()]
	delete(m.conns, s.ID())
	m.mu.Unlock()
	if up != nil {
		up.Close()
	}
}

// startDemo runs bootstrap, bridge and device; owned makes the device's
// room "cam@<its peer ID>". It returns the bridge's origin and the room.
func startDemo(t *testing.T, owned bool, secret string) (base, room string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	room = "cam"
	d, err := demo.Start(ctx, demo.Config{
		Addr: "127.0.0.1:0", Room: room,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		TuneDevice: func(c *node.Config) {
			if owned {
				room = "cam@" + c.Mesh.ID().String()
				c.Rooms = []string{room}
			}
			if secret != "" {
				c.Secrets = map[string]string{room: secret}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	u, _ := url.Parse(d.URL)
	return "http://" + u.Host, room
}

func playerURL(base, room, extra string) string {
	return base + "/?" + url.Values{"room": {room}, "transport": {"srtp"}}.Encode() + extra
}

const playing = `document.body.dataset.stage === 'playing' && document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > 10`

var fingerprintRE = regexp.MustCompile(`(a=fingerprint:sha-256 )([0-9A-F]{2})`)

// TestTamperingBridge: a bridge that alters the device's offer or replays an
// old one is refused by the player, which says why; the same device through
// an honest relay plays.
func TestTamperingBridge(t *testing.T) {
	base, room := startDemo(t, true, "")

	honest := newMITM(t, base, nil)
	b := browsertest.New(t)
	if err := browsertest.Navigate(b, playerURL(honest.ts.URL, room, "")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, playing)
	browsertest.WaitFor(b, t, 5*time.Second, `document.getElementById('trust').dataset.state === 'verified'`)

	// Rewriting the DTLS fingerprint is how a bridge would put itself in
	// the middle of the media.
	// The player takes the offer in while it checks the signature; what
	// it sends back (an answer would let ICE and DTLS start) must wait
	// for the check.
	var answered atomic.Bool
	rewrite := newMITMUp(t, base, func(msg map[string]any) {
		if msg["type"] != "offer" {
			return
		}
		p := msg["payload"].(map[string]any)
		p["sdp"] = fingerprintRE.ReplaceAllStringFunc(p["sdp"].(string), func(s string) string {
			if strings.HasSuffix(s, "00") {
				return s[:len(s)-2] + "11"
			}
			return s[:len(s)-2] + "00"
		})
	}, func(name string, args []json.RawMessage) []json.RawMessage {
		for _, a := range args {
			var m struct{ Type string }
			if json.Unmarshal(a, &m) == nil && (m.Type == "answer" || m.Type == "candidate") {
				answered.Store(true)
			}
		}
		return args
	})
	if err := browsertest.Navigate(b, playerURL(rewrite.ts.URL, room, "")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, `document.body.dataset.stage === 'error' && document.body.dataset.reason === 'untrusted' && /tampering/.test(document.getElementById('message').textContent)`)
	frames, _ := browsertest.Eval[float64](b, `document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames`)
	if frames > 0 {
		t.Errorf("%v frames decoded from a tampered session", frames)
	}
	if answered.Load() {
		t.Error("the player answered (or sent candidates for) an offer whose signature does not match")
	}

	// Replaying an offer signed for another join's nonce.
	var mu sync.Mutex
	var saved map[string]any
	replay := newMITM(t, base, func(msg map[string]any) {
		if msg["type"] != "offer" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if saved == nil {
			saved = msg["payload"].(map[string]any)
			return
		}
		msg["payload"] = saved
	})
	if err := browsertest.Navigate(b, playerURL(replay.ts.URL, room, "")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, playing) // the first session is honest
	if err := browsertest.Navigate(b, playerURL(replay.ts.URL, room, "")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, `document.body.dataset.stage === 'error' && document.body.dataset.reason === 'untrusted' && /signature/.test(document.getElementById('message').textContent)`)
}

// TestOpenRoomPin: a browser that saw one device serve an open room warns
// when another device serves it.
func TestOpenRoomPin(t *testing.T) {
	b := browsertest.New(t)
	first, room := startDemo(t, false, "")
	// Both demos' bridges are reached through one relay origin, so the
	// page's storage (its pins) is the same for both.
	var mu sync.Mutex
	upstream := first
	relay := &switchable{get: func() string { mu.Lock(); defer mu.Unlock(); return upstream }}
	ts := relay.start(t)
	if err := browsertest.Navigate(b, playerURL(ts, room, "")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, playing)
	browsertest.WaitFor(b, t, 5*time.Second, `['pinned','unverified'].includes(document.getElementById('trust').dataset.state)`)

	second, _ := startDemo(t, false, "")
	mu.Lock()
	upstream = second
	mu.Unlock()
	if err := browsertest.Navigate(b, playerURL(ts, room, "")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, `document.getElementById('trust').dataset.state === 'changed' && /Warning/.test(document.getElementById('trust').textContent)`)
}

// switchable serves the page and forwards each new Socket.IO session to
// whichever bridge get names at that moment.
type switchable struct{ get func() string }

func (s *switchable) start(t *testing.T) string {
	var mitms sync.Map
	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.HandleFunc("/socket.io/", func(w http.ResponseWriter, r *http.Request) {
		up := s.get()
		m, ok := mitms.Load(up)
		if !ok {
			m, _ = mitms.LoadOrStore(up, newMITM(t, up, nil))
		}
		m.(*mitm).srv.ServeHTTP(w, r)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts.URL
}

// TestRoomSecretInBrowser: the right secret plays, a wrong one is refused
// by the device with words the player shows, and no secret is asked for.
func TestRoomSecretInBrowser(t *testing.T) {
	base, room := startDemo(t, true, "hunter2")
	b := browsertest.New(t)
	for _, c := range []struct{ extra, want string }{
		{"#secret=nope", `document.body.dataset.stage === 'error' && document.body.dataset.reason === 'secret-wrong' && /wrong room secret/.test(document.getElementById('message').textContent)`},
		{"", `document.body.dataset.stage === 'error' && document.body.dataset.reason === 'secret-missing' && /secret/.test(document.getElementById('message').textContent)`},
		{"#secret=hunter2", playing},
		// An old link with the secret in the query plays, and warns.
		{"&secret=hunter2", playing + ` && document.getElementById('origin').dataset.secret === 'query' && location.hash === '#secret=hunter2' && !location.search.includes('hunter2')`},
	} {
		if err := browsertest.Navigate(b, playerURL(base, room, c.extra)); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitFor(b, t, 25*time.Second, c.want)
	}
}
