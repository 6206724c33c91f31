package web_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
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

// TestEarlySession: the page served by the bridge opens the bridge's
// Socket.IO session before its modules have loaded, and the player plays
// through that session, with no second handshake. A page told to play
// through a bridge (?bridges=) opens none and plays as before.
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
	if want := (early{Opened: true, Taken: true, Handshakes: 1}); got != want {
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
