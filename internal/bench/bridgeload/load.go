package bridgeload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ersmesh/ersmesh/bridge/socketio"
	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/internal/bench/benchproc"
	"github.com/ersmesh/ersmesh/internal/bench/benchstat"
	"github.com/ersmesh/ersmesh/internal/sioclient"
	"github.com/ersmesh/ersmesh/role"
)

var discard = slog.New(slog.DiscardHandler)

// Room is the room the sink device serves.
const Room = "load"

// Config of a load run. Zero values give the defaults of `ersmesh-bench bridge`.
type Config struct {
	// Exe and Args start the bridge under test (ServeTarget); the
	// bootstrap multiaddr is appended as "--bootstrap <addr>".
	Exe  string
	Args []string

	Sessions     int           // idle sessions held open; default 10000
	DialParallel int           // concurrent session dials; default 64
	JoinWorkers  int           // sessions joining in a loop; default 64
	JoinTime     time.Duration // default 10 s
	MsgSessions  int           // joined sessions sending messages; default 100
	MsgRate      int           // messages/s in the latency run; default 1000
	MsgTime      time.Duration // of the latency run and of the throughput run; default 10 s
	Progress     func(format string, args ...any)
	// HeapProfile, if set, is where the bridge's heap profile is saved
	// while the idle sessions are open (for go tool pprof).
	HeapProfile string
}

func (c *Config) defaults() {
	set := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	set(&c.Sessions, 10000)
	set(&c.DialParallel, 64)
	set(&c.JoinWorkers, 64)
	set(&c.MsgSessions, 100)
	set(&c.MsgRate, 1000)
	if c.JoinTime == 0 {
		c.JoinTime = 10 * time.Second
	}
	if c.MsgTime == 0 {
		c.MsgTime = 10 * time.Second
	}
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
}

// Result of a load run. Memory and CPU are the bridge process's own.
type Result struct {
	GOMAXPROCS int `json:"bridge_gomaxprocs"`

	Sessions      int     `json:"sessions"`
	DialSeconds   float64 `json:"dial_s"`
	BaseRSSMiB    float64 `json:"base_rss_mib"`
	IdleRSSMiB    float64 `json:"idle_rss_mib"`
	BaseHeapMiB   float64 `json:"base_heap_mib"`
	IdleHeapMiB   float64 `json:"idle_heap_mib"`
	RSSPerSession float64 `json:"rss_per_session_kib"`
	HeapPerSess   float64 `json:"heap_per_session_kib"`
	Goroutines    int     `json:"goroutines_idle"`

	Joins          int64             `json:"joins"`
	JoinFailures   int64             `json:"join_failures"`
	JoinError      string            `json:"join_error,omitempty"` // the first failure
	JoinsPerSecond float64           `json:"joins_per_s"`
	JoinCPUPerJoin float64           `json:"join_cpu_us"`     // bridge CPU time per join
	JoinsPerCore   float64           `json:"joins_per_cpu_s"` // 1 / JoinCPUPerJoin
	JoinLatency    benchstat.Summary `json:"join_latency_ms"` // join sent to ack received

	MsgRate       int               `json:"msg_rate"`
	MsgLatency    benchstat.Summary `json:"msg_latency_ms"` // client send to device arrival, at MsgRate
	MsgLatencies  []float64         `json:"msg_latency_sample_ms"`
	Msgs          int64             `json:"msgs"`
	MsgsOffered   int64             `json:"msgs_offered"` // written by the senders in the unthrottled run
	MsgsPerSecond float64           `json:"msgs_per_s"`   // forwarded to the device, unthrottled
	MsgCPUPerMsg  float64           `json:"msg_cpu_us"`
	MsgsPerCore   float64           `json:"msgs_per_cpu_s"`
}

// Run starts the sink device and the bridge under test and loads it.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	benchproc.RaiseFileLimit()
	// A bootstrap node for the device and the bridge to meet at.
	boot, err := role.NewBootstrap(ctx, role.BootstrapConfig{Mesh: role.MeshConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, Logger: discard})
	if err != nil {
		return nil, fmt.Errorf("start the bootstrap node: %w", err)
	}
	defer boot.Close()
	dev, err := newSinkDevice(ctx, Room, boot.Host().Addrs())
	if err != nil {
		return nil, fmt.Errorf("start the device: %w", err)
	}
	defer dev.Close()

	t, err := startTarget(ctx, cfg, boot.Host().Addrs()[0].String())
	if err != nil {
		return nil, err
	}
	defer t.Stop()
	res := &Result{GOMAXPROCS: 1, Sessions: cfg.Sessions, MsgRate: cfg.MsgRate}
	time.Sleep(time.Second)
	if res.BaseHeapMiB, _, err = t.heap(); err != nil {
		return nil, err
	}
	res.BaseRSSMiB = t.RSS()

	// Idle sessions.
	cfg.Progress("bridge: dialling %d sessions", cfg.Sessions)
	start := time.Now()
	idle, err := dialMany(ctx, t.url, cfg.Sessions, cfg.DialParallel)
	defer closeAll(idle)
	if err != nil {
		return nil, err
	}
	res.DialSeconds = time.Since(start).Seconds()
	time.Sleep(2 * time.Second) // let connect-time garbage go
	if res.IdleHeapMiB, res.Goroutines, err = t.heap(); err != nil {
		return nil, err
	}
	res.IdleRSSMiB = t.RSS()
	if cfg.HeapProfile != "" {
		if err := t.saveProfile("/debug/pprof/heap", cfg.HeapProfile); err != nil {
			return nil, err
		}
	}
	res.RSSPerSession = (res.IdleRSSMiB - res.BaseRSSMiB) * 1024 / float64(cfg.Sessions)
	res.HeapPerSess = (res.IdleHeapMiB - res.BaseHeapMiB) * 1024 / float64(cfg.Sessions)
	cfg.Progress("bridge: %d idle sessions in %.1fs: RSS %.0f→%.0f MiB (%.1f KiB each), heap %.0f→%.0f MiB, %d goroutines",
		cfg.Sessions, res.DialSeconds, res.BaseRSSMiB, res.IdleRSSMiB, res.RSSPerSession, res.BaseHeapMiB, res.IdleHeapMiB, res.Goroutines)

	// Joins of a cached room, with the idle sessions still open.
	workers, err := dialMany(ctx, t.url, cfg.JoinWorkers, cfg.DialParallel)
	defer closeAll(workers)
	if err != nil {
		return nil, err
	}
	if err := joinOnce(ctx, workers[0]); err != nil { // warms the bridge's cache
		return nil, fmt.Errorf("first join: %w", err)
	}
	var joins, fails atomic.Int64
	var firstFail atomic.Pointer[error]
	var lmu sync.Mutex
	var joinLat []time.Duration
	cpu0 := t.CPU()
	start = time.Now()
	jctx, cancel := context.WithDeadline(ctx, start.Add(cfg.JoinTime))
	var wg sync.WaitGroup
	for _, c := range workers {
		wg.Go(func() {
			var mine []time.Duration
			for jctx.Err() == nil {
				t0 := time.Now()
				if err := joinOnce(jctx, c); err != nil {
					if jctx.Err() == nil {
						fails.Add(1)
						firstFail.CompareAndSwap(nil, &err)
					}
					continue
				}
				mine = append(mine, time.Since(t0))
				joins.Add(1)
			}
			lmu.Lock()
			joinLat = append(joinLat, mine...)
			lmu.Unlock()
		})
	}
	wg.Wait()
	cancel()
	elapsed := time.Since(start).Seconds()
	cpu := t.CPU() - cpu0
	res.Joins, res.JoinFailures = joins.Load(), fails.Load()
	res.JoinsPerSecond = float64(res.Joins) / elapsed
	if res.Joins > 0 {
		res.JoinCPUPerJoin = cpu.Seconds() / float64(res.Joins) * 1e6
		res.JoinsPerCore = 1e6 / res.JoinCPUPerJoin
	}
	res.JoinLatency = benchstat.Summarize(benchstat.Millis(joinLat))
	if e := firstFail.Load(); e != nil {
		res.JoinError = (*e).Error()
	}
	cfg.Progress("bridge: %d joins (%d failed: %s) in %.1fs: %.0f/s, %.0f µs bridge CPU each (%.0f per CPU-second), p99 %.1f ms",
		res.Joins, res.JoinFailures, res.JoinError, elapsed, res.JoinsPerSecond, res.JoinCPUPerJoin, res.JoinsPerCore, res.JoinLatency.P99)
	closeAll(workers)
	workers = nil

	// Signalling messages to the device.
	senders, err := dialMany(ctx, t.url, cfg.MsgSessions, cfg.DialParallel)
	defer closeAll(senders)
	if err != nil {
		return nil, err
	}
	for _, c := range senders {
		if err := joinOnce(ctx, c); err != nil {
			return nil, fmt.Errorf("join before sending messages: %w", err)
		}
	}
	// Latency at a steady rate, spread over the sessions.
	m0 := dev.msgs.Load()
	dev.recording(true)
	sent, err := sendMessages(ctx, senders, cfg.MsgRate, cfg.MsgTime)
	if err != nil {
		return nil, err
	}
	if err := dev.await(ctx, m0+sent); err != nil {
		return nil, err
	}
	lat := benchstat.Millis(dev.recording(false))
	res.MsgLatency = benchstat.Summarize(lat)
	res.MsgLatencies = lat
	cfg.Progress("bridge: %d messages at %d/s: latency median %.2f ms, p99 %.2f ms", len(lat), cfg.MsgRate, res.MsgLatency.Median, res.MsgLatency.P99)

	// Throughput, unthrottled.
	// Throughput: the senders write as fast as they can, far faster than
	// one core forwards, so the kernel's socket buffers fill with a
	// backlog (up to megabytes per session on loopback). What counts is
	// what reached the device within the run; the backlog is dropped with
	// the sessions.
	m0, cpu0 = dev.msgs.Load(), t.CPU()
	start = time.Now()
	if res.MsgsOffered, err = sendMessages(ctx, senders, 0, cfg.MsgTime); err != nil {
		return nil, err
	}
	res.Msgs = dev.msgs.Load() - m0
	cpu = t.CPU() - cpu0
	res.MsgsPerSecond = float64(res.Msgs) / time.Since(start).Seconds()
	if res.Msgs > 0 {
		res.MsgCPUPerMsg = cpu.Seconds() / float64(res.Msgs) * 1e6
		res.MsgsPerCore = 1e6 / res.MsgCPUPerMsg
	}
	cfg.Progress("bridge: %d messages unthrottled: %.0f/s, %.1f µs bridge CPU each (%.0f per CPU-second)", res.Msgs, res.MsgsPerSecond, res.MsgCPUPerMsg, res.MsgsPerCore)
	return res, nil
}

// joinOnce joins Room on c and checks the ack names a device.
func joinOnce(ctx context.Context, c *sioclient.Client) error {
	jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	args, err := c.EmitAck(jctx, ersproto.EventJoin, ersproto.JoinArgs(Room, ersproto.Join{StreamName: "sample", Transport: ersproto.TransportSRTP})...)
	if err != nil {
		return err
	}
	if len(args) < 2 || string(args[0]) != "null" {
		return fmt.Errorf("join refused: %s", args)
	}
	var desc ersproto.Room
	if err := json.Unmarshal(args[1], &desc); err != nil || len(desc.Clients) != 1 {
		return fmt.Errorf("join ack names no device: %s", args[1])
	}
	return nil
}

// sendMessages sends ERS candidate messages from every client for d: rate
// per second in total, or as fast as they go for rate 0.
func sendMessages(ctx context.Context, clients []*sioclient.Client, rate int, d time.Duration) (sent int64, _ error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(clients)) / float64(rate))
	}
	var wg sync.WaitGroup
	var count atomic.Int64
	errs := make([]error, len(clients))
	// Read what the bridge sends back, so that a session never stalls on
	// a full receive queue (the bridge would drop it as a slow client),
	// and so that an error packet is reported, not ignored.
	var drain sync.WaitGroup
	bad := make([]error, len(clients))
	for i, c := range clients {
		drain.Go(func() {
			for {
				p, err := c.Next(ctx)
				if err != nil {
					return
				}
				if p.Type == socketio.PacketError && bad[i] == nil {
					bad[i] = fmt.Errorf("the bridge answered a message with an error: %s", p.Data)
				}
			}
		})
	}
	for i, c := range clients {
		wg.Go(func() {
			var tick *time.Ticker
			if interval > 0 {
				// Spread the sessions' ticks over one interval.
				time.Sleep(interval * time.Duration(i) / time.Duration(len(clients)))
				tick = time.NewTicker(interval)
				defer tick.Stop()
			}
			for ctx.Err() == nil {
				if tick != nil {
					select {
					case <-tick.C:
					case <-ctx.Done():
						return
					}
				}
				p, _ := json.Marshal(payload{
					Candidate: "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.2 rport 46154 generation 0",
					SDPMid:    "0", Sent: time.Now().UnixNano(),
				})
				msg := ersproto.Message{Type: ersproto.TypeCandidate, SID: "s" + strconv.Itoa(i), Payload: p}
				// Not ctx: coder/websocket closes the connection when a
				// write's context ends mid-write, and the sessions are
				// used again in the next run.
				wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := c.Emit(wctx, ersproto.EventMessage, msg)
				wcancel()
				if err != nil {
					if ctx.Err() == nil {
						errs[i] = err
					}
					return
				}
				count.Add(1)
			}
		})
	}
	wg.Wait()
	cancel()
	drain.Wait()
	return count.Load(), errors.Join(append(errs, bad...)...)
}

func dialMany(ctx context.Context, url string, n, parallel int) ([]*sioclient.Client, error) {
	out := make([]*sioclient.Client, n)
	errs := make([]error, n)
	sem := make(chan struct{}, parallel)
	// One transport for the handshakes; the WebSockets get their own
	// connections whatever we do.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: parallel}}
	defer hc.CloseIdleConnections()
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			out[i], errs[i] = sioclient.Dial(dctx, url, &sioclient.Options{HTTPClient: hc})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("dial sessions: %w", err)
	}
	return out, nil
}

func closeAll(cs []*sioclient.Client) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range cs {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.Close()
		})
	}
	wg.Wait()
}

// target is the bridge process under test.
type target struct {
	*benchproc.Child
	url, pprof string
}

func startTarget(ctx context.Context, cfg Config, bootstrap string) (*target, error) {
	c, err := benchproc.Start(ctx, cfg.Exe, append(cfg.Args, "--bootstrap", bootstrap), 1, 2)
	if err != nil {
		return nil, err
	}
	return &target{Child: c, url: c.Ready[0], pprof: c.Ready[1]}, nil
}

// saveProfile copies a pprof endpoint of the bridge to a file.
func (t *target) saveProfile(path, file string) error {
	resp, err := http.Get(t.pprof + path)
	if err != nil {
		return fmt.Errorf("read the bridge's profile: %w", err)
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// heap is the bridge's live heap (HeapInuse after a forced GC) and
// goroutine count, read from its pprof endpoint.
func (t *target) heap() (mib float64, goroutines int, err error) {
	get := func(path string) (string, error) {
		resp, err := http.Get(t.pprof + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		return string(b), err
	}
	h, err := get("/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return 0, 0, fmt.Errorf("read the bridge's heap profile: %w", err)
	}
	for line := range strings.SplitSeq(h, "\n") {
		if rest, ok := strings.CutPrefix(line, "# HeapInuse = "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			mib = v / (1 << 20)
		}
	}
	g, err := get("/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, 0, err
	}
	first, _, _ := strings.Cut(g, "\n")
	if _, rest, ok := strings.Cut(first, "total "); ok {
		goroutines, _ = strconv.Atoi(strings.TrimSpace(rest))
	}
	return mib, goroutines, nil
}
