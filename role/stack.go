package role

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/ersmesh/ersmesh/internal/httpserver"
)

// stack is what a role started, closed newest first. A role pushes each
// part as it starts it, so a constructor that fails halfway, and Close,
// undo exactly what was done: no cleanup path is written by hand.
type stack struct {
	mu     sync.Mutex
	closed bool
	fns    []func() error
	once   sync.Once
	err    error
}

// push adds f to be called at close. After close it calls f at once.
func (s *stack) push(f func() error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		f()
		return
	}
	s.fns = append(s.fns, f)
	s.mu.Unlock()
}

// close calls every pushed function, newest first, once; later calls
// return the first call's error.
func (s *stack) close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		fns := s.fns
		s.fns = nil
		s.mu.Unlock()
		var errs []error
		for i := len(fns) - 1; i >= 0; i-- {
			errs = append(errs, fns[i]())
		}
		s.err = errors.Join(errs...)
	})
	return s.err
}

// serve starts an HTTP server named name (its address's config key) on
// addr and pushes its Close; addr "" means none (nil, whose Addr is "").
func (s *stack) serve(name, addr string, h http.Handler, log *slog.Logger) (*httpserver.Server, error) {
	if addr == "" {
		return nil, nil
	}
	srv := httpserver.New(httpserver.Config{Name: name, Addr: addr, Handler: h, Logger: log})
	if err := srv.Start(); err != nil {
		return nil, err
	}
	s.push(srv.Close)
	log.Info("serving", "endpoint", name, "http", srv.Addr())
	return srv, nil
}
