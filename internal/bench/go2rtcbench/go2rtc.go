package go2rtcbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ersmesh/ersmesh/internal/bench/benchproc"
)

// streamName is the stream's name in go2rtc, in its RTSP path and in the
// ersmesh device.
const streamName = "cam"

// go2rtcServer is a running go2rtc with its RTSP server, API and WebRTC.
type go2rtcServer struct {
	*benchproc.Child
	api string // http://127.0.0.1:port
	log string // its output
}

// startGo2RTC runs bin with a config of its own in dir: every listener on
// loopback, no STUN (the receivers are on this machine), one stream read
// from source, which go2rtc opens when its first viewer comes.
func startGo2RTC(ctx context.Context, bin, dir, source string, procs int) (*go2rtcServer, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`api:
  listen: "127.0.0.1:%d"
webrtc:
  listen: "127.0.0.1:%d"
  ice_servers: []
rtsp:
  listen: ""
rtmp:
  listen: ""
srtp:
  listen: ""
log:
  level: warn
streams:
  %s: %s
`, ports[0], ports[1], streamName, source)
	path := filepath.Join(dir, "go2rtc.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "go2rtc.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.CommandContext(ctx, bin, "-config", path)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = withProcs(os.Environ(), procs)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start go2rtc: %w", err)
	}
	s := &go2rtcServer{Child: benchproc.Watch(cmd), api: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), log: logPath}
	if err := s.waitAPI(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func withProcs(env []string, procs int) []string {
	if procs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	return env
}

// freePorts returns n TCP ports free on loopback now. go2rtc's WebRTC
// port is used for UDP too; a clash would show as go2rtc failing to start.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// whep is go2rtc's WHEP endpoint for the stream.
func (s *go2rtcServer) whep() string { return s.api + "/api/webrtc?src=" + streamName }

// page is go2rtc's own WebRTC player page for the stream.
func (s *go2rtcServer) page() string {
	return s.api + "/webrtc.html?src=" + streamName + "&media=video+audio"
}

func (s *go2rtcServer) waitAPI(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.api + "/api")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.Exited():
			return fmt.Errorf("go2rtc exited: %s", s.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("go2rtc's API did not answer on %s: %v\n%s", s.api, err, s.tail())
		}
	}
}

// sent is the bytes go2rtc's WebRTC consumers of the stream have sent so
// far (its own count: RTP header and payload of every packet written),
// or -1 if its API does not answer.
func (s *go2rtcServer) sent() int64 {
	var streams map[string]struct {
		Consumers []struct {
			Format string `json:"format_name"`
			Sent   int64  `json:"bytes_send"`
		} `json:"consumers"`
	}
	resp, err := http.Get(s.api + "/api/streams")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	// With hundreds of consumers, each with its SDP, the list is large.
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&streams); err != nil {
		return -1
	}
	var n int64
	for _, c := range streams[streamName].Consumers {
		if strings.HasPrefix(c.Format, "webrtc") {
			n += c.Sent
		}
	}
	return n
}

func (s *go2rtcServer) tail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// feed publishes the clip in a loop, at its own pace, to url over RTSP
// (TCP), until ctx ends; the returned channel is closed when ffmpeg has
// exited.
func feed(ctx context.Context, clip, url, dir string) (<-chan struct{}, error) {
	logf, err := os.Create(filepath.Join(dir, "ffmpeg.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-v", "warning", "-nostdin", "-re", "-stream_loop", "-1", "-i", clip,
		"-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", url)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ffmpeg: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	return done, nil
}
