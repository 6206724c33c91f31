package testutil

import (
	"errors"
	"net"
	"net/http"
	"testing"
)

// Server is what Serve runs: a bridge, say.
type Server interface {
	Serve(net.Listener) error
	Close() error
}

// Serve runs s on a loopback port and returns its origin
// (http://127.0.0.1:port). When the test ends it closes s and waits for
// Serve to return, so that nothing it started outlives the test.
func Serve(t testing.TB, s Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}
