package limit

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/ersmesh/ersmesh/internal/keylimit"
)

// ConnCap caps the open HTTP connections of one client address (IPv6: one
// /64). A client over the cap has its new connection closed at once,
// before a byte is read, so it cannot hold a server's connections (and
// their goroutines and buffers) however slowly it sends.
//
// It works through http.Server.ConnState rather than by wrapping the
// listener, so connections keep their type (*tls.Conn for a listener of
// handshaken connections).
type ConnCap struct {
	lim     *keylimit.Limiter[netip.Prefix]
	refused func(addr string)

	mu   sync.Mutex // guards held
	held map[net.Conn]netip.Prefix
}

// NewConnCap returns a cap of perIP connections per address; perIP < 0
// is no cap (ConnState then does nothing). refused, if not nil, is told of
// each connection closed.
func NewConnCap(perIP int, refused func(addr string)) *ConnCap {
	if perIP < 0 {
		return &ConnCap{}
	}
	if refused == nil {
		refused = func(string) {}
	}
	return &ConnCap{
		lim:     keylimit.New(keylimit.Config[netip.Prefix]{PerKey: perIP, MaxKeys: 1 << 16, WhenFull: keylimit.Forget}),
		refused: refused, held: make(map[net.Conn]netip.Prefix),
	}
}

// ConnState is the http.Server hook. A connection counts from StateNew
// until it closes or is hijacked (a WebSocket: the Gate counts those).
func (c *ConnCap) ConnState(conn net.Conn, state http.ConnState) {
	if c.lim == nil {
		return
	}
	switch state {
	case http.StateNew:
		ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
		if err != nil {
			return // not an IP connection (a test pipe): not capped
		}
		key := keylimit.KeyForAddr(ap.Addr())
		if err := c.lim.Acquire(key); err != nil {
			c.refused(conn.RemoteAddr().String())
			conn.Close()
			return
		}
		c.mu.Lock()
		c.held[conn] = key
		c.mu.Unlock()
	case http.StateClosed, http.StateHijacked:
		c.mu.Lock()
		key, ok := c.held[conn]
		delete(c.held, conn)
		c.mu.Unlock()
		if ok {
			c.lim.Release(key)
		}
	}
}

// Held reports the connections counted for the address a (tests).
func (c *ConnCap) Held(a netip.Addr) int {
	if c.lim == nil {
		return 0
	}
	return c.lim.HeldBy(keylimit.KeyForAddr(a))
}

// BodyDeadline gives every request body d to arrive in full. The server's
// ReadHeaderTimeout stops a client that trickles headers; without this one
// that trickles a body holds its connection and handler for as long as it
// likes. WebSocket upgrades carry no body and are not touched.
//
// The deadline is lifted once the body has been read (or failed): net/http
// keeps reading the connection in the background to notice a client that
// hangs up, and a deadline passing there would cancel a request that is
// still being answered (a WHEP POST waits for the device).
func BodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			// Not every ResponseWriter has deadlines (httptest's
			// recorder); the server's own timeouts still apply then.
			if rc.SetReadDeadline(time.Now().Add(d)) == nil {
				r.Body = &timedBody{ReadCloser: r.Body, rc: rc}
			}
		}
		h.ServeHTTP(w, r)
	})
}

type timedBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	lifted bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.lifted {
		b.lifted = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
