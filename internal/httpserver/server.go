package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Timeouts every server uses. WebSockets, once upgraded, are timed by the
// Socket.IO heartbeat instead.
const (
	ReadHeaderTimeout = 10 * time.Second // headers must arrive promptly
	IdleTimeout       = 90 * time.Second // an idle keep-alive connection is let go
	MaxHeaderBytes    = 16 << 10
	// ShutdownGrace is how long Close lets requests in flight finish
	// before it cuts every connection (those that never sent a request,
	// which http.Server.Shutdown would wait on for seconds, included).
	ShutdownGrace = 2 * time.Second
)

// Config of one server.
type Config struct {
	// Name says what the server is in errors and logs; it is the config
	// key of its address ("http", "admin", "ops"), so that an error names
	// the key to fix.
	Name    string
	Addr    string // host:port; port 0 lets the kernel choose
	Handler http.Handler
	Logger  *slog.Logger // nil: slog.Default(); the server's own errors go to it at debug level
}

// Server is one HTTP listener. Create it with New, then Start; Close it
// once started or not.
type Server struct {
	cfg Config
	srv *http.Server

	mu      sync.Mutex // guards addr, started, closed
	addr    string
	started bool
	closed  bool
	done    chan error // the serving goroutine's result
	once    sync.Once
	err     error // of Close
}

// New returns a server that does not listen yet.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{
		cfg: cfg,
		srv: &http.Server{
			Handler:           cfg.Handler,
			ReadHeaderTimeout: ReadHeaderTimeout,
			IdleTimeout:       IdleTimeout,
			MaxHeaderBytes:    MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		},
		done: make(chan error, 1),
	}
}

// Start listens on the address and serves until Close. Its error names
// the server's config key and address.
func (s *Server) Start() error {
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("--%s %s: %w", s.cfg.Name, s.cfg.Addr, err)
	}
	return s.Serve(l)
}

// Serve serves on l (which it then owns) until Close, for callers that
// listen themselves.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.started {
		l.Close()
		return fmt.Errorf("%s server: started twice or after Close", s.cfg.Name)
	}
	s.started = true
	s.addr = l.Addr().String()
	go func() { s.done <- s.srv.Serve(l) }()
	return nil
}

// Addr is the address served ("" before Start, or on a nil Server): the
// kernel's choice when the port was 0.
func (s *Server) Addr() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops serving: requests in flight get ShutdownGrace to finish,
// then every connection is cut. It waits for the serving goroutine and
// may be called more than once.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		started := s.started
		s.mu.Unlock()
		if !started {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.cfg.Logger.Debug("HTTP connections cut at shutdown", "server", s.cfg.Name, "err", err)
			s.srv.Close()
		}
		if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
			s.err = fmt.Errorf("%s server: %w", s.cfg.Name, err)
		}
	})
	return s.err
}
