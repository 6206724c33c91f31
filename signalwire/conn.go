package signalwire

import (
	"bufio"
	"errors"
	"io"
	"sync"
	"time"
)

// Timing of a session. A peer that sends nothing for IdleTimeout is gone;
// each side pings every PingInterval so an idle but healthy session is not
// mistaken for a dead one.
const (
	JoinTimeout  = 10 * time.Second
	WriteTimeout = 10 * time.Second
	PingInterval = 20 * time.Second
	IdleTimeout  = 3 * PingInterval
)

// Stream is what a Conn needs of a libp2p stream (network.Stream has it).
type Stream interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	Reset() error
}

// Conn frames messages on a stream with deadlines. Send may be called from
// several goroutines; Recv from one at a time.
type Conn struct {
	s   Stream
	r   *bufio.Reader
	wmu sync.Mutex

	rmu         sync.Mutex // guards interrupted against Recv setting a deadline
	interrupted bool
}

// NewConn wraps s.
func NewConn(s Stream) *Conn {
	return &Conn{s: s, r: bufio.NewReaderSize(s, 4096)}
}

// Send writes m, failing if the peer does not take it within WriteTimeout.
func (c *Conn) Send(m *Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.s.SetWriteDeadline(time.Now().Add(WriteTimeout)); err != nil {
		return err
	}
	return WriteMessage(c.s, m)
}

// Recv reads the next message, failing if none arrives within timeout.
func (c *Conn) Recv(timeout time.Duration) (*Message, error) {
	c.rmu.Lock()
	if c.interrupted {
		c.rmu.Unlock()
		return nil, ErrInterrupted
	}
	err := c.s.SetReadDeadline(time.Now().Add(timeout))
	c.rmu.Unlock()
	if err != nil {
		return nil, err
	}
	m, err := ReadMessage(c.r)
	if err != nil {
		c.rmu.Lock()
		if c.interrupted {
			err = ErrInterrupted
		}
		c.rmu.Unlock()
	}
	return m, err
}

// ErrInterrupted is returned by Recv after Interrupt.
var ErrInterrupted = errors.New("signalling session interrupted")

// Interrupt makes a blocked or later Recv return ErrInterrupted while
// leaving the stream open, so that its owner can still say goodbye (Send a
// leave) before closing it.
func (c *Conn) Interrupt() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.interrupted = true
	c.s.SetReadDeadline(time.Now())
}

// KeepAlive pings the peer every interval (PingInterval in production)
// until stop is called or a send fails, so that the peer's IdleTimeout does
// not take an idle but healthy session for dead. stop waits for the pinging
// goroutine to end; calling it more than once is harmless.
func (c *Conn) KeepAlive(interval time.Duration) (stop func()) {
	return KeepAlive(interval, c.Send)
}

// KeepAlive sends a ping through send every interval until stop is called
// or send fails: for a session whose Conn changes under it (a device's
// session resumed through another bridge), send picks the current one and
// returns nil to keep pinging while there is none. stop waits for the
// pinging goroutine to end; calling it more than once is harmless.
func KeepAlive(interval time.Duration, send func(*Message) error) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if send(&Message{Kind: KindPing}) != nil {
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit) }); <-done }
}

// Close closes the stream after what was sent has been flushed.
func (c *Conn) Close() error { return c.s.Close() }

// Reset aborts the stream; used when the peer broke the protocol.
func (c *Conn) Reset() error { return c.s.Reset() }
