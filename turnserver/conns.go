package turnserver

import (
	"net"
	"sync"
	"time"
)

// connSet holds the accepted TCP connections so that Close can end them:
// pion/turn stops accepting on Close but leaves open connections to their
// clients.
type connSet struct {
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func newConnSet() *connSet { return &connSet{conns: make(map[net.Conn]struct{})} }

func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// trackedListener registers what it accepts in a connSet and gives each
// connection an idle deadline.
type trackedListener struct {
	net.Listener
	set *connSet
}

func (l *trackedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, set: l.set}
		if !l.set.add(tc) {
			c.Close()
			continue
		}
		return tc, nil
	}
}

type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

// Read renews the idle deadline: a client that sends nothing for
// idleTimeout holds no goroutine and no socket for longer.
func (c *trackedConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(idleTimeout))
	return c.Conn.Read(p)
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.set.remove(c) })
	return c.Conn.Close()
}
