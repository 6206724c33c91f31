package meshsim

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/internal/bench/benchstat"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/room"
)

// Config of one simulation. Zero values give the defaults of
// `ersmesh-bench mesh`.
type Config struct {
	N              int           // nodes, all DHT servers
	Latency        time.Duration // one-way link latency; default 40 ms
	Rooms          int           // rooms published by distinct devices; default 20
	LookupsPerRoom int           // cold lookups per room from distinct bridges; default 3
	Churn          float64       // fraction of nodes killed; default 0.3
	ChurnWindow    time.Duration // how long lookups are watched after the kill; default 20 s
	ChurnEvery     time.Duration // one round of lookups every; default 2 s
	OfflineTTL     time.Duration // record TTL of the device that goes offline; default 15 s
	JoinParallel   int           // nodes joining at once while the mesh forms; default 16
	Seed           uint64        // of the random choices; default 1
	Logger         *slog.Logger  // of the nodes; default discards
	Progress       func(format string, args ...any)
}

func (c *Config) defaults() {
	if c.Latency == 0 {
		c.Latency = 40 * time.Millisecond
	}
	if c.Rooms == 0 {
		c.Rooms = 20
	}
	if c.LookupsPerRoom == 0 {
		c.LookupsPerRoom = 3
	}
	if c.Churn == 0 {
		c.Churn = 0.3
	}
	if c.ChurnWindow == 0 {
		c.ChurnWindow = 20 * time.Second
	}
	if c.ChurnEvery == 0 {
		c.ChurnEvery = 2 * time.Second
	}
	if c.OfflineTTL == 0 {
		c.OfflineTTL = 15 * time.Second
	}
	if c.JoinParallel == 0 {
		c.JoinParallel = 16
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
}

// Op is one measured publication or lookup.
type Op struct {
	Millis float64 `json:"ms"`
	Msgs   int     `json:"msgs"`          // DHT requests sent
	Hops   int     `json:"hops"`          // to the first record holder that answered; -1 unknown
	Dials  int     `json:"dials"`         // new connections the query opened
	OK     bool    `json:"ok"`            // found the right device (or published)
	Err    string  `json:"err,omitempty"` // why not
}

// Round is one round of lookups after the kill.
type Round struct {
	AtMillis float64 `json:"at_ms"` // since the kill
	Lookups  []Op    `json:"lookups"`
}

// Result of one simulation.
type Result struct {
	N                    int               `json:"n"`
	LatencyMillis        float64           `json:"latency_ms"` // one way
	BuildSeconds         float64           `json:"build_s"`
	HeapMiB              float64           `json:"heap_mib"` // live heap after the mesh formed
	RSSMiB               float64           `json:"rss_mib"`
	Goroutines           int               `json:"goroutines"`
	RoutingTable         benchstat.Summary `json:"routing_table"` // peers per node
	RecordHolders        benchstat.Summary `json:"record_holders"`
	Publish              []Op              `json:"publish"`
	Resolve              []Op              `json:"resolve"`
	Silenced             int               `json:"silenced"`
	Silent               []Round           `json:"silent"` // rounds while they were silent
	SilentRecoveredAfter float64           `json:"silent_recovered_after_ms"`
	Killed               int               `json:"killed"`
	KillMillis           float64           `json:"kill_ms"` // killing them took
	Churn                []Round           `json:"churn"`
	RecoveredAfter       float64           `json:"recovered_after_ms"` // -1: not within the window
	Offline              Offline           `json:"offline"`
}

// Offline is how long a device that stopped stays visible.
type Offline struct {
	TTLMillis        float64 `json:"ttl_ms"`           // the record's time to live
	ExpiresAfter     float64 `json:"expires_after_ms"` // record expiry, counted from the kill
	GoneAfter        float64 `json:"gone_after_ms"`    // first lookup that no longer found it; -1 never
	LastSeenAfter    float64 `json:"last_seen_after_ms"`
	LookupsAfterKill int     `json:"lookups"`
}

// Run builds a mesh of cfg.N nodes and measures it.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.N)))
	res := &Result{N: cfg.N, LatencyMillis: float64(cfg.Latency) / float64(time.Millisecond), RecoveredAfter: -1}

	cfg.Progress("mesh n=%d: building", cfg.N)
	t0 := time.Now()
	s, err := Build(ctx, cfg.N, cfg.JoinParallel, cfg.Logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		// Bounded: a benchmark that measured everything should not hang
		// on tearing down hundreds of hosts.
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			cfg.Progress("mesh n=%d: closing the simulated mesh takes over 2 minutes; leaving it", cfg.N)
		}
	}()
	res.BuildSeconds = time.Since(t0).Seconds()
	s.SetLatency(cfg.Latency)
	res.HeapMiB, res.RSSMiB = memory()
	res.Goroutines = runtime.NumGoroutine()
	var rt []float64
	for _, n := range s.Nodes {
		rt = append(rt, float64(n.DHT().RoutingTable().Size()))
	}
	res.RoutingTable = benchstat.Summarize(rt)
	cfg.Progress("mesh n=%d: built in %.1fs, heap %.0f MiB, routing table median %.0f", cfg.N, res.BuildSeconds, res.HeapMiB, res.RoutingTable.Median)

	// Publish: distinct devices, one room each, one after the other.
	perm := rng.Perm(cfg.N)
	rooms := min(cfg.Rooms, cfg.N/3)
	devices := perm[:rooms]
	isDevice := map[int]bool{}
	names := make([]string, rooms)
	holders := make([]map[peer.ID]bool, rooms)
	var holderCounts []float64
	for i, d := range devices {
		isDevice[d] = true
		names[i] = "sim-" + strconv.Itoa(i)
		tr := newTracer(nil)
		pctx, cancel := context.WithCancel(ctx)
		start := time.Now()
		_, err := s.Nodes[d].Publish(tr.attach(pctx, ""), []string{names[i]}, 5*time.Minute)
		dur := time.Since(start)
		cancel()
		msgs, _, dials := tr.wait()
		op := Op{Millis: ms(dur), Msgs: msgs, Hops: -1, Dials: dials, OK: err == nil}
		if err != nil {
			op.Err = err.Error()
		}
		res.Publish = append(res.Publish, op)
		holders[i] = s.holders(ctx, d, names[i])
		holderCounts = append(holderCounts, float64(len(holders[i])))
	}
	res.RecordHolders = benchstat.Summarize(holderCounts)
	cfg.Progress("mesh n=%d: published %d rooms, median %.0f ms, %v holders", cfg.N, rooms, benchstat.Summarize(opMillis(res.Publish)).Median, res.RecordHolders.Median)

	// Cold lookups: a fresh Resolver (empty cache) on a node that is not
	// the room's device, one lookup at a time so they do not share CPU.
	for i := range rooms {
		for _, b := range pick(rng, cfg.N, cfg.LookupsPerRoom, func(j int) bool { return j != devices[i] }) {
			res.Resolve = append(res.Resolve, s.lookup(ctx, b, names[i], s.Nodes[devices[i]].ID(), holders[i]))
		}
	}
	base := benchstat.Summarize(opMillis(res.Resolve)).Median
	cfg.Progress("mesh n=%d: %d cold lookups, median %.0f ms", cfg.N, len(res.Resolve), base)

	// A device goes offline: how long do lookups still return it?
	off := pick(rng, cfg.N, 1, func(j int) bool { return !isDevice[j] && j >= bootstrapNodes })[0]
	isDevice[off] = true
	res.Offline, err = s.offline(ctx, rng, off, cfg.OfflineTTL)
	if err != nil {
		return nil, err
	}
	cfg.Progress("mesh n=%d: offline device gone after %.1fs (record expired after %.1fs)", cfg.N, res.Offline.GoneAfter/1000, res.Offline.ExpiresAfter/1000)

	// Silent churn first: a fraction of the nodes stop answering without
	// closing anything (a power cut, a partition), so queries to them get
	// no error, only silence; then the network heals.
	silent := pick(rng, cfg.N, int(cfg.Churn*float64(cfg.N)), func(j int) bool { return !isDevice[j] })
	res.Silenced = len(silent)
	for _, v := range silent {
		s.Silence(v, true, cfg.Latency)
	}
	cfg.Progress("mesh n=%d: %d nodes silenced", cfg.N, len(silent))
	res.Silent, res.SilentRecoveredAfter, err = s.rounds(ctx, cfg, rng, "silent", time.Now(), base, devices, names, holders)
	if err != nil {
		return nil, err
	}
	for _, v := range silent {
		s.Silence(v, false, cfg.Latency)
	}
	// Let the requests stuck on silenced peers time out.
	if err := sleepUntil(ctx, time.Now().Add(cfg.ChurnEvery)); err != nil {
		return nil, err
	}

	// Then kill a fraction of the nodes (never the rooms' devices: their
	// rooms would rightly vanish), then look every room up again in rounds.
	victims := pick(rng, cfg.N, int(cfg.Churn*float64(cfg.N)), func(j int) bool { return !isDevice[j] })
	res.Killed = len(victims)
	// One at a time, for the reason given at Sim.Close; the rounds count
	// from the last kill.
	killStart := time.Now()
	for _, v := range victims {
		if err := s.Kill(v); err != nil {
			return nil, err
		}
	}
	killAt := time.Now()
	res.KillMillis = ms(killAt.Sub(killStart))
	cfg.Progress("mesh n=%d: killed %d nodes in %.0f ms", cfg.N, len(victims), res.KillMillis)
	res.Churn, res.RecoveredAfter, err = s.rounds(ctx, cfg, rng, "churn", killAt, base, devices, names, holders)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// rounds looks every room up from random reachable nodes every
// cfg.ChurnEvery for cfg.ChurnWindow from start. recovered is the time of
// the first round where every lookup succeeded with a median within 1.25
// times base; -1 if none.
func (s *Sim) rounds(ctx context.Context, cfg Config, rng *rand.Rand, what string, start time.Time, base float64,
	devices []int, names []string, holders []map[peer.ID]bool) (out []Round, recovered float64, err error) {
	recovered = -1
	for round := 0; ; round++ {
		at := start.Add(time.Duration(round) * cfg.ChurnEvery)
		if round > 0 && at.Sub(start) > cfg.ChurnWindow {
			return out, recovered, nil
		}
		if err := sleepUntil(ctx, at); err != nil {
			return nil, -1, err
		}
		r := Round{AtMillis: ms(time.Since(start))}
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := range names {
			b := pick(rng, cfg.N, 1, func(j int) bool { return j != devices[i] && s.Reachable(j) })[0]
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				op := s.lookup(ctx, b, names[i], s.Nodes[devices[i]].ID(), holders[i])
				mu.Lock()
				r.Lookups = append(r.Lookups, op)
				mu.Unlock()
			})
		}
		wg.Wait()
		out = append(out, r)
		okCount, med := 0, benchstat.Summarize(opMillis(r.Lookups)).Median
		for _, op := range r.Lookups {
			if op.OK {
				okCount++
			}
		}
		if recovered < 0 && okCount == len(r.Lookups) && med <= 1.25*base {
			recovered = r.AtMillis
		}
		cfg.Progress("mesh n=%d: %s round at %.1fs: %d/%d found, median %.0f ms", cfg.N, what, r.AtMillis/1000, okCount, len(r.Lookups), med)
	}
}

// lookup resolves name from node b with a cold cache.
func (s *Sim) lookup(ctx context.Context, b int, name string, want peer.ID, holders map[peer.ID]bool) Op {
	tr := newTracer(holders)
	r := mesh.NewResolver(s.Nodes[b], mesh.ResolverOptions{QueryContext: tr.attach})
	start := time.Now()
	info, err := r.Resolve(ctx, name)
	dur := time.Since(start)
	msgs, hops, dials := tr.wait()
	if holders[s.Nodes[b].ID()] {
		hops = 0 // kad-dht looks in its own store first
	}
	op := Op{Millis: ms(dur), Msgs: msgs, Hops: hops, Dials: dials, OK: err == nil && info.ID == want}
	switch {
	case err != nil:
		op.Err = err.Error()
	case info.ID != want:
		op.Err = fmt.Sprintf("resolved to %s, want %s", info.ID, want)
	}
	return op
}

// holders asks every live node, from node via, whether it stores the
// record of name. It is bookkeeping for hop counts, not part of a
// measurement.
func (s *Sim) holders(ctx context.Context, via int, name string) map[peer.ID]bool {
	pm, err := pb.NewProtocolMessenger(s.Nodes[via].DHT().MessageSender())
	if err != nil {
		return nil
	}
	key := room.Key(name)
	out := map[peer.ID]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, n := range s.Nodes {
		if !s.Alive(i) {
			continue
		}
		if i == via {
			out[n.ID()] = true // Publish stores locally first
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			rec, _, err := pm.GetValue(qctx, n.ID(), key)
			if err == nil && rec != nil && len(rec.GetValue()) > 0 {
				mu.Lock()
				out[n.ID()] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// offline publishes a room from node d with a short TTL, kills d, and polls
// lookups from other nodes until the room is gone.
func (s *Sim) offline(ctx context.Context, rng *rand.Rand, d int, ttl time.Duration) (Offline, error) {
	out := Offline{TTLMillis: ms(ttl), GoneAfter: -1, LastSeenAfter: -1}
	name := "offline-device"
	// The record's expiry is set when Publish signs it, just after this.
	pubAt := time.Now()
	if _, err := s.Nodes[d].Publish(ctx, []string{name}, ttl); err != nil {
		return out, fmt.Errorf("meshsim: publish the room of the device that goes offline: %w", err)
	}
	want := s.Nodes[d].ID()
	// Make sure bridges see it before it goes.
	if op := s.lookup(ctx, pick(rng, len(s.Nodes), 1, func(j int) bool { return j != d && s.Alive(j) })[0], name, want, nil); !op.OK {
		return out, fmt.Errorf("meshsim: the room of the device that goes offline was not found before it went: %s", op.Err)
	}
	if err := sleepUntil(ctx, pubAt.Add(time.Second)); err != nil {
		return out, err
	}
	killAt := time.Now()
	if err := s.Kill(d); err != nil {
		return out, err
	}
	out.ExpiresAfter = ms(pubAt.Add(ttl).Sub(killAt))
	limit := killAt.Add(ttl + 10*time.Second)
	for poll := 0; time.Now().Before(limit); poll++ {
		if err := sleepUntil(ctx, killAt.Add(time.Duration(poll)*500*time.Millisecond)); err != nil {
			return out, err
		}
		b := pick(rng, len(s.Nodes), 1, func(j int) bool { return s.Alive(j) })[0]
		op := s.lookup(ctx, b, name, want, nil)
		out.LookupsAfterKill++
		at := ms(time.Since(killAt))
		if op.OK {
			out.LastSeenAfter = at
			out.GoneAfter = -1
			continue
		}
		if !strings.Contains(op.Err, mesh.ErrNotFound.Error()) {
			continue // a failed lookup is not proof the room is gone
		}
		if out.GoneAfter < 0 {
			out.GoneAfter = at
		}
		// Seen gone twice in a row, a second apart: done.
		if out.GoneAfter >= 0 && at-out.GoneAfter >= 1000 {
			break
		}
	}
	return out, nil
}

// pick returns k distinct random indexes below n that satisfy ok.
func pick(rng *rand.Rand, n, k int, ok func(int) bool) []int {
	var out []int
	for _, i := range rng.Perm(n) {
		if len(out) == k {
			break
		}
		if ok(i) {
			out = append(out, i)
		}
	}
	return out
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func opMillis(ops []Op) []float64 {
	out := make([]float64, 0, len(ops))
	for _, op := range ops {
		out = append(out, op.Millis)
	}
	return out
}

// memory returns the live heap after a collection and the process RSS.
func memory() (heapMiB, rssMiB float64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20), RSSMiB()
}

// RSSMiB is the process's resident set size, from /proc/self/status; 0
// where that file does not exist.
func RSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseFloat(f[0], 64)
				if err == nil {
					return kb / 1024
				}
			}
		}
	}
	return 0
}
