package relaybench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/bench/benchstat"
	"github.com/ersmesh/ersmesh/internal/relayviewer"
	"github.com/ersmesh/ersmesh/node"
)

// Config of a run; zero values take the defaults.
type Config struct {
	Viewers     int           // default 200
	BudgetMbit  float64       // the device's uplink budget; default 10
	MaxChildren int           // what each viewer offers to relay; default 3
	Measure     time.Duration // how long arrivals are measured once all joined; default 10 s
	Parallel    int           // viewers joining at once; default 8
	// Source is the device's stream (a media source spec, media.OpenStreams);
	// default "sample:", the built-in clip.
	Source   string
	Progress func(format string, args ...any)
}

func (c Config) withDefaults() Config {
	if c.Viewers <= 0 {
		c.Viewers = 200
	}
	if c.BudgetMbit <= 0 {
		c.BudgetMbit = 10
	}
	if c.MaxChildren <= 0 {
		c.MaxChildren = 3
	}
	if c.Measure <= 0 {
		c.Measure = 10 * time.Second
	}
	if c.Parallel <= 0 {
		c.Parallel = 8
	}
	if c.Source == "" {
		c.Source = "sample:"
	}
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
	return c
}

// Depth is what the viewers at one depth saw.
type Depth struct {
	Depth   int `json:"depth"`
	Viewers int `json:"viewers"`
	// AddedMs is each unit's arrival at a viewer of this depth minus its
	// first arrival at any direct viewer, in ms.
	AddedMs benchstat.Summary `json:"addedMs"`
	// Missing counts units between a viewer's first and last that it never
	// appended, summed over the depth's viewers.
	Missing int `json:"missing"`
}

// Result of a run.
type Result struct {
	Source      string  `json:"source"`
	Viewers     int     `json:"viewers"`
	Joined      int     `json:"joined"`
	Refused     int     `json:"refused"` // told the room is full, even after retrying
	BudgetMbit  float64 `json:"budgetMbit"`
	MaxChildren int     `json:"maxChildren"`
	Fanout      int     `json:"fanout"`
	MaxDepth    int     `json:"maxDepth"`
	// StreamKbit is the stream's measured rate; DeviceKbit what the device
	// sent its direct viewers during the measurement.
	StreamKbit float64 `json:"streamKbit"`
	DeviceKbit float64 `json:"deviceKbit"`
	Direct     int     `json:"direct"`
	JoinSec    float64 `json:"joinSec"` // time for all to join
	MeasureSec float64 `json:"measureSec"`
	Depths     []Depth `json:"depths"`
	Reports    uint64  `json:"reports"`
	// Ended counts viewers whose session the device ended before the
	// measurement was over (left out of Depths).
	Ended int `json:"ended"`
}

func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d viewers joined (%d refused, %d ended later) in %.0f s; device %d direct, %.0f of %.0f kbit/s; depths:",
		r.Joined, r.Viewers, r.Refused, r.Ended, r.JoinSec, r.Direct, r.DeviceKbit, r.BudgetMbit*1000)
	for _, d := range r.Depths {
		fmt.Fprintf(&b, " %d: %d viewers, +%.0f ms median, +%.0f ms p95;", d.Depth, d.Viewers, d.AddedMs.Median, d.AddedMs.P95)
	}
	return b.String()
}

// Run starts a device, a bridge and a bootstrap in this process, joins the
// viewers and measures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rc := node.RelayConfig{UplinkBudget: cfg.BudgetMbit * 1e6, Depth: node.DefaultRelayDepth, Fanout: node.DefaultRelayFanout}
	d, err := demo.Start(ctx, demo.Config{Listener: ln, Logger: quiet, Source: cfg.Source,
		TuneBridge: func(c *bridge.Config) {
			// One client address opens every session.
			c.Rates = bridge.Rates{Joins: -1, Messages: -1, Candidates: -1}
			c.Limits = limit.Config{PerIP: -1, PerSubnet: -1, HandshakeRate: -1}
		},
		TuneDevice: func(c *node.Config) { c.Relay = rc },
	})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	// The budget counts the stream's measured rate: let it run first.
	time.Sleep(3 * time.Second)
	res := &Result{Source: cfg.Source, Viewers: cfg.Viewers, BudgetMbit: cfg.BudgetMbit, MaxChildren: cfg.MaxChildren, Fanout: rc.Fanout, MaxDepth: rc.Depth}

	api := relayviewer.LoopbackAPI()
	var (
		mu sync.Mutex
		vs []*relayviewer.Viewer
	)
	defer func() {
		for _, v := range vs {
			v.Close()
		}
	}()
	start := time.Now()
	sem := make(chan struct{}, cfg.Parallel)
	var wg sync.WaitGroup
	for i := range cfg.Viewers {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			v, err := join(ctx, d.Bridge, api, cfg.MaxChildren)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Refused++
				cfg.Progress("relay: viewer %d: %v", i, err)
				return
			}
			vs = append(vs, v)
			if len(vs)%25 == 0 {
				cfg.Progress("relay: %d viewers playing", len(vs))
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res.Joined, res.JoinSec = len(vs), time.Since(start).Seconds()
	dev := d.Device()
	time.Sleep(2 * time.Second) // the last joins' GOP bursts
	before := dev.RelayStats("sample")
	t0 := time.Now()
	select {
	case <-time.After(cfg.Measure):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t1 := time.Now()
	after := dev.RelayStats("sample")
	res.MeasureSec = t1.Sub(t0).Seconds()
	res.DeviceKbit = float64(after.Sent-before.Sent) * 8 / res.MeasureSec / 1000
	res.StreamKbit = after.Rate / 1000
	res.Direct = dev.DirectViewers()
	res.Reports = after.Reports
	var live []*relayviewer.Viewer
	for _, v := range vs {
		if v.Err() != nil {
			res.Ended++
			continue
		}
		live = append(live, v)
	}
	res.Depths = measure(live, t0, t1)
	return res, nil
}

// join opens one viewer and waits until it plays; a viewer told the room
// is full (its would-be parents not playing yet) tries again.
func join(ctx context.Context, base string, api *webrtc.API, maxChildren int) (*relayviewer.Viewer, error) {
	var last error
	for try := 0; try < 20; try++ {
		jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		v, err := relayviewer.Open(jctx, relayviewer.Options{Bridge: base, Room: "demo", Stream: "sample", MaxChildren: maxChildren, API: api})
		cancel()
		if err == nil {
			end := time.Now().Add(10 * time.Second)
			for !v.Playing() && time.Now().Before(end) {
				time.Sleep(20 * time.Millisecond)
			}
			if v.Playing() {
				return v, nil
			}
			v.Close()
			err = errors.New("did not play within 10 s")
		}
		last = err
		if !strings.Contains(err.Error(), "room is full") {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil, last
}

// measure groups what the viewers appended between t0 and t1 by depth.
func measure(vs []*relayviewer.Viewer, t0, t1 time.Time) []Depth {
	type viewer struct {
		depth int
		arr   []relayviewer.Arrival
	}
	var all []viewer
	firstDirect := map[uint64]time.Time{}
	for _, v := range vs {
		w := viewer{depth: v.Stats().Depth, arr: v.Arrivals()}
		all = append(all, w)
		if w.depth != 1 {
			continue
		}
		for _, a := range w.arr {
			if f, ok := firstDirect[a.Seq]; !ok || a.At.Before(f) {
				firstDirect[a.Seq] = a.At
			}
		}
	}
	byDepth := map[int]*Depth{}
	samples := map[int][]float64{}
	for _, w := range all {
		dd := byDepth[w.depth]
		if dd == nil {
			dd = &Depth{Depth: w.depth}
			byDepth[w.depth] = dd
		}
		dd.Viewers++
		for i, a := range w.arr {
			if i > 0 {
				dd.Missing += int(a.Seq - w.arr[i-1].Seq - 1)
			}
			if a.At.Before(t0) || a.At.After(t1) {
				continue
			}
			if f, ok := firstDirect[a.Seq]; ok {
				samples[w.depth] = append(samples[w.depth], float64(a.At.Sub(f))/float64(time.Millisecond))
			}
		}
	}
	var out []Depth
	for depth, dd := range byDepth {
		dd.AddedMs = benchstat.Summarize(samples[depth])
		out = append(out, *dd)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Depth < out[j].Depth })
	return out
}
