package limit

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func req(remote, origin string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://bridge.example:4545/socket.io/1/", nil)
	r.RemoteAddr = remote
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}

func TestAcquireCaps(t *testing.T) {
	g := NewGate(Config{PerIP: 2, PerSubnet: 3}, nil)
	var rel []func()
	take := func(remote string, want bool) {
		t.Helper()
		r, ok := g.Acquire(req(remote, ""))
		if ok != want {
			t.Fatalf("Acquire(%s) = %v, want %v (open %d)", remote, ok, want, g.Open())
		}
		if ok {
			rel = append(rel, r)
		}
	}
	take("192.0.2.1:1000", true)
	take("192.0.2.1:1001", true)
	take("192.0.2.1:1002", false) // per-IP cap
	take("192.0.2.2:1000", true)
	take("192.0.2.3:1000", false) // per-subnet cap: same /24
	take("198.51.100.1:1000", true)
	take("[2001:db8:1:2::1]:1", true)
	take("[2001:db8:1:3::1]:1", true)
	take("[2001:db8:1:4::1]:1", true)
	take("[2001:db8:1:5::1]:1", false) // same /48
	take("not an address", false)

	rel[0]()
	rel[0]() // twice changes nothing
	take("192.0.2.3:1000", true)
	take("192.0.2.4:1000", false)
	for _, r := range rel {
		r()
	}
	if n := g.Open(); n != 0 {
		t.Errorf("%d connections open after every release", n)
	}
	if g.perIP.Len() != 0 || g.perSubnet.Len() != 0 {
		t.Errorf("tables not emptied: %d %d keys", g.perIP.Len(), g.perSubnet.Len())
	}
}

func TestAcquireUnlimited(t *testing.T) {
	g := NewGate(Config{PerIP: -1, PerSubnet: -1}, nil)
	for range 1000 {
		if _, ok := g.Acquire(req("127.0.0.1:1", "")); !ok {
			t.Fatal("refused with the caps off")
		}
	}
}

func TestHandshakeRate(t *testing.T) {
	g := NewGate(Config{HandshakeRate: 0.001, HandshakeBurst: 3}, nil)
	for i := range 3 {
		if !g.Handshake(req("192.0.2.1:1", "")) {
			t.Fatalf("handshake %d refused within the burst", i)
		}
	}
	if g.Handshake(req("192.0.2.1:2", "")) {
		t.Fatal("handshake beyond the burst allowed")
	}
	if !g.Handshake(req("192.0.2.9:1", "")) {
		t.Fatal("another address was refused")
	}
}

// TestHandshakeTableBounded: a flood from many addresses cannot grow the
// table past its bound.
func TestHandshakeTableBounded(t *testing.T) {
	g := NewGate(Config{}, nil)
	a := netip.MustParseAddr("10.0.0.0")
	for range maxTracked + 1000 {
		a = a.Next()
		g.Handshake(req(netip.AddrPortFrom(a, 1).String(), ""))
	}
	if n := g.handshakes.Len(); n > maxTracked {
		t.Fatalf("%d tracked addresses, bound %d", n, maxTracked)
	}
}

func TestSweepForgetsIdle(t *testing.T) {
	g := NewGate(Config{}, nil)
	g.Handshake(req("192.0.2.1:1", ""))
	g.handshakes.Sweep(time.Now().Add(time.Hour))
	if n := g.handshakes.Len(); n != 0 {
		t.Fatalf("%d entries after an hour idle", n)
	}
}

// TestIPv6KeyedBySlash64 plays a client that rotates through the
// addresses of its /64: it is one client to the caps and the handshake
// rate, while a neighbouring /64 is another.
func TestIPv6KeyedBySlash64(t *testing.T) {
	g := NewGate(Config{PerIP: 2, HandshakeRate: 0.001, HandshakeBurst: 2}, nil)
	for i, remote := range []string{"[2001:db8:0:1::a]:1", "[2001:db8:0:1:ffff::b]:1"} {
		if _, ok := g.Acquire(req(remote, "")); !ok {
			t.Fatalf("connection %d refused", i)
		}
		if !g.Handshake(req(remote, "")) {
			t.Fatalf("handshake %d refused", i)
		}
	}
	if _, ok := g.Acquire(req("[2001:db8:0:1:1234:5678:9abc:def0]:1", "")); ok {
		t.Error("a third address of the same /64 got past the per-address cap")
	}
	if g.Handshake(req("[2001:db8:0:1::c]:1", "")) {
		t.Error("a third address of the same /64 got past the handshake rate")
	}
	if _, ok := g.Acquire(req("[2001:db8:0:2::a]:1", "")); !ok {
		t.Error("the next /64 was refused")
	}
	if !g.Handshake(req("[2001:db8:0:2::a]:1", "")) {
		t.Error("the next /64 was refused a handshake")
	}
}

func TestOrigins(t *testing.T) {
	open := NewGate(Config{}, nil)
	if !open.OriginAllowed(req("192.0.2.1:1", "https://anyone.example")) {
		t.Error("default refuses an origin; ERS allowed any")
	}
	g := NewGate(Config{AllowedOrigins: []string{"https://player.example/"}}, nil)
	cases := map[string]bool{
		"":                            true, // not a browser page
		"https://player.example":      true,
		"HTTPS://PLAYER.EXAMPLE":      true,
		"http://bridge.example:4545":  true, // its own page
		"https://evil.example":        false,
		"https://player.example.evil": false,
		"null":                        false,
	}
	for origin, want := range cases {
		if got := g.OriginAllowed(req("192.0.2.1:1", origin)); got != want {
			t.Errorf("origin %q: %v, want %v", origin, got, want)
		}
	}
}

func TestWrap(t *testing.T) {
	var refused []string
	g := NewGate(Config{PerIP: 1, HandshakeRate: 0.001, HandshakeBurst: 1, AllowedOrigins: []string{"https://ok.example"}},
		func(reason string, _ *http.Request) { refused = append(refused, reason) })
	hold := make(chan struct{})
	inside := make(chan struct{})
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/socket.io/1/websocket/x" {
			inside <- struct{}{}
			<-hold
		}
	}))
	serve := func(path, origin string) int {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = "192.0.2.1:5"
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if c := serve("/socket.io/1/", "https://bad.example"); c != http.StatusForbidden {
		t.Errorf("bad origin: %d", c)
	}
	if c := serve("/socket.io/1/", ""); c != http.StatusOK {
		t.Errorf("first handshake: %d", c)
	}
	if c := serve("/socket.io/1/", ""); c != http.StatusTooManyRequests {
		t.Errorf("second handshake: %d, want 429", c)
	}
	done := make(chan int)
	go func() { done <- serve("/socket.io/1/websocket/x", "") }()
	<-inside
	if c := serve("/socket.io/1/websocket/y", ""); c != http.StatusTooManyRequests {
		t.Errorf("second WebSocket from one address: %d, want 429", c)
	}
	close(hold)
	<-done
	if g.Open() != 0 {
		t.Errorf("slot not released when the socket ended")
	}
	if len(refused) != 3 {
		t.Errorf("refusals reported: %v", refused)
	}
}

func TestRate(t *testing.T) {
	var nilRate *Rate
	if !nilRate.Allow() {
		t.Error("nil Rate refuses")
	}
	r := NewRate(0.001, 2)
	if !r.Allow() || !r.Allow() || r.Allow() {
		t.Error("burst of 2 not enforced")
	}
	if _, ok := r.Delay(time.Second); ok {
		t.Error("Delay allowed a wait of about 1000 s")
	}
	r = NewRate(10, 1)
	r.Allow()
	if d, ok := r.Delay(time.Second); !ok || d <= 0 || d > 200*time.Millisecond {
		t.Errorf("Delay = %v, %v; want about 100 ms", d, ok)
	}
	if !NewRate(-1, 0).Allow() {
		t.Error("a negative rate limits")
	}
}
