package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/web"
)

// earlyState is what a page tells of its early Socket.IO session: whether
// index.html opened one, whether the player's socket took it over, and how
// many handshakes the page made in all.
const earlyState = `({opened: typeof window.ersmeshEarly === 'object', taken: ersPlayer._socket?.early === true,
	handshakes: performance.getEntriesByType('resource').filter((e) => e.name.includes('/socket.io/1/?t=')).length})`

type early struct {
	Opened, Taken bool
	Handshakes    int
}

// TestEarlySession: the page served by the bridge comes with a Socket.IO
// session, whose WebSocket it opens before its modules have loaded, and
// the player plays through that session without a handshake request. A
// page told to play through a bridge (?bridges=) opens none and plays as
// before.
func TestEarlySession(t *testing.T) {
	d := startTestDemo(t, demo.Config{})
	b := browsertest.New(t)

	if err := browsertest.Navigate(b, d.URL+"&transport=srtp"); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, `document.body.dataset.stage === 'playing'`)
	got, err := browsertest.Eval[early](b, earlyState)
	if err != nil {
		t.Fatal(err)
	}
	if want := (early{Opened: true, Taken: true, Handshakes: 0}); got != want {
		t.Errorf("page served by the bridge: %+v, want %+v", got, want)
	}

	u := d.URL + "&transport=srtp&bridges=" + url.QueryEscape(d.Bridge)
	if err := browsertest.Navigate(b, u); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 20*time.Second, `document.body.dataset.stage === 'playing'`)
	got, err = browsertest.Eval[early](b, earlyState)
	if err != nil {
		t.Fatal(err)
	}
	if want := (early{Opened: false, Taken: false, Handshakes: 1}); got != want {
		t.Errorf("page with ?bridges=: %+v, want %+v", got, want)
	}
}

// TestEarlySessionFallback: a page whose server handed it a session the
// bridge does not know (used already, expired, or a page the browser
// kept) and one without a session (served by a plain file server in front
// of the bridge) both play at once, with one handshake request: no error
// shown, no backoff.
func TestEarlySessionFallback(t *testing.T) {
	d := startTestDemo(t, demo.Config{})
	target, err := url.Parse(d.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	b := browsertest.New(t)
	for _, tc := range []struct {
		name    string
		session func(*http.Request) string
	}{
		{"unknown session", func(*http.Request) string { return "AAAAAAAAAAAAAAAAAAAA:60:60:websocket" }},
		{"no session", nil},
	} {
		mux := http.NewServeMux()
		mux.Handle("/socket.io/", httputil.NewSingleHostReverseProxy(target))
		mux.Handle("/", web.HandlerWithSession(tc.session))
		srv := httptest.NewServer(mux)
		if err := browsertest.Navigate(b, srv.URL+"/?room=demo&stream=sample&transport=srtp"); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitFor(b, t, 20*time.Second, `document.body.dataset.stage === 'playing'`)
		got, err := browsertest.Eval[early](b, earlyState)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Opened || got.Handshakes != 1 {
			t.Errorf("%s: %+v, want an early session and one handshake", tc.name, got)
		}
		stages, err := browsertest.Eval[[]string](b, `ersPlayer.timeline.map((e) => e.stage)`)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"connecting", "joined", "negotiating", "connected", "playing"}; !slices.Equal(stages, want) && !slices.Equal(stages, slices.Delete(slices.Clone(want), 1, 2)) {
			t.Errorf("%s: stages %v, want %v", tc.name, stages, want)
		}
		browsertest.Navigate(b, "about:blank")
		srv.CloseClientConnections()
		srv.Close()
	}
}
