package bridge_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/demo"
)

// lockedBuf is a log sink the bridge's goroutines share.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// TestRefusalFloodLogsLittle plays a client that handshakes as fast as it
// can: every handshake over the rate is refused and counted, but the log
// gets a line or two, not one per refusal.
func TestRefusalFloodLogsLittle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs lockedBuf
	d, err := demo.Start(ctx, demo.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		TuneBridge: func(c *bridge.Config) { c.Limits.HandshakeRate, c.Limits.HandshakeBurst = 0.001, 1 }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	base := baseOf(t, d.URL)
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	refused := 0
	for range 300 {
		resp, err := hc.Get(base + "/socket.io/1/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused < 290 {
		t.Fatalf("%d of 300 handshakes refused at a burst of 1", refused)
	}
	if n := logs.count("refused a client"); n < 1 || n > 3 {
		t.Fatalf("%d log lines for %d refusals from one client, want one or two", n, refused)
	}
}
