package devicebench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/bench/benchproc"
	"github.com/ersmesh/ersmesh/node/media"
)

// ErrNoJanus is returned by RunJanus when the janus binary is not installed
// (Debian package janus).
var ErrNoJanus = errors.New("janus is not installed (apt-get install janus)")

// Janus's install paths on Debian.
const janusLib = "/usr/lib/x86_64-linux-gnu/janus"

// RunJanus measures Janus's streaming plugin the way Run measures the
// device: Janus (restricted to one core with taskset, as the device is with
// GOMAXPROCS=1) is fed the same sample clip as RTP over loopback at the
// same pace, and the same pion receivers watch its mountpoint through its
// HTTP API.
func RunJanus(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	bin, err := exec.LookPath("janus")
	if err != nil {
		return nil, ErrNoJanus
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return nil, fmt.Errorf("janus benchmark: %w", err)
	}
	benchproc.RaiseFileLimit()
	dir, err := os.MkdirTemp("", "ersmesh-janus-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	httpPort, rtpPort, err := freePorts()
	if err != nil {
		return nil, err
	}
	if err := writeJanusConfig(dir, httpPort, rtpPort); err != nil {
		return nil, err
	}
	jctx, stop := context.WithCancel(ctx)
	defer stop()
	cmd := exec.CommandContext(jctx, taskset, "-c", "0", bin, "-C", filepath.Join(dir, "janus.jcfg"), "-F", dir)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start janus: %w", err)
	}
	defer cmd.Wait()
	defer stop()
	api := fmt.Sprintf("http://127.0.0.1:%d/janus", httpPort)
	if err := waitJanus(ctx, api); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, tail(log.String(), 2000))
	}

	feedDone := make(chan error, 1)
	go func() { feedDone <- feedRTP(jctx, rtpPort) }()
	defer func() { stop(); <-feedDone }()

	pid := cmd.Process.Pid
	papi, err := NewReceiverAPI()
	if err != nil {
		return nil, err
	}
	return measure(ctx, cfg, "janus", func() time.Duration { return benchproc.CPU(pid) }, func() float64 { return benchproc.RSS(pid) },
		func(ctx context.Context) (receiver, error) { return watchJanus(ctx, papi, api) })
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// freePorts returns a free TCP port for Janus's HTTP API and a free UDP
// port for its RTP input.
func freePorts() (httpPort, rtpPort int, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	httpPort = l.Addr().(*net.TCPAddr).Port
	l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	rtpPort = u.LocalAddr().(*net.UDPAddr).Port
	u.Close()
	return httpPort, rtpPort, nil
}

func writeJanusConfig(dir string, httpPort, rtpPort int) error {
	files := map[string]string{
		"janus.jcfg": fmt.Sprintf(`general: {
	configs_folder = %q
	plugins_folder = "%[2]s/plugins"
	transports_folder = "%[2]s/transports"
	events_folder = "%[2]s/events"
	loggers_folder = "%[2]s/loggers"
	debug_level = 3
	session_timeout = 0
}
nat: {
	ice_ignore_list = "vmnet"
}
plugins: {
	disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_videoroom.so,libjanus_voicemail.so"
}
transports: {
	disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so"
}
loggers: {
	disable = "libjanus_jsonlog.so"
}
events: {
	broadcast = false
}
`, dir, janusLib),
		"janus.transport.http.jcfg": fmt.Sprintf(`general: {
	base_path = "/janus"
	http = true
	port = %d
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
}
`, httpPort),
		"janus.plugin.streaming.jcfg": fmt.Sprintf(`general: {
}
sample: {
	type = "rtp"
	id = 1
	description = "ersmesh sample clip"
	media = (
		{
			type = "video"
			mid = "v"
			port = %d
			pt = 96
			codec = "h264"
			fmtp = "profile-level-id=42e01f;packetization-mode=1"
		}
	)
}
`, rtpPort),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// janusCall posts one request to Janus and decodes its answer.
func janusCall(ctx context.Context, url string, req map[string]any, out any) error {
	req["transaction"] = strconv.FormatUint(rand.Uint64(), 36)
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	var head struct {
		Janus string
		Error *struct {
			Code   int
			Reason string
		}
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("janus: %w: %s", err, body)
	}
	if head.Janus == "error" && head.Error != nil {
		return fmt.Errorf("janus error %d: %s", head.Error.Code, head.Error.Reason)
	}
	return json.Unmarshal(body, out)
}

func waitJanus(ctx context.Context, api string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		var r struct{ Data struct{ ID uint64 } }
		err := janusCall(ctx, api, map[string]any{"janus": "create"}, &r)
		if err == nil {
			return janusCall(ctx, fmt.Sprintf("%s/%d", api, r.Data.ID), map[string]any{"janus": "destroy"}, &struct{}{})
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("janus did not answer on %s: %w", api, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// feedRTP sends the sample clip to Janus's mountpoint as H.264 RTP, paced
// like the device's stream, until ctx ends.
func feedRTP(ctx context.Context, port int) error {
	aus, err := media.SampleClip()
	if err != nil {
		return err
	}
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer conn.Close()
	pk := rtp.NewPacketizer(1200, 96, rand.Uint32(), &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	frame := media.SampleFrameDuration
	samples := uint32(frame * 90000 / time.Second)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		for _, p := range pk.Packetize(aus[n%len(aus)].AnnexB(), samples) {
			b, err := p.Marshal()
			if err != nil {
				return err
			}
			conn.Write(b) // UDP to a local port: an error only means Janus is not there yet
		}
		timer.Reset(time.Until(start.Add(time.Duration(n+1) * frame)))
	}
}

// janusViewer watches the mountpoint with a pion PeerConnection.
type janusViewer struct {
	sink
	pc      *webrtc.PeerConnection
	session string
}

func watchJanus(ctx context.Context, api *webrtc.API, base string) (receiver, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var created struct{ Data struct{ ID uint64 } }
	if err := janusCall(ctx, base, map[string]any{"janus": "create"}, &created); err != nil {
		return nil, err
	}
	v := &janusViewer{sink: newSink(), session: fmt.Sprintf("%s/%d", base, created.Data.ID)}
	ok := false
	defer func() {
		if !ok {
			v.close()
		}
	}()
	var attached struct{ Data struct{ ID uint64 } }
	if err := janusCall(ctx, v.session, map[string]any{"janus": "attach", "plugin": "janus.plugin.streaming"}, &attached); err != nil {
		return nil, err
	}
	handle := fmt.Sprintf("%s/%d", v.session, attached.Data.ID)
	if err := janusCall(ctx, handle, map[string]any{"janus": "message", "body": map[string]any{"request": "watch", "id": 1}}, &struct{}{}); err != nil {
		return nil, err
	}
	offer, err := janusOffer(ctx, v.session)
	if err != nil {
		return nil, err
	}
	if v.pc, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, err
	}
	v.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { v.read(tr) })
	if err := v.pc.SetRemoteDescription(offer); err != nil {
		return nil, err
	}
	answer, err := v.pc.CreateAnswer(nil)
	if err != nil {
		return nil, err
	}
	gathered := webrtc.GatheringCompletePromise(v.pc)
	if err := v.pc.SetLocalDescription(answer); err != nil {
		return nil, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	jsep := map[string]any{"type": "answer", "sdp": v.pc.LocalDescription().SDP}
	if err := janusCall(ctx, handle, map[string]any{"janus": "message", "body": map[string]any{"request": "start"}, "jsep": jsep}, &struct{}{}); err != nil {
		return nil, err
	}
	select {
	case <-v.flowing:
	case <-ctx.Done():
		return nil, fmt.Errorf("no video from janus within 30 s; connection %s", v.pc.ConnectionState())
	}
	ok = true
	return v, nil
}

// janusOffer long-polls the session's events for the plugin's offer.
func janusOffer(ctx context.Context, session string) (webrtc.SessionDescription, error) {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, session+"?maxev=1", nil)
		if err != nil {
			return webrtc.SessionDescription{}, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return webrtc.SessionDescription{}, fmt.Errorf("janus events: %w", err)
		}
		var ev struct {
			Janus string
			JSEP  *webrtc.SessionDescription `json:"jsep"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ev)
		resp.Body.Close()
		if err != nil {
			return webrtc.SessionDescription{}, fmt.Errorf("janus events: %w", err)
		}
		if ev.JSEP != nil && ev.JSEP.Type == webrtc.SDPTypeOffer {
			return *ev.JSEP, nil
		}
	}
}

func (v *janusViewer) close() {
	if v.pc != nil {
		v.pc.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	janusCall(ctx, v.session, map[string]any{"janus": "destroy"}, &struct{}{})
}
