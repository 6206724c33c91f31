package tlsmux_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ersmesh/ersmesh/tlscert"
	"github.com/ersmesh/ersmesh/tlsmux"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPendingBounded: an attacker opening connections and sending nothing
// holds at most MaxPending handshakes; beyond that connections are closed
// at once, and Close ends the pending ones.
func TestPendingBounded(t *testing.T) {
	c, err := tlscert.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := tlsmux.New(l, tlsmux.Config{TLS: &tls.Config{Certificates: []tls.Certificate{*c}}, MaxPending: 2, HandshakeTimeout: time.Minute})
	var idle []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, conn)
	}
	time.Sleep(200 * time.Millisecond) // let the Mux take both
	extra, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("a connection beyond MaxPending was not closed at once: %v", err)
	}
	extra.Close()
	// Close waits for the two pending handshakes, which it cuts off.
	done := make(chan struct{})
	go func() { m.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the pending handshakes")
	}
	for _, c := range idle {
		c.Close()
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
