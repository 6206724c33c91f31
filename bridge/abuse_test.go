package bridge_test

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/bridge/socketio"
	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/internal/sioclient"
)

// TestMessageFlood: candidates and other messages beyond their rates are
// dropped with an error packet; the socket stays open and served.
func TestMessageFlood(t *testing.T) {
	base := startTuned(t, func(c *bridge.Config) { c.Rates = bridge.Rates{Candidates: 20, Messages: 5} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, base)
	const n = 200
	for range n {
		if err := c.Emit(ctx, "message", map[string]any{"type": "candidate", "payload": map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		c.Emit(ctx, "message", map[string]any{"type": "answer", "payload": map[string]any{}})
	}
	limited, other := 0, 0
	for limited+other < n+20 {
		p, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("after %d rate-limited and %d other errors: %v", limited, other, err)
		}
		if p.Type != socketio.PacketError {
			continue
		}
		if strings.Contains(p.Data, "rate limited") {
			limited++
		} else {
			other++ // "join a room first": within the rate, refused for its own reason
		}
	}
	// 40 candidates and 5 answers of burst, plus what refilled meanwhile.
	if limited < n-100 {
		t.Errorf("%d of %d flooded messages rate limited", limited, n+20)
	}
	t.Logf("%d rate limited, %d refused otherwise", limited, other)
	if ack, err := c.EmitAck(ctx, ersproto.EventJoin, "nobody"); err != nil || len(ack) != 2 {
		t.Fatalf("join after the flood: %s %v", ack, err)
	}
}

// TestRejoinLoop: an ERS player looping on an empty room is paced with late
// acks, never an error, and every join is answered.
func TestRejoinLoop(t *testing.T) {
	base := startTuned(t, func(c *bridge.Config) { c.Rates.Joins = 20 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, base)
	for i := range 40 {
		ack, err := c.EmitAck(ctx, ersproto.EventJoin, "empty-room")
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		if len(ack) != 2 || string(ack[0]) != "null" || compact(ack[1]) != `{"clients":{}}` {
			t.Fatalf("join %d acked %s", i, ack)
		}
	}
}

func TestConnectionCap(t *testing.T) {
	base := startTuned(t, func(c *bridge.Config) { c.Limits = limit.Config{PerIP: 3, HandshakeRate: -1} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cs []*sioclient.Client
	for range 3 {
		cs = append(cs, dial(t, ctx, base))
	}
	if c, err := sioclient.Dial(ctx, base, nil); err == nil {
		c.Close()
		t.Fatal("a fourth socket from one address was accepted with a cap of 3")
	} else if !strings.Contains(err.Error(), "429") {
		t.Errorf("refusal %v, want HTTP 429", err)
	}
	cs[0].Close()
	// The slot frees when the bridge has seen the socket end.
	for {
		c, err := sioclient.Dial(ctx, base, nil)
		if err == nil {
			c.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatal("slot never freed after a socket closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOriginAllowList(t *testing.T) {
	base := startTuned(t, func(c *bridge.Config) { c.Limits.AllowedOrigins = []string{"https://cams.example"} })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := sioclient.DoHandshake(ctx, base, &sioclient.Options{Header: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("foreign origin: %v, want 403", err)
	}
	for _, origin := range []string{"https://cams.example", base, ""} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		if _, err := sioclient.DoHandshake(ctx, base, &sioclient.Options{Header: h}); err != nil {
			t.Errorf("origin %q: %v", origin, err)
		}
	}
}

// TestIdleHandshakes: thousands of handshakes never followed by a socket
// are bounded by MaxPending and expire; an honest viewer is served after,
// and memory stays bounded.
func TestIdleHandshakes(t *testing.T) {
	base := startTuned(t, func(c *bridge.Config) {
		c.Limits.HandshakeRate = -1
		c.Socket.MaxPending = 1000
		// Long enough that the flood outlasts no handshake even on a
		// loaded machine: the cap, not the expiry, must refuse.
		c.Socket.HandshakeTimeout = 3 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	const n = 3000
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer hc.CloseIdleConnections()
	var mu sync.Mutex
	refused := 0
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := sioclient.DoHandshake(ctx, base, &sioclient.Options{HTTPClient: hc}); err != nil {
				mu.Lock()
				refused++
				mu.Unlock()
				if !strings.Contains(err.Error(), "503") {
					t.Errorf("refusal %v, want 503", err)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d of %d idle handshakes refused with MaxPending 1000", refused, n)
	if refused == 0 {
		t.Error("no handshake refused beyond MaxPending")
	}
	// After the handshake timeout the table empties, and a viewer gets in.
	for {
		c, err := sioclient.Dial(ctx, base, nil)
		if err == nil {
			if ack, err := c.EmitAck(ctx, ersproto.EventJoin, "nobody"); err != nil || len(ack) != 2 {
				t.Errorf("honest join: %s %v", ack, err)
			}
			c.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("honest viewer never admitted: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("heap %d KiB before, %d KiB after %d handshakes", before.HeapAlloc>>10, after.HeapAlloc>>10, n)
}
