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

// TestConnKeepAlive: pings arrive on schedule while the session is idle,
// stop ends them and waits, and a peer that goes away ends them too.
func TestConnKeepAlive(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c, peer := NewConn(pipeStream{a}), NewConn(pipeStream{b})
	stop := c.KeepAlive(20 * time.Millisecond)
	for i := range 3 {
		m, err := peer.Recv(5 * time.Second)
		if err != nil || m.Kind != KindPing {
			t.Fatalf("message %d: %+v, %v; want a ping", i, m, err)
		}
	}
	stop()
	stop() // twice is harmless
	if m, err := peer.Recv(100 * time.Millisecond); err == nil {
		t.Fatalf("%+v after stop", m)
	}

	// The peer goes away: the pinger ends by itself, and stop returns.
	stop = c.KeepAlive(time.Millisecond)
	a.Close()
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop hangs after the stream closed")
	}
}

// TestKeepAliveSend: a send that reports no error keeps the pings going
// (a detached session waiting for its viewer), one that fails ends them.
func TestKeepAliveSend(t *testing.T) {
	calls := make(chan struct{}, 100)
	stop := KeepAlive(time.Millisecond, func(m *Message) error {
		if m.Kind != KindPing {
			t.Errorf("sent %q, want a ping", m.Kind)
		}
		calls <- struct{}{}
		return nil
	})
	for range 3 {
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatal("pings stopped while send reported no error")
		}
	}
	stop()
	failed := make(chan struct{}, 100)
	stop = KeepAlive(time.Millisecond, func(*Message) error {
		failed <- struct{}{}
		return errors.New("stream gone")
	})
	<-failed
	time.Sleep(20 * time.Millisecond)
	if n := len(failed); n != 0 {
		t.Errorf("%d pings after a failed send", n)
	}
	stop()
}
