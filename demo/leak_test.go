package demo

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/internal/ersviewer"
	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/mesh"
)

// leakSessionsEnv sets how many sessions TestNoLeakAfterManySessions opens
// (default 100; the full run is 1000).
const leakSessionsEnv = "ERSMESH_LEAK_SESSIONS"

type footprint struct {
	goroutines, fds int
	heapKiB         uint64
}

func measureFootprint() footprint {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fds := -1
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(ents)
	}
	return footprint{goroutines: runtime.NumGoroutine(), fds: fds, heapKiB: m.HeapInuse >> 10}
}

// startSecondBridge runs another bridge on the demo's mesh, in this process.
func startSecondBridge(t *testing.T, d *Demo) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := mesh.New(ctx, mesh.Config{ListenAddrs: loopback, Bootstrap: d.BootstrapAddrs(), Server: true, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bridge.New(bridge.Config{Host: h.Libp2p(), Resolver: mesh.NewResolver(h, mesh.ResolverOptions{}), Logger: testutil.Logger(t),
		// One client address opens every session: no per-address limits.
		Rates: openRates, Limits: openLimits})
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() }) // after the bridge: cleanups run last first
	return testutil.Serve(t, b)
}

// TestNoLeakAfterManySessions opens and closes many sessions through two
// bridges, each played until media flows; four in five leave, the fifth
// is dropped (its socket just closes, as when a browser tab dies). Afterwards the
// process (device, both bridges, the viewers) is back to its goroutines, file
// descriptors and heap of before.
func TestNoLeakAfterManySessions(t *testing.T) {
	n := 100
	if s := os.Getenv(leakSessionsEnv); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number", leakSessionsEnv, s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := Start(ctx, Config{Addr: "127.0.0.1:0", Logger: testutil.Logger(t), TuneBridge: func(c *bridge.Config) {
		c.Rates, c.Limits = openRates, openLimits
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	bridges := []string{d.Bridge, startSecondBridge(t, d)}

	play := func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got := make(chan struct{})
		var once sync.Once
		s, err := ersviewer.Open(ctx, ersviewer.Options{Bridge: bridges[i%2], Room: "demo", Stream: "sample",
			OnTrack: func(tr *webrtc.TrackRemote) {
				for k := 0; k < 20; k++ {
					if _, _, err := tr.ReadRTP(); err != nil {
						return
					}
				}
				once.Do(func() { close(got) })
				for {
					if _, _, err := tr.ReadRTP(); err != nil {
						return
					}
				}
			}})
		if err != nil {
			return err
		}
		defer s.Close()
		select {
		case <-got:
		case err := <-s.Failed():
			return err
		case <-ctx.Done():
			return errors.New("no media within 30 s")
		}
		if i%5 != 4 {
			return s.Leave(ctx)
		}
		return nil // the socket just closes
	}
	settle := func() footprint {
		deadline := time.Now().Add(20 * time.Second)
		for len(d.Device().Viewers()) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if v := d.Device().Viewers(); len(v) > 0 {
			t.Fatalf("device still has %d viewers", len(v))
		}
		time.Sleep(500 * time.Millisecond)
		return measureFootprint()
	}

	// Warm up: first sessions fill caches (DHT lookups, connections
	// between the hosts, pools) that stay.
	for i := range 4 {
		if err := play(i); err != nil {
			t.Fatalf("warm-up session %d: %v", i, err)
		}
	}
	base := settle()
	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := play(i); err != nil {
					errs <- err
				}
			}
		})
	}
	start := time.Now()
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed == 0 {
			t.Errorf("a session failed: %v", err)
		}
		failed++
	}
	elapsed := time.Since(start)

	// Goroutines and descriptors end within moments of a session; give
	// timers (ICE, DTLS, TURN allocations) a few seconds to run out.
	var after footprint
	deadline := time.Now().Add(30 * time.Second)
	for {
		after = settle()
		if after.goroutines <= base.goroutines+leakSlackGoroutines && after.fds <= base.fds+leakSlackFDs &&
			after.heapKiB <= base.heapKiB+leakSlackHeapKiB || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d sessions through 2 bridges in %v (%d failed): goroutines %d → %d, fds %d → %d, heap %d → %d KiB",
		n, elapsed.Round(time.Millisecond), failed, base.goroutines, after.goroutines, base.fds, after.fds, base.heapKiB, after.heapKiB)
	if after.goroutines > base.goroutines+leakSlackGoroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines %d after the sessions, %d before\n%s", after.goroutines, base.goroutines, buf[:runtime.Stack(buf, true)])
	}
	if after.fds > base.fds+leakSlackFDs {
		t.Errorf("file descriptors %d after the sessions, %d before", after.fds, base.fds)
	}
	if after.heapKiB > base.heapKiB+leakSlackHeapKiB {
		t.Errorf("heap %d KiB after the sessions, %d KiB before", after.heapKiB, base.heapKiB)
	}
}

// One client address opens every session: no per-address limits.
var (
	openRates  = bridge.Rates{Joins: -1, Messages: -1, Candidates: -1}
	openLimits = limit.Config{PerIP: -1, PerSubnet: -1, HandshakeRate: -1}
)

// What may differ after the sessions without being a leak: a few
// goroutines of libp2p's and pion's that come and go on their own
// schedules, and heap the runtime has not returned.
const (
	leakSlackGoroutines = 8
	leakSlackFDs        = 4
	leakSlackHeapKiB    = 4 << 10
)
