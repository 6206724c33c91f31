package go2rtcbench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ersmesh/ersmesh/internal/bench/benchproc"
	"github.com/ersmesh/ersmesh/internal/bench/benchstat"
	"github.com/ersmesh/ersmesh/internal/bench/devicebench"
	"github.com/ersmesh/ersmesh/internal/bench/playerbench"
)

// Config of a run. Zero values give the defaults of `ersmesh-bench go2rtc`.
type Config struct {
	// Ersmesh is the ersmesh command that runs the device; "" builds it
	// from the checked-out code.
	Ersmesh string
	Viewers []int         // default 25, 50, 100, 200
	Settle  time.Duration // after the viewers connected; default 3 s
	Measure time.Duration // CPU measured over, per server and count; default 10 s
	// Procs, if positive, is GOMAXPROCS for both servers; default: as the
	// machine gives.
	Procs int
	// FirstFrameRuns per player; default 9; negative: no browser part.
	FirstFrameRuns int
	Progress       func(format string, args ...any)
}

func (cfg *Config) defaults() {
	if len(cfg.Viewers) == 0 {
		cfg.Viewers = []int{25, 50, 100, 200}
	}
	if cfg.Settle == 0 {
		cfg.Settle = 3 * time.Second
	}
	if cfg.Measure == 0 {
		cfg.Measure = 10 * time.Second
	}
	if cfg.FirstFrameRuns == 0 {
		cfg.FirstFrameRuns = 9
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, ...any) {}
	}
}

// Result of a run.
type Result struct {
	Go2RTC string `json:"go2rtc"` // module@version
	Clip   string `json:"clip"`
	Procs  int    `json:"gomaxprocs"` // 0: not set
	// Idle is each server's CPU with the stream flowing and no viewer,
	// in percent of one core.
	Go2RTCIdle  float64 `json:"go2rtc_idle_cpu_percent"`
	ErsmeshIdle float64 `json:"ersmesh_idle_cpu_percent"`
	// One viewer of each, measured first: the full stream as each server
	// sends it.
	Go2RTCOne  devicebench.Step `json:"go2rtc_one_viewer"`
	ErsmeshOne devicebench.Step `json:"ersmesh_one_viewer"`
	Steps      []Pair           `json:"steps"`
	// FirstFrame: go2rtc's page, the ersmesh player on fmp4, on srtp.
	FirstFrame []FirstFrame `json:"first_frame"`
	// ReceiveBuffer is the receive buffer in bytes the receivers' sockets
	// asked for; 0: the operating system's default (runs before it was
	// set).
	ReceiveBuffer int `json:"receiver_rcvbuf_bytes,omitempty"`
}

// Pair is one viewer count, measured on both servers one after the other.
type Pair struct {
	Viewers int              `json:"viewers"`
	Go2RTC  devicebench.Step `json:"go2rtc"`
	Ersmesh devicebench.Step `json:"ersmesh"`
	LoadAvg string           `json:"loadavg"` // 1, 5, 15 min, after the pair
	// Source packets the RTSP server could not deliver to each server
	// during its step (its queue to that reader full).
	Go2RTCSourceDrops  int64 `json:"go2rtc_source_drops"`
	ErsmeshSourceDrops int64 `json:"ersmesh_source_drops"`
	// Why a server could not be measured with this count ("" when it was):
	// fewer than 90 % of the viewers connected.
	Go2RTCError  string `json:"go2rtc_error,omitempty"`
	ErsmeshError string `json:"ersmesh_error,omitempty"`
}

// PerCore is viewers per core of CPU the server's process spent: viewers
// ÷ (CPU seconds ÷ wall seconds), its idle use included.
func PerCore(st devicebench.Step) float64 {
	if st.CPUPercent <= 0 {
		return 0
	}
	return float64(st.Viewers) / (st.CPUPercent / 100)
}

// PerCoreFull is PerCore counting only what the server sent: viewers ×
// (sent per viewer ÷ what it sends one viewer alone) per core. A server
// that falls behind real time or skips frames for viewers it cannot
// serve in time spends less CPU on them; this does not credit it for
// that. 0 without sent counts.
func PerCoreFull(st, one devicebench.Step) float64 {
	if one.SentKbps <= 0 || st.SentKbps <= 0 {
		return 0
	}
	return PerCore(st) * min(1, st.SentKbps/one.SentKbps)
}

// FirstFrame is navigation start to first presented frame, in ms of the
// page's clock, of one player.
type FirstFrame struct {
	Player  string            `json:"player"`
	URL     string            `json:"url"`
	Runs    []float64         `json:"runs_ms"`
	Summary benchstat.Summary `json:"summary"`
}

// Run builds or finds go2rtc and the ersmesh command, starts go2rtc with
// the clip published into its RTSP server and the ersmesh device reading
// it from there, then measures both servers with each viewer count, and
// the first frame of each player.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	benchproc.RaiseFileLimit()
	bin, err := Binary(ctx, cfg.Progress)
	if err != nil {
		return nil, err
	}
	clip, err := Clip(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ersmesh-go2rtc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	exe := cfg.Ersmesh
	if exe == "" {
		cfg.Progress("go2rtc: building the ersmesh command")
		if exe, err = buildErsmesh(ctx, dir); err != nil {
			return nil, err
		}
	}

	rtspServer, source, err := startRelay()
	if err != nil {
		return nil, err
	}
	defer rtspServer.close()
	fctx, stopFeed := context.WithCancel(ctx)
	fed, err := feed(fctx, clip, source, dir)
	if err != nil {
		stopFeed()
		return nil, err
	}
	defer func() { stopFeed(); <-fed }()
	if err := rtspServer.waitPublisher(ctx); err != nil {
		return nil, err
	}
	g2, err := startGo2RTC(ctx, bin, dir, source, cfg.Procs)
	if err != nil {
		return nil, err
	}
	defer g2.Stop()
	es, err := startErsmesh(ctx, exe, source, cfg.Procs)
	if err != nil {
		return nil, err
	}
	defer es.stop()
	cfg.Progress("go2rtc: go2rtc %s (pid %d) and the ersmesh device (pid %d) read %s", Version, g2.PID(), es.device.PID(), source)

	res := &Result{Go2RTC: Module + "@" + Version, Clip: ClipDesc, Procs: cfg.Procs, ReceiveBuffer: devicebench.ReceiveBuffer}
	targets := []devicebench.Target{
		{Name: "go2rtc", PID: g2.PID(), WHEP: g2.whep(), Sent: g2.sent},
		{Name: "ersmesh", PID: es.device.PID(), WHEP: es.whep(), Sent: es.sent},
	}
	// One viewer of each first: it opens the stream where that is done
	// on demand, and what the server sends it is the stream's full rate
	// from that server, which the sent rates of the steps are held
	// against. Then the idle use of each with the stream flowing.
	api, err := devicebench.NewReceiverAPI()
	if err != nil {
		return nil, err
	}
	full := []*devicebench.Step{&res.Go2RTCOne, &res.ErsmeshOne}
	for i, t := range targets {
		st, err := devicebench.MeasureStep(ctx, api, t, 1, cfg.Settle, cfg.Measure, 0)
		if err != nil {
			return nil, err
		}
		*full[i] = st
		cfg.Progress("go2rtc: %s: %s", t.Name, st)
	}
	time.Sleep(cfg.Settle)
	res.Go2RTCIdle = devicebench.Idle(targets[0], cfg.Measure)
	res.ErsmeshIdle = devicebench.Idle(targets[1], cfg.Measure)
	cfg.Progress("go2rtc: idle, go2rtc %.1f %% of a core, ersmesh device %.1f %%", res.Go2RTCIdle, res.ErsmeshIdle)
	idle := []float64{res.Go2RTCIdle, res.ErsmeshIdle}

	for i, n := range cfg.Viewers {
		p := Pair{Viewers: n}
		steps := []*devicebench.Step{&p.Go2RTC, &p.Ersmesh}
		drops := []*int64{&p.Go2RTCSourceDrops, &p.ErsmeshSourceDrops}
		errs := []*string{&p.Go2RTCError, &p.ErsmeshError}
		// Alternate which goes first, so a drift of the machine's load
		// does not always favour the same one.
		for k := range targets {
			j := (i + k) % len(targets)
			d0 := rtspServer.dropped(targets[j].Name)
			st, err := devicebench.MeasureStep(ctx, api, targets[j], n, cfg.Settle, cfg.Measure, idle[j])
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				// One server failing a count is a result, not the end
				// of the run: the other and the next counts go on.
				*errs[j] = firstLine(err.Error())
				cfg.Progress("go2rtc: %v", err)
				continue
			}
			*steps[j], *drops[j] = st, rtspServer.dropped(targets[j].Name)-d0
			cfg.Progress("go2rtc: %s: %s; %.0f viewers per core; %d source packets dropped", targets[j].Name, st, PerCore(st), *drops[j])
		}
		p.LoadAvg = loadAvg()
		res.Steps = append(res.Steps, p)
		cfg.Progress("go2rtc: %d viewers: go2rtc %.0f, ersmesh %.0f viewers per core (load %s)", n, PerCore(p.Go2RTC), PerCore(p.Ersmesh), p.LoadAvg)
	}

	if cfg.FirstFrameRuns > 0 {
		if res.FirstFrame, err = firstFrames(ctx, cfg, []FirstFrame{
			{Player: "go2rtc (its webrtc.html)", URL: g2.page()},
			{Player: "ersmesh fmp4", URL: es.page("fmp4")},
			{Player: "ersmesh srtp", URL: es.page("srtp")},
		}); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// firstFrames loads each player cfg.FirstFrameRuns times in one headless
// Chromium started beforehand, the players in turn, after one load of each
// that is not counted (the browser's first fetch of each page, the
// bridge's first lookup of the room).
func firstFrames(ctx context.Context, cfg Config, players []FirstFrame) ([]FirstFrame, error) {
	br, stop, err := playerbench.NewBrowser()
	if err != nil {
		return nil, err
	}
	defer stop()
	for run := -1; run < cfg.FirstFrameRuns; run++ {
		for i := range players {
			ms, err := playerbench.FirstFrame(ctx, br, players[i].URL)
			if err != nil {
				return nil, fmt.Errorf("first frame of %s, run %d: %w", players[i].Player, run+1, err)
			}
			if run >= 0 {
				players[i].Runs = append(players[i].Runs, ms)
			}
		}
	}
	for i := range players {
		players[i].Summary = benchstat.Summarize(players[i].Runs)
		cfg.Progress("go2rtc: first frame, %s: median %.0f ms over %d runs", players[i].Player, players[i].Summary.Median, len(players[i].Runs))
	}
	return players, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}
