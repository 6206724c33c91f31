package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/ersviewer"
	"github.com/ersmesh/ersmesh/mesh"
)

// Config of a soak run; zero values take the defaults.
type Config struct {
	Duration time.Duration // default 1 h
	Interval time.Duration // between joins; default 1 s
	Life     time.Duration // how long each viewer plays; default 10 s
	Sample   time.Duration // between samples; default 10 s
	Progress func(format string, args ...any)
}

// Sample is the process's footprint at T seconds into the run.
type Sample struct {
	T          float64 `json:"t"`
	RSSKiB     int     `json:"rssKiB"`
	HeapKiB    uint64  `json:"heapKiB"`
	Goroutines int     `json:"goroutines"`
	FDs        int     `json:"fds"`
	Viewers    int     `json:"viewers"` // the device's sessions at that moment
}

// Result of a run.
type Result struct {
	DurationSec float64  `json:"durationSec"`
	IntervalSec float64  `json:"intervalSec"`
	LifeSec     float64  `json:"lifeSec"`
	Sessions    int      `json:"sessions"`
	Failed      int      `json:"failed"`
	Samples     []Sample `json:"samples"`
	// After is sampled once every viewer has left and the timers ran out.
	After Sample `json:"after"`
}

func (c Config) withDefaults() Config {
	if c.Duration <= 0 {
		c.Duration = time.Hour
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Life <= 0 {
		c.Life = 10 * time.Second
	}
	if c.Sample <= 0 {
		c.Sample = 10 * time.Second
	}
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
	return c
}

// Run soaks for cfg.Duration and returns the samples.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// One client address opens every session: no per-address limits.
	open := bridge.Rates{Joins: -1, Messages: -1, Candidates: -1}
	lim := limit.Config{PerIP: -1, PerSubnet: -1, HandshakeRate: -1}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	d, err := demo.Start(sctx, demo.Config{Addr: "127.0.0.1:0", Logger: quiet, TuneBridge: func(c *bridge.Config) { c.Rates, c.Limits = open, lim }})
	cancel()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	second, stopSecond, err := secondBridge(ctx, d, open, lim, quiet)
	if err != nil {
		return nil, err
	}
	defer stopSecond()
	bridges := []string{d.Bridge, second}

	res := &Result{DurationSec: cfg.Duration.Seconds(), IntervalSec: cfg.Interval.Seconds(), LifeSec: cfg.Life.Seconds()}
	var mu sync.Mutex // guards res.Sessions, res.Failed
	start := time.Now()
	sample := func() Sample {
		s := footprint()
		s.T = time.Since(start).Seconds()
		s.Viewers = len(d.Device().Viewers())
		return s
	}
	res.Samples = append(res.Samples, sample())
	joins := time.NewTicker(cfg.Interval)
	defer joins.Stop()
	samples := time.NewTicker(cfg.Sample)
	defer samples.Stop()
	end := time.NewTimer(cfg.Duration)
	defer end.Stop()
	var wg sync.WaitGroup
	n := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end.C:
			break loop
		case <-samples.C:
			s := sample()
			res.Samples = append(res.Samples, s)
			mu.Lock()
			cfg.Progress("soak: %3.0f s: %d sessions (%d failed), %d viewers, RSS %d MiB, %d goroutines, %d fds",
				s.T, res.Sessions, res.Failed, s.Viewers, s.RSSKiB>>10, s.Goroutines, s.FDs)
			mu.Unlock()
		case <-joins.C:
			i := n
			n++
			wg.Go(func() {
				err := play(ctx, bridges[i%2], cfg.Life, i%5 == 4)
				mu.Lock()
				res.Sessions++
				if err != nil {
					res.Failed++
				}
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	// Sessions end at once; ICE, DTLS and socket timers run out within
	// seconds.
	deadline := time.Now().Add(30 * time.Second)
	for len(d.Device().Viewers()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(5 * time.Second)
	res.After = sample()
	return res, ctx.Err()
}

// play is one viewer: join, play for life, leave (or drop the socket).
func play(ctx context.Context, bridgeURL string, life time.Duration, drop bool) error {
	ctx, cancel := context.WithTimeout(ctx, life+30*time.Second)
	defer cancel()
	got := make(chan struct{})
	var once sync.Once
	s, err := ersviewer.Open(ctx, ersviewer.Options{Bridge: bridgeURL, Room: "demo", Stream: "sample",
		OnTrack: func(tr *webrtc.TrackRemote) {
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				once.Do(func() { close(got) })
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
		return errors.New("no media")
	}
	t := time.NewTimer(life)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	if drop {
		return nil // the socket just closes
	}
	return s.Leave(ctx)
}

func secondBridge(ctx context.Context, d *demo.Demo, rates bridge.Rates, lim limit.Config, log *slog.Logger) (string, func(), error) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	h, err := mesh.New(sctx, mesh.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: d.BootstrapAddrs(), Server: true, Logger: log})
	if err != nil {
		return "", nil, err
	}
	b, err := bridge.New(bridge.Config{Host: h.Libp2p(), Resolver: mesh.NewResolver(h, mesh.ResolverOptions{}), Rates: rates, Limits: lim, Logger: log})
	if err != nil {
		h.Close()
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.Close()
		return "", nil, err
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	return "http://" + l.Addr().String(), func() {
		b.Close()
		<-served
		h.Close()
	}, nil
}

// footprint reads the process's resident set (Linux), heap, goroutines and
// descriptors.
func footprint() Sample {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := Sample{HeapKiB: m.HeapInuse >> 10, Goroutines: runtime.NumGoroutine(), RSSKiB: -1, FDs: -1}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.FDs = len(ents)
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					s.RSSKiB, _ = strconv.Atoi(f[0])
				}
			}
		}
	}
	return s
}

// String summarises a result in one line.
func (r *Result) String() string {
	first := r.Samples[0]
	return fmt.Sprintf("%d sessions (%d failed) over %.0f s; RSS %d → %d MiB, goroutines %d → %d, fds %d → %d after all left",
		r.Sessions, r.Failed, r.DurationSec, first.RSSKiB>>10, r.After.RSSKiB>>10, first.Goroutines, r.After.Goroutines, first.FDs, r.After.FDs)
}
