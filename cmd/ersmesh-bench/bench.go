package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/internal/bench/benchreport"
	"github.com/ersmesh/ersmesh/internal/bench/bridgeload"
	"github.com/ersmesh/ersmesh/internal/bench/devicebench"
	"github.com/ersmesh/ersmesh/internal/bench/go2rtcbench"
	"github.com/ersmesh/ersmesh/internal/bench/meshsim"
	"github.com/ersmesh/ersmesh/internal/bench/playerbench"
	"github.com/ersmesh/ersmesh/internal/bench/relaybench"
	"github.com/ersmesh/ersmesh/internal/bench/soak"
)

// runBench runs the benchmarks of docs/benchmarks.md. Each writes its raw
// results as JSON under <out>/bench/; "report" turns those into the
// document and its plots, and "all" does everything.
func runBench(args []string) error {
	subs := map[string]func([]string) error{
		"mesh":          benchMesh,
		"bridge":        benchBridge,
		"bridge-target": benchBridgeTarget,
		"player":        benchPlayer,
		"device":        benchDevice,
		"device-target": benchDeviceTarget,
		"soak":          benchSoak,
		"go2rtc":        benchGo2RTC,
		"relay":         benchRelay,
		"report":        benchReport,
		"all":           benchAll,
	}
	if len(args) == 0 || subs[args[0]] == nil {
		fmt.Fprintln(os.Stderr, "Usage: ersmesh-bench <mesh|bridge|player|device|go2rtc|soak|relay|report|all> [flags]")
		if len(args) == 0 {
			return errors.New("no benchmark given")
		}
		return fmt.Errorf("unknown benchmark %q", args[0])
	}
	return subs[args[0]](args[1:])
}

// parseInts reads a comma-separated list of positive numbers.
func parseInts(flagName, list string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive number", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func benchMesh(args []string) error {
	fs := flag.NewFlagSet("ersmesh-bench mesh", flag.ContinueOnError)
	out := fs.String("out", "docs", "output `dir`; results go to <dir>/bench/<file>")
	file := fs.String("file", benchreport.MeshFile, "results `file` name; "+benchreport.MeshLimitFile+" for a run that looks for the limit")
	sizes := fs.String("n", "50,100,200,500", "comma-separated mesh `sizes`")
	latency := fs.Duration("latency", 40*time.Millisecond, "one-way link latency")
	rooms := fs.Int("rooms", 20, "rooms published per mesh")
	if err := parse(fs, args); err != nil {
		return err
	}
	ns, err := parseInts("--n", *sizes)
	if err != nil {
		return err
	}
	ctx, stop := interrupted()
	defer stop()
	var results []*meshsim.Result
	for _, n := range ns {
		r, err := meshsim.Run(ctx, meshsim.Config{N: n, Latency: *latency, Rooms: *rooms, Progress: progress})
		if err != nil {
			return fmt.Errorf("mesh of %d nodes: %w", n, err)
		}
		results = append(results, r)
		// Written after each size, so a run stopped at a size that does
		// not fit keeps the smaller ones.
		if err := writeJSON(fs, args, *out, *file, results); err != nil {
			return err
		}
	}
	return nil
}

// writeJSON saves a result with the command line that produced it: the
// benchmark's own, also when "bench all" ran it.
func writeJSON(fs *flag.FlagSet, args []string, out, name string, v any) error {
	cmd := strings.Join(append([]string{"go run ./cmd/" + fs.Name()}, args...), " ")
	return benchreport.Write(out, name, cmd, v)
}

func benchReport(args []string) error {
	fs := flag.NewFlagSet("ersmesh-bench report", flag.ContinueOnError)
	out := fs.String("out", "docs", "`dir` with bench/*.json; writes <dir>/benchmarks.md and <dir>/bench/*.png")
	if err := parse(fs, args); err != nil {
		return err
	}
	return benchreport.Generate(*out)
}

// benchAll runs every benchmark with its defaults, then the report.
func benchAll(args []string) error {
	fs := flag.NewFlagSet("ersmesh-bench all", flag.ContinueOnError)
	out := fs.String("out", "docs", "output `dir`")
	if err := parse(fs, args); err != nil {
		return err
	}
	for _, run := range []func([]string) error{benchMesh, benchBridge, benchPlayer, benchDevice, benchReport} {
		if err := run([]string{"--out", *out}); err != nil {
			return err
		}
	}
	return nil
}

func benchBridge(args []string) error {
	fs := flag.NewFlagSet("ersmesh-bench bridge", flag.ContinueOnError)
	out := fs.String("out", "docs", "output `dir`; results go to <dir>/bench/bridge.json")
	var cfg bridgeload.Config
	fs.IntVar(&cfg.Sessions, "sessions", 10000, "idle sessions")
	fs.IntVar(&cfg.JoinWorkers, "join-workers", 64, "sessions joining in a loop")
	fs.DurationVar(&cfg.JoinTime, "join-time", 10*time.Second, "duration of the join run")
	fs.IntVar(&cfg.MsgSessions, "msg-sessions", 100, "sessions sending signalling messages")
	fs.IntVar(&cfg.MsgRate, "msg-rate", 1000, "messages per second in the latency run")
	fs.DurationVar(&cfg.MsgTime, "msg-time", 10*time.Second, "duration of each message run")
	fs.StringVar(&cfg.HeapProfile, "heap-profile", "", "save the bridge's heap profile with the idle sessions open to `file`")
	if err := parse(fs, args); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.Exe, cfg.Args, cfg.Progress = exe, []string{"bridge-target"}, progress
	ctx, stop := interrupted()
	defer stop()
	res, err := bridgeload.Run(ctx, cfg)
	if err != nil {
		return err
	}
	return writeJSON(fs, args, *out, benchreport.BridgeFile, res)
}

// benchBridgeTarget is the bridge process that "bench bridge" loads.
func benchBridgeTarget(args []string) error {
	fs := flag.NewFlagSet("ersmesh-bench bridge-target", flag.ContinueOnError)
	var boot listFlag
	fs.Var(&boot, "bootstrap", "bootstrap peer `multiaddr`")
	if err := parse(fs, args); err != nil {
		return err
	}
	var addrs []multiaddr.Multiaddr
	for _, s := range boot {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("--bootstrap %q: %w", s, err)
		}
		addrs = append(addrs, a)
	}
	ctx, stop := interrupted()
	defer stop()
	return bridgeload.ServeTarget(ctx, addrs, os.Stdout)
}

func benchPlayer(args []string) error {
	fs := flag.NewFlagSet("ersmesh-bench player", flag.ContinueOnError)
	out := fs.String("out", "docs", "output `dir`; results go to <dir>/bench/player.json")
	runs := fs.Int("runs", 20, "joins measured with a cold bridge, and again with a warm one")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := interrupted()
	defer stop()
	res, err := playerbench.Run(ctx, playerbench.Config{Runs: *runs, Progress: progress})
	if err != nil {
		return err
	}
	return writeJSON(fs, args, *out, benchreport.PlayerFile, res)
}

// benchSoak runs the soak (package soak): not part of "all", it takes an
// hour by default.
func benchSoak(args []string) error {
	fs := flag.NewFlagSet("ersmesh-bench soak", flag.ContinueOnError)
	out := fs.String("out", "docs", "output `dir`; results go to <dir>/bench/"+benchreport.SoakFile)
	var cfg soak.Config
	fs.DurationVar(&cfg.Duration, "duration", time.Hour, "how long to run")
	fs.DurationVar(&cfg.Interval, "interval", time.Second, "time between two viewers joining")
	fs.DurationVar(&cfg.Life, "life", 10*time.Second, "how long each viewer plays")
	fs.DurationVar(&cfg.Sample, "sample", 10*time.Second, "time between two samples of the footprint")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Progress = progress
	ctx, stop := interrupted()
	defer stop()
	res, err := soak.Run(ctx, cfg)
	if err != nil {
		return err
	}
	progress("soak: %s", res)
	return writeJSON(fs, args, *out, benchreport.SoakFile, res)
}

func benchRelay(args []string) error {
	fs := flag.NewFlagSet("ersmesh-bench relay", flag.ContinueOnError)
	out := fs.String("out", "docs", "output `dir`; results go to <dir>/bench/"+benchreport.RelayFile)
	file := fs.String("file", benchreport.RelayFile, "results `file` name; "+benchreport.RelayLimitFile+" for a run at a size the machine may not carry")
	var cfg relaybench.Config
	fs.IntVar(&cfg.Viewers, "viewers", 200, "Go relay viewers to join")
	fs.Float64Var(&cfg.BudgetMbit, "budget", 10, "the device's uplink budget, `Mbit/s`")
	fs.IntVar(&cfg.MaxChildren, "children", 3, "children each viewer offers to relay to")
	fs.DurationVar(&cfg.Measure, "measure", 10*time.Second, "how long arrivals are measured once all joined")
	fs.StringVar(&cfg.Source, "source", "sample:", "the device's stream: a `source` as ersmesh device --stream takes it")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Progress = progress
	ctx, stop := interrupted()
	defer stop()
	res, err := relaybench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	progress("relay: %s", res)
	return writeJSON(fs, args, *out, *file, res)
}

func benchDevice(args []string) error {
	fs := flag.NewFlagSet("ersmesh-bench device", flag.ContinueOnError)
	out := fs.String("out", "docs", "output `dir`; results go to <dir>/bench/"+benchreport.DeviceFile)
	counts := fs.String("viewers", "10,25,50,100,200", "comma-separated viewer `counts`, measured in turn")
	measure := fs.Duration("measure", 10*time.Second, "CPU time measured over, per count")
	janus := fs.Bool("janus", true, "measure Janus's streaming plugin the same way, if janus is installed")
	if err := parse(fs, args); err != nil {
		return err
	}
	var cfg devicebench.Config
	var err error
	if cfg.Viewers, err = parseInts("--viewers", *counts); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.Exe, cfg.Args, cfg.Measure, cfg.Progress = exe, []string{"device-target"}, *measure, progress
	ctx, stop := interrupted()
	defer stop()
	res, err := devicebench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := writeJSON(fs, args, *out, benchreport.DeviceFile, res); err != nil {
		return err
	}
	if !*janus {
		return nil
	}
	jres, err := devicebench.RunJanus(ctx, cfg)
	if errors.Is(err, devicebench.ErrNoJanus) {
		progress("janus: %v; no comparison", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("janus: %w", err)
	}
	return writeJSON(fs, args, *out, benchreport.JanusFile, jres)
}

// benchDeviceTarget is the demo process that "bench device" measures.
func benchDeviceTarget(args []string) error {
	fs := flag.NewFlagSet("ersmesh-bench device-target", flag.ContinueOnError)
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := interrupted()
	defer stop()
	return devicebench.ServeTarget(ctx, os.Stdout)
}

// benchGo2RTC compares the device with go2rtc (package go2rtcbench): not
// part of "all", it builds go2rtc from its module on first use.
func benchGo2RTC(args []string) error {
	fs := flag.NewFlagSet("ersmesh-bench go2rtc", flag.ContinueOnError)
	out := fs.String("out", "docs", "output `dir`; results go to <dir>/bench/"+benchreport.Go2RTCFile)
	counts := fs.String("viewers", "25,50,100,200", "comma-separated viewer `counts`, measured in turn on each server")
	var cfg go2rtcbench.Config
	fs.DurationVar(&cfg.Settle, "settle", 3*time.Second, "wait after the viewers connected, before measuring")
	fs.DurationVar(&cfg.Measure, "measure", 10*time.Second, "CPU time measured over, per server and count")
	fs.IntVar(&cfg.Procs, "procs", 0, "GOMAXPROCS of both servers (0: as the machine gives)")
	fs.IntVar(&cfg.FirstFrameRuns, "first-frame-runs", 9, "page loads per player for first frame (negative: none)")
	fs.StringVar(&cfg.Ersmesh, "ersmesh", "", "the ersmesh `command` that runs the device (default: built from this checkout)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Viewers, err = parseInts("--viewers", *counts); err != nil {
		return err
	}
	cfg.Progress = progress
	ctx, stop := interrupted()
	defer stop()
	res, err := go2rtcbench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	return writeJSON(fs, args, *out, benchreport.Go2RTCFile, res)
}
