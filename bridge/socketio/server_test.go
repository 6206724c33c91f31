package socketio

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestHandshake(t *testing.T) {
	e := newEnv(t, Config{})
	origin := "https://player.example:8080"
	resp, body := e.get("/socket.io/1/?t=1700000000000&foo=bar", http.Header{"Origin": {origin}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s: %s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	m := handshakeRE.FindStringSubmatch(body)
	if m == nil || m[2] != "60" || m[3] != "60" {
		t.Fatalf("handshake %q, want <20 char sid>:60:60:websocket", body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("Access-Control-Allow-Origin %q, want the request's origin %q", got, origin)
	}
	if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("Access-Control-Allow-Credentials %q, want true", got)
	}
	if sid := e.handshake(); sid == m[1] {
		t.Error("two handshakes gave the same sid")
	}

	resp, _ = e.get("/socket.io/1/?t=2", nil)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("without Origin, Access-Control-Allow-Origin is %q, want none", got)
	}
}

func TestHandshakeAnnouncesTimeouts(t *testing.T) {
	e := newEnv(t, Config{HeartbeatTimeout: 90 * time.Second, CloseTimeout: 1500 * time.Millisecond})
	_, body := e.get("/socket.io/1/", nil)
	if !strings.HasSuffix(body, ":90:2:websocket") {
		t.Errorf("handshake %q, want heartbeat 90 and close 2 (rounded up)", body)
	}
}

func TestHandshakePreflight(t *testing.T) {
	e := newEnv(t, Config{})
	origin := "http://localhost:3000"
	resp, _ := e.do(http.MethodOptions, "/socket.io/1/?t=1", http.Header{
		"Origin":                         {origin},
		"Access-Control-Request-Method":  {"GET"},
		"Access-Control-Request-Headers": {"x-requested-with"},
	})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight status %s, want 204", resp.Status)
	}
	h := resp.Header
	if h.Get("Access-Control-Allow-Origin") != origin || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight CORS headers: %v", h)
	}
	if !strings.Contains(h.Get("Access-Control-Allow-Methods"), "GET") {
		t.Errorf("Access-Control-Allow-Methods %q lacks GET", h.Get("Access-Control-Allow-Methods"))
	}
	if h.Get("Access-Control-Allow-Headers") != "x-requested-with" {
		t.Errorf("Access-Control-Allow-Headers %q", h.Get("Access-Control-Allow-Headers"))
	}
}

func TestHandshakeJSONP(t *testing.T) {
	e := newEnv(t, Config{})
	resp, body := e.get("/socket.io/1/?t=1&jsonp=3", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/javascript") {
		t.Fatalf("jsonp: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if !regexp.MustCompile(`^io\.j\[3\]\("[A-Za-z0-9_-]{20}:60:60:websocket"\);$`).MatchString(body) {
		t.Errorf("jsonp body %q", body)
	}

	resp, body = e.get("/socket.io/1/?t=1&jsonp=alert(1)", nil)
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "alert") {
		t.Errorf("bad jsonp index: %s %q", resp.Status, body)
	}

	e.srv.Close()
	resp, body = e.get("/socket.io/1/?t=1&jsonp=0", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, `io.j[0](new Error("socket.io: server closed"));`) {
		t.Errorf("jsonp refusal: %s %q", resp.Status, body)
	}
}

func TestHTTPErrors(t *testing.T) {
	e := newEnv(t, Config{})
	cases := []struct {
		method, path string
		status       int
		say          string
	}{
		{"GET", "/socket.io/", 404, "no protocol revision"},
		{"GET", "/socket.io/2/?t=1", 404, "revision 1"},
		{"GET", "/socket.io/1/xhr-polling/abc", 404, "websocket only"},
		{"GET", "/socket.io/1/jsonp-polling/abc?i=0", 404, "websocket only"},
		{"GET", "/socket.io/1/websocket/", 404, "<session id>"},
		{"GET", "/socket.io/1/websocket/a/b", 404, "<session id>"},
		{"POST", "/socket.io/1/", 405, "GET"},
	}
	for _, c := range cases {
		resp, body := e.do(c.method, c.path, http.Header{"Origin": {"https://x.example"}})
		if resp.StatusCode != c.status || !strings.Contains(body, c.say) {
			t.Errorf("%s %s: %s %q, want %d saying %q", c.method, c.path, resp.Status, body, c.status, c.say)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://x.example" {
			t.Errorf("%s %s: error without CORS headers, so the page cannot read it", c.method, c.path)
		}
	}
	// A plain GET of a WebSocket URL does not burn the sid.
	sid := e.handshake()
	if resp, _ := e.get("/socket.io/1/websocket/"+sid, nil); resp.StatusCode < 400 {
		t.Errorf("plain GET of the WebSocket URL: %s", resp.Status)
	}
	c := e.dial(sid)
	expect(t, c, "1::")
	e.rec.nextSocket(t)
}

func TestMaxPending(t *testing.T) {
	e := newEnv(t, Config{MaxPending: 2, HandshakeTimeout: 100 * time.Millisecond})
	e.handshake()
	e.handshake()
	resp, body := e.get("/socket.io/1/", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "too many pending") {
		t.Fatalf("third pending handshake: %s %q, want 503", resp.Status, body)
	}
	time.Sleep(200 * time.Millisecond)
	e.handshake() // the expired ones were forgotten
}

func TestHandshakeAfterClose(t *testing.T) {
	e := newEnv(t, Config{})
	sid := e.handshake()
	e.srv.Close()
	if resp, body := e.get("/socket.io/1/", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("handshake after Close: %s %q", resp.Status, body)
	}
	if resp, _ := e.get("/socket.io/1/websocket/"+sid, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("WebSocket after Close: %s", resp.Status)
	}
}
