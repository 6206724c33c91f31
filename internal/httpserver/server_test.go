package httpserver

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestLifecycle: Start serves, Close stops serving, gives the port back,
// waits for the serving goroutine (TestMain checks) and may be repeated.
func TestLifecycle(t *testing.T) {
	s := New(Config{Name: "ops", Addr: "127.0.0.1:0", Logger: quiet(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })})
	if s.Addr() != "" {
		t.Errorf("Addr before Start: %q", s.Addr())
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Errorf("got %q", b)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start accepted")
	}
	// A client that connected and never sent a request does not hold
	// Close for longer than the grace.
	idle, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	t0 := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(t0); d > ShutdownGrace+time.Second {
		t.Errorf("Close took %s", d)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	l, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatalf("port still held after Close: %v", err)
	}
	l.Close()
}

// TestBusyAddressNamesTheKey: the listen error says which key's address
// could not be taken.
func TestBusyAddressNamesTheKey(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := New(Config{Name: "admin", Addr: l.Addr().String(), Handler: http.NotFoundHandler(), Logger: quiet()})
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "--admin "+l.Addr().String()) {
		t.Errorf("Start on a busy address: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of a server that never started: %v", err)
	}
}
