package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Handler receives a socket's life. Calls for one socket come from that
// socket's read goroutine, in order; Handler must not block long (it may
// hand work to its own goroutine): while it runs, that socket reads nothing.
type Handler interface {
	// Connect is called after "1::" was sent.
	Connect(s *Socket)
	// Event is called for each event from the client. ack is nil unless the
	// client asked for an ack with data ("5:<id>+::..."). A non-nil error is
	// sent to the client as an error packet "7:::<text>" and the socket
	// stays open. As in 0.9, a message packet (3) arrives as the event
	// "message" whose one argument is the text as a JSON string, and a JSON
	// packet (4) as "message" whose one argument is that JSON value.
	Event(s *Socket, name string, args []json.RawMessage, ack AckFunc) error
	// Disconnect is called exactly once per connected socket, with the
	// reason; Emit fails from then on.
	Disconnect(s *Socket, err error)
}

// AckFunc answers an event whose client asked for an ack with data. It
// sends "6:::<id>+<JSON array of args>" and works at most once; later calls
// return ErrAckUsed.
type AckFunc func(args ...any) error

// Config holds the server's settings; zero fields take their defaults.
type Config struct {
	HeartbeatTimeout  time.Duration // announced in the handshake; default 60s; the server drops a client silent this long
	CloseTimeout      time.Duration // announced; default 60s (only polling transports use it; this server offers none)
	HeartbeatInterval time.Duration // how often the server sends "2::"; default 25s; kept below HeartbeatTimeout
	HandshakeTimeout  time.Duration // a handshaken sid not connected within this is forgotten; default 30s
	MaxFrame          int           // max WebSocket message bytes; default 64 KiB
	SendQueue         int           // per-socket queued packets; default 256; a socket whose queue is full is dropped as a slow client
	MaxPending        int           // max handshaken-but-unconnected sids; default 10000 (handshake answers 503 beyond)
	Logger            *slog.Logger  // default: discard
}

const (
	defaultHeartbeatTimeout  = 60 * time.Second
	defaultCloseTimeout      = 60 * time.Second
	defaultHeartbeatInterval = 25 * time.Second
	defaultHandshakeTimeout  = 30 * time.Second
	defaultMaxFrame          = 64 << 10
	defaultSendQueue         = 256
	defaultMaxPending        = 10000

	// writeTimeout bounds one WebSocket write; a peer that takes longer
	// is gone or too slow to keep.
	writeTimeout = 10 * time.Second
	// defaultCloseGrace bounds a polite close: flushing the queue, the
	// farewell packet, and Server.Close waiting before it cuts every
	// connection.
	defaultCloseGrace = 5 * time.Second
)

// withDefaults fills zero or negative fields and keeps the heartbeat
// interval inside the timeout, or clients would time out between beats.
func (c Config) withDefaults() Config {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setInt := func(n *int, def int) {
		if *n <= 0 {
			*n = def
		}
	}
	setDur(&c.HeartbeatTimeout, defaultHeartbeatTimeout)
	setDur(&c.CloseTimeout, defaultCloseTimeout)
	setDur(&c.HeartbeatInterval, defaultHeartbeatInterval)
	setDur(&c.HandshakeTimeout, defaultHandshakeTimeout)
	setInt(&c.MaxFrame, defaultMaxFrame)
	setInt(&c.SendQueue, defaultSendQueue)
	setInt(&c.MaxPending, defaultMaxPending)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HeartbeatInterval >= c.HeartbeatTimeout {
		c.Logger.Warn("socketio: heartbeat interval not below the heartbeat timeout; using half the timeout",
			"interval", c.HeartbeatInterval, "timeout", c.HeartbeatTimeout)
		c.HeartbeatInterval = c.HeartbeatTimeout / 2
	}
	return c
}

// Server is a Socket.IO 0.9 endpoint offering the websocket transport.
// Mount it at "/socket.io/".
type Server struct {
	cfg Config
	h   Handler
	log *slog.Logger

	// ctx is the parent of every socket's; cancelling it cuts every
	// connection at once.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	pending   map[string]time.Time // handshaken sid → when it expires
	nextSweep time.Time
	sockets   map[string]*Socket

	wg sync.WaitGroup // every WebSocket handler and writer goroutine

	closeGrace time.Duration // defaultCloseGrace; tests shorten it
}

// NewServer returns a server that reports sockets to h.
func NewServer(cfg Config, h Handler) *Server {
	if h == nil {
		panic("socketio: NewServer with a nil Handler")
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:     cfg,
		h:       h,
		log:     cfg.Logger,
		ctx:     ctx,
		cancel:  cancel,
		pending: make(map[string]time.Time),
		sockets: make(map[string]*Socket),

		closeGrace: defaultCloseGrace,
	}
}

// Len returns the number of connected sockets.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sockets)
}

// Close closes every socket (each is sent "0::" and a WebSocket close),
// refuses new handshakes and connections, and waits until every goroutine
// it started has returned and every Disconnect was called. Connections that
// do not finish closing within a few seconds are cut. Close is idempotent
// and returns nil.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.pending = nil
	socks := make([]*Socket, 0, len(s.sockets))
	for _, so := range s.sockets {
		socks = append(socks, so)
	}
	s.mu.Unlock()
	for _, so := range socks {
		so.end(ErrServerClosed, disconnectPacket, websocket.StatusGoingAway)
	}
	cut := time.AfterFunc(s.closeGrace, s.cancel)
	s.wg.Wait()
	cut.Stop()
	s.cancel()
	return nil
}

// ServeHTTP answers the handshake "GET /socket.io/1/" and the WebSocket
// "GET /socket.io/1/websocket/<sid>". It also works behind
// http.StripPrefix("/socket.io", ...).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/socket.io"), "/")
	parts := strings.Split(rest, "/")
	switch {
	case rest == "":
		s.fail(w, r, http.StatusNotFound, "socket.io: no protocol revision in the path; this server answers /socket.io/1/")
	case parts[0] != "1":
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf(
			"socket.io: protocol revision %s is not supported; this server speaks revision 1 (Socket.IO 0.9)", excerpt([]byte(parts[0]), 16)))
	case len(parts) == 1:
		s.handshake(w, r)
	case parts[1] != "websocket":
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf(
			"socket.io: transport %s is not supported; this server offers websocket only", excerpt([]byte(parts[1]), 32)))
	case len(parts) != 3 || parts[2] == "":
		s.fail(w, r, http.StatusNotFound, "socket.io: expected /socket.io/1/websocket/<session id>")
	default:
		s.serveWebSocket(w, r, parts[2])
	}
}

// cors lets pages from any origin use the endpoint with credentials
// (the 0.9 client sets withCredentials). With credentials the browser
// refuses "*", so the request's own origin is echoed.
func cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
}

// jsonpIndex returns the query's jsonp callback index, which must be a
// small decimal number (the 0.9 client's io.j array index): anything else
// would be script injection.
func jsonpIndex(r *http.Request) (idx string, ok bool) {
	idx = r.URL.Query().Get("jsonp")
	if idx == "" {
		return "", true
	}
	if len(idx) > 6 {
		return "", false
	}
	for _, c := range idx {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return idx, true
}

// fail answers an HTTP request with an error. For a JSONP request it
// answers 200 with a script calling back with an Error, as 0.9 servers do,
// since a browser does not run a script answered with an error status.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	cors(w, r)
	if idx, ok := jsonpIndex(r); ok && idx != "" {
		js, _ := json.Marshal(msg)
		w.Header().Set("Content-Type", "application/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "io.j[%s](new Error(%s));", idx, js)
		return
	}
	http.Error(w, msg, code)
}

// handshake answers "GET /socket.io/1/" with "<sid>:<heartbeat>:<close>:websocket".
func (s *Server) handshake(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodOptions:
		cors(w, r)
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		} else {
			h.Set("Access-Control-Allow-Headers", "Content-Type")
		}
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet:
	default:
		w.Header().Set("Allow", "GET, OPTIONS")
		s.fail(w, r, http.StatusMethodNotAllowed, "socket.io: the handshake is a GET")
		return
	}
	idx, ok := jsonpIndex(r)
	if !ok {
		s.fail(w, r, http.StatusBadRequest, "socket.io: jsonp must be a callback index (a number)")
		return
	}
	sid, err := s.newSession()
	if err != nil {
		s.log.Warn("socketio: handshake refused", "addr", r.RemoteAddr, "err", err)
		s.fail(w, r, http.StatusServiceUnavailable, "socket.io: "+strings.TrimPrefix(err.Error(), "socketio: "))
		return
	}
	body := s.handshakeBody(sid)
	s.log.Debug("socketio: handshake", "sid", sid, "addr", r.RemoteAddr)
	cors(w, r)
	w.Header().Set("Cache-Control", "no-store")
	if idx != "" {
		w.Header().Set("Content-Type", "application/javascript; charset=utf-8")
		fmt.Fprintf(w, "io.j[%s](%q);", idx, body)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, body)
}

// Handshake makes a session as a handshake request does, under the same
// cap on sessions not yet connected, and returns the handshake's answer,
// "<sid>:<heartbeat>:<close>:websocket": for a page its server hands a
// session, whose WebSocket then opens without a handshake request first.
func (s *Server) Handshake() (string, error) {
	sid, err := s.newSession()
	if err != nil {
		return "", err
	}
	return s.handshakeBody(sid), nil
}

func (s *Server) handshakeBody(sid string) string {
	return fmt.Sprintf("%s:%d:%d:websocket", sid, seconds(s.cfg.HeartbeatTimeout), seconds(s.cfg.CloseTimeout))
}

// seconds rounds d up to whole seconds, at least 1: the handshake
// announces seconds and the client treats 0 as "no timeout".
func seconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

var errTooManyPending = errors.New("socketio: too many pending handshakes, try again later")

// newSession records a fresh sid that may connect within HandshakeTimeout.
func (s *Server) newSession() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", ErrServerClosed
	}
	now := time.Now()
	if len(s.pending) >= s.cfg.MaxPending || now.After(s.nextSweep) {
		for sid, exp := range s.pending {
			if now.After(exp) {
				delete(s.pending, sid)
			}
		}
		s.nextSweep = now.Add(s.cfg.HandshakeTimeout)
	}
	if len(s.pending) >= s.cfg.MaxPending {
		return "", errTooManyPending
	}
	for {
		sid := newSID()
		if _, dup := s.pending[sid]; dup {
			continue
		}
		if _, dup := s.sockets[sid]; dup {
			continue
		}
		s.pending[sid] = now.Add(s.cfg.HandshakeTimeout)
		return sid, nil
	}
}

// newSID returns 20 URL-safe characters holding 120 random bits.
func newSID() string {
	var b [15]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// claim consumes a handshaken sid: each may connect once, before it expires.
func (s *Server) claim(sid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.pending[sid]
	delete(s.pending, sid)
	return ok && !time.Now().After(exp)
}

// register adds a connected socket unless the server is closing.
func (s *Server) register(so *Socket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sockets[so.id] = so
	return true
}

func (s *Server) unregister(so *Socket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sockets, so.id)
}

var (
	connectPacket       = []byte("1::")
	disconnectPacket    = []byte("0::")
	heartbeatPacket     = []byte("2::")
	notHandshakenPacket = []byte("7:::1+0") // reason 1 client not handshaken, advice 0 reconnect
)

// serveWebSocket runs one socket: it accepts the WebSocket, sends "1::",
// then becomes the socket's read goroutine until the socket ends.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, sid string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "socket.io: server is shutting down", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	// Any origin may connect: ERS players are served from other origins,
	// and the socket carries no ambient authority (no cookie is read; a
	// viewer proves itself with the token inside its join event), so
	// cross-site WebSocket hijacking gains an attacker nothing it could not
	// get by connecting itself. InsecureSkipVerify says so more plainly
	// than an OriginPatterns of "*".
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		s.log.Debug("socketio: WebSocket upgrade failed", "addr", r.RemoteAddr, "err", err)
		return // Accept has answered
	}
	if !s.claim(sid) {
		s.log.Debug("socketio: WebSocket for an unknown, expired or used sid", "addr", r.RemoteAddr)
		s.refuse(conn)
		return
	}
	conn.SetReadLimit(int64(s.cfg.MaxFrame))

	so := newSocket(s, sid, r.RemoteAddr, conn)
	if err := so.write(so.ctx, connectPacket); err != nil {
		so.cancel()
		conn.CloseNow()
		return
	}
	if !s.register(so) {
		so.cancel()
		conn.CloseNow()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		so.writeLoop(s.cfg.HeartbeatInterval)
	}()
	s.log.Debug("socketio: connected", "sid", sid, "addr", r.RemoteAddr)
	s.h.Connect(so)
	so.readLoop(s.h, s.cfg.HeartbeatTimeout)
	<-so.writerDone
	s.unregister(so)
	s.log.Debug("socketio: disconnected", "sid", sid, "reason", so.reason)
	s.h.Disconnect(so, so.reason)
}

// refuse tells a client whose sid is not valid to handshake again, the way
// 0.9 servers do, and closes the WebSocket.
func (s *Server) refuse(conn *websocket.Conn) {
	// CloseRead answers the client's close frame, and ends when the
	// server's context does.
	conn.CloseRead(s.ctx)
	ctx, cancel := context.WithTimeout(s.ctx, writeTimeout)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, notHandshakenPacket); err != nil {
		conn.CloseNow()
		return
	}
	conn.Close(websocket.StatusPolicyViolation, "session id unknown, expired or already used")
}
