package devicebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/bench/benchproc"
	"github.com/ersmesh/ersmesh/internal/ersviewer"
)

// ServeTarget runs the demo on loopback and writes "READY <bridge URL>
// <room> <stream>\n" to ready; it returns when ctx ends.
func ServeTarget(ctx context.Context, ready io.Writer) error {
	d, err := demo.Start(ctx, demo.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		// Every receiver connects from 127.0.0.1 within a second or two:
		// the bridge's per-address limits, which guard a public bridge
		// from one greedy client, are off for the measurement.
		TuneBridge: func(c *bridge.Config) {
			c.Limits = limit.Config{PerIP: -1, PerSubnet: -1, HandshakeRate: -1}
			c.Rates = bridge.Rates{Joins: -1, Messages: -1, Candidates: -1}
		}})
	if err != nil {
		return err
	}
	u, err := url.Parse(d.URL)
	if err != nil {
		d.Close()
		return err
	}
	q := u.Query()
	fmt.Fprintf(ready, "READY http://%s %s %s\n", u.Host, q.Get("room"), q.Get("stream"))
	<-ctx.Done()
	return d.Close()
}

// Config of a run. Zero values give the defaults of `ersmesh-bench device`.
type Config struct {
	Exe      string // the ersmesh binary; Args start ServeTarget in it
	Args     []string
	Viewers  []int         // viewer counts measured in turn; default 10, 25, 50, 100, 200
	Settle   time.Duration // after the viewers connected; default 3 s
	Measure  time.Duration // CPU measured over; default 10 s
	Progress func(format string, args ...any)
}

// Step is the measurement with one number of viewers.
type Step struct {
	Viewers        int     `json:"viewers"`
	CPUPercent     float64 `json:"cpu_percent"`       // of one core, the whole child process
	CPUPerViewer   float64 `json:"cpu_per_viewer_mc"` // millicores above the idle baseline
	ViewersPerCore float64 `json:"viewers_per_core"`
	RxKbps         float64 `json:"rx_kbps_per_viewer"` // what each viewer received, on average
	RxShare        float64 `json:"rx_share"`           // worst viewer's bytes / best viewer's
	RSSMiB         float64 `json:"rss_mib"`
	// Video as the receivers saw it over the measurement: the fewest
	// frames one of them got, and the share of video packets lost (gaps
	// in the sequence numbers) over all of them.
	MinFrames   int64   `json:"min_video_frames"`
	LostPercent float64 `json:"video_lost_percent"`
	Seconds     float64 `json:"seconds"` // the measurement's wall time
	// SentKbps is what the server says it sent to each viewer, on
	// average (RTP header and payload before SRTP), when it says
	// (Target.Sent); a server that falls behind or drops frames for slow
	// viewers sends less than the stream.
	SentKbps float64 `json:"sent_kbps_per_viewer,omitempty"`
	// FailedJoins counts the tries to connect a viewer that failed and
	// were tried again (MeasureStep).
	FailedJoins int64 `json:"failed_joins,omitempty"`
	// Unconnected is how many of the viewers asked for did not connect
	// in all their tries (MeasureStep); Viewers counts those that did.
	Unconnected int `json:"unconnected,omitempty"`
	// RcvbufDrops is the kernel's count of UDP datagrams dropped at full
	// receive buffers over the measurement, in the whole network
	// namespace (benchproc.UDPRcvbufErrors): receivers that fall behind
	// show there; -1 if unknown.
	RcvbufDrops int64 `json:"udp_rcvbuf_drops"`
}

// Result of a run.
type Result struct {
	IdleCPUPercent float64 `json:"idle_cpu_percent"`
	Steps          []Step  `json:"steps"`
}

func (cfg *Config) defaults() {
	if len(cfg.Viewers) == 0 {
		cfg.Viewers = []int{10, 25, 50, 100, 200}
	}
	if cfg.Settle == 0 {
		cfg.Settle = 3 * time.Second
	}
	if cfg.Measure == 0 {
		cfg.Measure = 10 * time.Second
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, ...any) {}
	}
}

// Run starts the demo in a child process and measures it with each number
// of viewers.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	benchproc.RaiseFileLimit()
	child, err := benchproc.Start(ctx, cfg.Exe, cfg.Args, 1, 3)
	if err != nil {
		return nil, err
	}
	defer child.Stop()
	base, room, stream := child.Ready[0], child.Ready[1], child.Ready[2]
	api, err := NewReceiverAPI()
	if err != nil {
		return nil, err
	}
	return measure(ctx, cfg, "device", child.CPU, child.RSS, func(ctx context.Context) (receiver, error) {
		return watch(ctx, api, base, room, stream)
	})
}

// receiver is one viewer of the system under test.
type receiver interface {
	counts() Counts // what it received so far
	close()
}

// measure adds viewers up to each count of cfg.Viewers and reads the CPU
// time the system under test spends on them.
func measure(ctx context.Context, cfg Config, what string, cpuTime func() time.Duration, rss func() float64,
	join func(context.Context) (receiver, error)) (*Result, error) {
	res := &Result{}
	time.Sleep(cfg.Settle)
	res.IdleCPUPercent = idle(cpuTime, cfg.Measure)
	cfg.Progress("%s: idle, %.1f %% of a core", what, res.IdleCPUPercent)

	f := &fleet{join: join}
	defer f.close()
	for _, n := range cfg.Viewers {
		if err := f.grow(ctx, n); err != nil {
			return nil, fmt.Errorf("%s with %d viewers: %w", what, n, err)
		}
		time.Sleep(cfg.Settle)
		st := f.sample(cpuTime, rss, nil, cfg.Measure, res.IdleCPUPercent)
		res.Steps = append(res.Steps, st)
		cfg.Progress("%s: %s", what, st)
	}
	return res, nil
}

func (st Step) String() string {
	sent := ""
	if st.SentKbps > 0 {
		sent = fmt.Sprintf(" (%.0f sent)", st.SentKbps)
	}
	return fmt.Sprintf("%d viewers: %.1f %% of a core, %.2f mcore per viewer (%.0f viewers per core), %.0f kbit/s each%s, worst/best %.2f, fewest frames %d, %.2f %% video lost, %d UDP datagrams dropped at full receive buffers (machine-wide)",
		st.Viewers, st.CPUPercent, st.CPUPerViewer, st.ViewersPerCore, st.RxKbps, sent, st.RxShare, st.MinFrames, st.LostPercent, st.RcvbufDrops)
}

// idle is the percentage of a core the system under test spends over d.
func idle(cpuTime func() time.Duration, d time.Duration) float64 {
	c0, t0 := cpuTime(), time.Now()
	time.Sleep(d)
	return 100 * (cpuTime() - c0).Seconds() / time.Since(t0).Seconds()
}

// fleet is the viewers of one system under test. One goroutine (the
// run's) calls its methods.
type fleet struct {
	join    func(context.Context) (receiver, error)
	viewers []receiver
}

// grow adds viewers up to n, a few at a time.
func (f *fleet) grow(ctx context.Context, n int) error {
	sem := make(chan struct{}, 8)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range n - len(f.viewers) {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			v, err := f.join(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			f.viewers = append(f.viewers, v)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, v := range f.viewers {
		wg.Go(v.close)
	}
	wg.Wait()
	f.viewers = nil
}

// sample measures the system under test's CPU over d with the fleet's
// viewers, what they received meanwhile and, if sent is not nil, what the
// system says it sent (bytes so far; negative when unknown).
func (f *fleet) sample(cpuTime func() time.Duration, rss func() float64, sent func() int64, d time.Duration, idlePercent float64) Step {
	rx0 := make([]Counts, len(f.viewers))
	for i, v := range f.viewers {
		rx0[i] = v.counts()
	}
	var s0 int64 = -1
	if sent != nil {
		s0 = sent()
	}
	u0 := benchproc.UDPRcvbufErrors()
	c0, t0 := cpuTime(), time.Now()
	time.Sleep(d)
	secs := time.Since(t0).Seconds()
	cpu := (cpuTime() - c0).Seconds() / secs
	u1 := benchproc.UDPRcvbufErrors()
	var s1 int64 = -1
	if sent != nil {
		s1 = sent()
	}
	n := len(f.viewers)
	var total Counts
	var least, most int64
	for i, v := range f.viewers {
		got := v.counts().Sub(rx0[i])
		total.Bytes += got.Bytes
		total.Packets += got.Packets
		total.Lost += got.Lost
		if i == 0 || got.Bytes < least {
			least = got.Bytes
		}
		most = max(most, got.Bytes)
		if i == 0 || got.Frames < total.Frames {
			total.Frames = got.Frames // the fewest
		}
	}
	st := Step{Viewers: n, CPUPercent: 100 * cpu, RSSMiB: rss(), MinFrames: total.Frames, Seconds: secs, RcvbufDrops: -1}
	if u0 >= 0 && u1 >= u0 {
		st.RcvbufDrops = u1 - u0
	}
	if n > 0 {
		st.RxKbps = float64(total.Bytes) * 8 / 1000 / secs / float64(n)
		if s0 >= 0 && s1 >= s0 {
			st.SentKbps = float64(s1-s0) * 8 / 1000 / secs / float64(n)
		}
		st.CPUPerViewer = 1000 * (cpu - idlePercent/100) / float64(n)
	}
	if most > 0 {
		st.RxShare = float64(least) / float64(most)
	}
	if total.Packets+total.Lost > 0 {
		st.LostPercent = 100 * float64(total.Lost) / float64(total.Packets+total.Lost)
	}
	if st.CPUPerViewer > 0 {
		st.ViewersPerCore = 1000 / st.CPUPerViewer
	}
	return st
}

// viewer is one ERS player: an ersviewer session whose tracks a sink
// counts.
type viewer struct {
	s *ersviewer.Session
	sink
}

// watch joins room on the bridge at base and returns once video flows.
func watch(ctx context.Context, api *webrtc.API, base, room, stream string) (receiver, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v := &viewer{sink: newSink()}
	s, err := ersviewer.Open(ctx, ersviewer.Options{Bridge: base, Room: room, Stream: stream, API: api, OnTrack: v.read})
	if err != nil {
		return nil, err
	}
	v.s = s
	select {
	case <-v.flowing:
		return v, nil
	case err := <-s.Failed():
		s.Close()
		return nil, err
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("no video within 30 s; connection %s", s.PeerConnection().ConnectionState())
	}
}

func (v *viewer) close() { v.s.Close() }
