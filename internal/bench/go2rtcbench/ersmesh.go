package go2rtcbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/internal/bench/benchproc"
	"github.com/ersmesh/ersmesh/role"
)

// room is the ersmesh room the device publishes the stream in.
const room = "bench"

// ersmeshSide is the ersmesh half: a bootstrap node and a bridge in the
// benchmark's process (they only relay signalling, which is over before
// any measurement), and the device in its own process, run by the ersmesh
// command as a camera side runs it.
type ersmeshSide struct {
	boot   *role.Bootstrap
	bridge *role.Bridge
	device *benchproc.Child
	ops    string // the device's /metrics and other ops endpoints, http://127.0.0.1:port
}

var loopback = []string{"/ip4/127.0.0.1/tcp/0"}

// startErsmesh starts the three roles; the device reads rtspURL.
func startErsmesh(ctx context.Context, exe, rtspURL string, procs int) (_ *ersmeshSide, err error) {
	s := &ersmeshSide{}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	log := slog.New(slog.DiscardHandler)
	if s.boot, err = role.NewBootstrap(ctx, role.BootstrapConfig{Mesh: role.MeshConfig{Listen: loopback}, Logger: log}); err != nil {
		return nil, err
	}
	boot := role.Addrs(s.boot.Host().Addrs())
	s.bridge, err = role.NewBridge(ctx, role.BridgeConfig{
		Mesh: role.MeshConfig{Listen: loopback, Bootstrap: boot},
		HTTP: "127.0.0.1:0",
		// Every receiver comes from 127.0.0.1 within seconds: the limits
		// that keep one greedy client from a public bridge are off.
		WHEP: bridge.WHEPConfig{MaxSessions: 4096, RatePerMinute: 1 << 20, Burst: 4096},
		Tune: func(c *bridge.Config) {
			c.Limits = limit.Config{PerIP: -1, PerSubnet: -1, HandshakeRate: -1}
			c.Rates = bridge.Rates{Joins: -1, Messages: -1, Candidates: -1}
		},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := s.bridge.Start(ctx); err != nil {
		return nil, err
	}
	port, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	s.ops = fmt.Sprintf("http://127.0.0.1:%d", port[0])
	args := []string{"device",
		"--identity", "", "--state", "", "--ops", strings.TrimPrefix(s.ops, "http://"),
		"--listen", loopback[0], "--dht-server", "--reachability", "public", "--nat-traversal=false",
		"--room", room, "--stream", streamName + "=" + rtspURL, "--loopback-candidates",
		// One bridge brings every viewer.
		"--max-streams-per-bridge", "4096", "--max-streams", "4096", "--stream-rate", "100000", "--stream-burst", "4096",
		"--log-level", "warn",
	}
	for _, b := range boot {
		args = append(args, "--bootstrap", b)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = withProcs(os.Environ(), procs)
	// `ersmesh device` prints "device <peer ID> serving rooms <rooms>"
	// once its rooms are published.
	if s.device, err = benchproc.StartCmd(cmd, "device", 4); err != nil {
		return nil, fmt.Errorf("ersmesh device: %w", err)
	}
	return s, nil
}

// sentMetric is the device's count of media bytes sent to the stream's
// viewers (RTP header and payload before SRTP, as go2rtc counts).
const sentMetric = `ersmesh_device_stream_sent_bytes_total{stream="` + streamName + `"} `

// sent reads sentMetric from the device's /metrics; -1 if it cannot.
func (s *ersmeshSide) sent() int64 {
	resp, err := http.Get(s.ops + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sentMetric); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return int64(f)
		}
	}
	return -1
}

func (s *ersmeshSide) whep() string { return s.bridge.URL() + "/whep/" + room + "/" + streamName }

// page is the player page with transport forced to tr (fmp4 or srtp).
func (s *ersmeshSide) page(tr string) string {
	return s.bridge.URL() + "/?" + url.Values{"room": {room}, "stream": {streamName}, "transport": {tr}}.Encode()
}

func (s *ersmeshSide) stop() error {
	var errs []error
	if s.device != nil {
		s.device.Stop()
	}
	if s.bridge != nil {
		errs = append(errs, s.bridge.Close())
	}
	if s.boot != nil {
		errs = append(errs, s.boot.Close())
	}
	return errors.Join(errs...)
}

// buildErsmesh builds the ersmesh command into dir: the benchmark runs in
// the repository (go run ./cmd/ersmesh-bench), so the device measured is
// the code checked out.
func buildErsmesh(ctx context.Context, dir string) (string, error) {
	exe := dir + "/ersmesh"
	out, err := exec.CommandContext(ctx, "go", "build", "-o", exe, "github.com/ersmesh/ersmesh/cmd/ersmesh").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build the ersmesh command: %w\n%s", err, out)
	}
	return exe, nil
}
