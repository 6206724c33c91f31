package bridge

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/internal/testutil"
)

// TestSlowBodiesCannotHoldConnections plays a client that opens 200
// connections from one address, each sending a request whose body never
// comes (one byte of a promised thousand). The bridge must cap the
// connections it holds for that address, close each held one once the
// body is late, and serve another client meanwhile.
func TestSlowBodiesCannotHoldConnections(t *testing.T) {
	const attackers = 200
	h := newHost(t)
	b, err := New(Config{
		Host: h, Resolver: fixedResolver{peer.AddrInfo{ID: h.ID()}},
		Limits: limit.Config{BodyTimeout: time.Second}, // HTTPConnsPerIP: the default, 128
		Logger: testutil.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(testutil.Serve(t, b), "http://")
	perIP := b.gate.Config().HTTPConnsPerIP

	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range attackers {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /page-%d HTTP/1.1\r\nHost: bridge\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nA", i)
	}
	if held := b.conns.Held(netip.MustParseAddr("127.0.0.1")); held > perIP {
		t.Errorf("the bridge holds %d connections of one address, cap %d", held, perIP)
	}
	// Another client is served while the attack goes on.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("another client while slow bodies trickle: %v", err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()

	// Every attacking connection is closed by the bridge (EOF or reset)
	// within the body timeout and a margin; none is still open.
	deadline := time.Now().Add(4 * time.Second)
	open := 0
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		_, err := io.Copy(io.Discard, c) // the response, if any, then the close
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			open++
		}
	}
	if open > 0 {
		t.Fatalf("%d of %d slow-body connections still held %v after the body timeout", open, attackers, 3*time.Second)
	}
	waitFor(t, "the address's count falls to zero", func() bool { return b.conns.Held(netip.MustParseAddr("127.0.0.1")) == 0 })
}
