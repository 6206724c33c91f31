package tlsmux

import (
	"bufio"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxPending       = 1024
)

// Config tunes a Mux; zero values take the defaults.
type Config struct {
	// TLS is the server's config; its NextProtos should list h2 and
	// http/1.1 (and acme-tls/1 with ACME).
	TLS *tls.Config
	// HandshakeTimeout bounds a connection's handshake and its first
	// byte.
	HandshakeTimeout time.Duration
	// MaxPending bounds the connections in their handshake at once; more
	// are closed at once (a flood of idle connections cannot pile up).
	MaxPending int
	Logger     *slog.Logger
}

// Mux accepts on one listener and hands each connection, TLS done, to its
// HTTP or its TURN listener. Close stops it and waits.
type Mux struct {
	l       net.Listener
	cfg     Config
	log     *slog.Logger
	http    *chanListener
	turn    *chanListener
	pending chan struct{} // one token per connection in its handshake
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	mu       sync.Mutex
	closed   bool
	inFlight map[net.Conn]struct{} // in their handshake, for Close to cut
}

// New starts a Mux on l.
func New(l net.Listener, cfg Config) *Mux {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Mux{l: l, cfg: cfg, log: cfg.Logger.With("component", "tlsmux"),
		pending: make(chan struct{}, cfg.MaxPending), done: make(chan struct{}),
		inFlight: make(map[net.Conn]struct{})}
	m.http = newChanListener(l.Addr(), m.done)
	m.turn = newChanListener(l.Addr(), m.done)
	m.wg.Go(m.accept)
	return m
}

// HTTP yields the HTTPS connections (serve them without wrapping them in
// TLS again).
func (m *Mux) HTTP() net.Listener { return m.http }

// TURN yields the TURN-over-TLS connections.
func (m *Mux) TURN() net.Listener { return m.turn }

// Addr is the shared listener's address.
func (m *Mux) Addr() net.Addr { return m.l.Addr() }

func (m *Mux) accept() {
	for {
		c, err := m.l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		select {
		case m.pending <- struct{}{}:
		default:
			c.Close()
			continue
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			c.Close()
			return
		}
		m.inFlight[c] = struct{}{}
		m.mu.Unlock()
		m.wg.Go(func() {
			defer func() {
				m.mu.Lock()
				delete(m.inFlight, c)
				m.mu.Unlock()
				<-m.pending
			}()
			m.route(c)
		})
	}
}

// route handshakes and hands the connection on, or closes it.
func (m *Mux) route(raw net.Conn) {
	tc := tls.Server(raw, m.cfg.TLS)
	raw.SetDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		m.log.Debug("TLS handshake failed", "client", raw.RemoteAddr(), "err", err)
		raw.Close()
		return
	}
	var c net.Conn = tc
	to := m.http
	if tc.ConnectionState().NegotiatedProtocol == "" {
		// Nothing negotiated: a TURN client, or an HTTP/1 client that
		// offers no ALPN. The first byte tells.
		br := bufio.NewReaderSize(tc, 512)
		b, err := br.Peek(1)
		if err != nil {
			raw.Close()
			return
		}
		if b[0] < 0x40 {
			to = m.turn
		}
		c = &peekedConn{Conn: tc, r: br}
	}
	raw.SetDeadline(time.Time{})
	if !to.put(c) {
		c.Close()
	}
}

// Close stops accepting, closes connections not yet handed on, and waits.
func (m *Mux) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		err = m.l.Close()
		m.mu.Lock()
		m.closed = true
		for c := range m.inFlight {
			c.Close()
		}
		m.mu.Unlock()
		m.wg.Wait()
	})
	return err
}

// peekedConn is a connection whose first bytes were read into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// chanListener is a net.Listener fed by the Mux.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   <-chan struct{} // the Mux closed
	closed chan struct{}   // this listener closed
	once   sync.Once
}

func newChanListener(addr net.Addr, done <-chan struct{}) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: done, closed: make(chan struct{})}
}

// put hands c to Accept; false if the listener or the Mux is closed.
func (l *chanListener) put(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
	case <-l.done:
	}
	return false
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
	case <-l.done:
	}
	return nil, net.ErrClosed
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
