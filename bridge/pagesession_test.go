package bridge_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/internal/sioclient"
)

var sessionMetaRE = regexp.MustCompile(`<meta name="ersmesh-session" content="([^"]*)">`)

// pageSession fetches the player page at base+path and returns the session
// it was handed ("" for none) and its Cache-Control.
func pageSession(t *testing.T, ctx context.Context, url string) (session, cacheControl string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, res.Status, err)
	}
	m := sessionMetaRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("GET %s: the page has no session meta", url)
	}
	return string(m[1]), res.Header.Get("Cache-Control")
}

// TestPageSession: the player page for a room comes with a Socket.IO
// session, usable once, never stored; pages that will not play through
// the bridge over ERS get none.
func TestPageSession(t *testing.T) {
	base := startTuned(t, func(c *bridge.Config) { c.Limits.HandshakeRate = -1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	s, cc := pageSession(t, ctx, base+"/?room=demo&stream=sample")
	if s == "" {
		t.Fatal("the room's page carries no session")
	}
	if cc != "no-store" {
		t.Errorf("a page with a session: Cache-Control %q, want no-store", cc)
	}
	f := strings.Split(s, ":")
	if len(f) != 4 || f[3] != "websocket" {
		t.Fatalf("session %q, want a handshake's answer", s)
	}
	hs := sioclient.Handshake{SID: f[0], Heartbeat: 60, Timeout: 60, Transports: []string{"websocket"}}
	c, err := sioclient.DialSID(ctx, base, hs, nil)
	if err != nil {
		t.Fatalf("the page's session does not connect: %v", err)
	}
	c.Close()
	if c, err := sioclient.DialSID(ctx, base, hs, nil); err == nil {
		c.Close()
		t.Error("the page's session connected twice")
	}

	for _, q := range []string{"", "?stream=sample", "?room=demo&protocol=whep", "?room=demo&bridge=https://other.example", "?room=demo&bridges=https://other.example"} {
		if s, cc := pageSession(t, ctx, base+"/"+q); s != "" || cc != "no-cache" {
			t.Errorf("page %q: session %q, Cache-Control %q; want none and no-cache", q, s, cc)
		}
	}
}

// TestPageSessionLimits: page loads make sessions only within what
// handshake requests may make: a flood of page loads from one address is
// served pages without sessions (whose players then handshake and meet
// the limit themselves), and the cap on sessions not yet connected holds.
func TestPageSessionLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rate := startTuned(t, func(c *bridge.Config) { c.Limits.HandshakeRate, c.Limits.HandshakeBurst = 0.001, 3 })
	with := 0
	for range 10 {
		if s, _ := pageSession(t, ctx, rate+"/?room=demo"); s != "" {
			with++
		}
	}
	if with != 3 {
		t.Errorf("handshake burst 3: %d of 10 page loads had a session", with)
	}
	if _, err := sioclient.DoHandshake(ctx, rate, nil); err == nil || !strings.Contains(err.Error(), "429") {
		t.Errorf("a handshake after the page loads used the burst: %v, want 429", err)
	}

	pending := startTuned(t, func(c *bridge.Config) {
		c.Limits.HandshakeRate = -1
		c.Socket.MaxPending = 4
	})
	with = 0
	for range 10 {
		if s, _ := pageSession(t, ctx, pending+"/?room=demo"); s != "" {
			with++
		}
	}
	if with != 4 {
		t.Errorf("MaxPending 4: %d of 10 page loads had a session", with)
	}
}
