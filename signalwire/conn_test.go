package signalwire

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// pipeStream is one end of a net.Pipe with the Reset a libp2p stream has.
type pipeStream struct{ net.Conn }

func (p pipeStream) Reset() error { return p.Conn.Close() }

func TestConnRecvTimeout(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := NewConn(pipeStream{a})
	start := time.Now()
	_, err := c.Recv(50 * time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Recv from a silent peer: %v, want a deadline error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Recv waited %s", time.Since(start))
	}
}

func TestConnInterrupt(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := NewConn(pipeStream{a})
	peer := NewConn(pipeStream{b})
	got := make(chan error, 1)
	go func() {
		_, err := c.Recv(time.Minute)
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Interrupt()
	select {
	case err := <-got:
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("Recv after Interrupt: %v, want ErrInterrupted", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Interrupt did not end a blocked Recv")
	}
	// The stream stays open for a goodbye.
	sent := make(chan error, 1)
	go func() { sent <- c.Send(&Message{Kind: KindLeave, Reason: "bye"}) }()
	m, err := peer.Recv(5 * time.Second)
	if err != nil || m.Kind != KindLeave {
		t.Fatalf("peer read %+v, %v; want the leave", m, err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("Send after Interrupt: %v", err)
	}
	if _, err := c.Recv(time.Second); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("later Recv: %v, want ErrInterrupted", err)
	}
}

// TestConnMalformedPeer: garbage from the peer is an error for this stream,
// with no message delivered.
func TestConnMalformedPeer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := NewConn(pipeStream{a})
	go b.Write([]byte("\x0anot json!!"))
	if m, err := c.Recv(5 * time.Second); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Recv of garbage: %+v, %v; want ErrInvalid", m, err)
	}
}
