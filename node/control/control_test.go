package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/ersviewer"
	"github.com/ersmesh/ersmesh/internal/httpserver"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/control"
	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/node/webhook"
	"github.com/ersmesh/ersmesh/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const recordTTL = 2 * time.Second

// rig is a demo mesh (bootstrap, bridge, device serving room "demo") with
// the device's ops listener serving the control API, as `ersmesh device`
// runs it.
type rig struct {
	demo *demo.Demo
	ctl  *control.Controller
	api  string // host:port of the ops listener
	srv  *httpserver.Server
	once sync.Once
}

// stop stops the device and its API (a restart's first half); once.
func (r *rig) stop(t *testing.T) {
	r.once.Do(func() {
		r.srv.Close()
		r.ctl.Close()
		if err := r.demo.Close(); err != nil {
			t.Errorf("close demo: %v", err)
		}
		http.DefaultClient.CloseIdleConnections()
	})
}

func newRig(t *testing.T, state string, onEvent func(node.Event)) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.Default()
	}
	d, err := demo.Start(ctx, demo.Config{Addr: "127.0.0.1:0", Logger: log, TuneDevice: func(c *node.Config) {
		c.RecordTTL = recordTTL
		c.OnEvent = onEvent
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{demo: d}
	r.ctl, err = control.New(control.Config{Device: d.Device(), StateFile: state, Logger: log, RetryInterval: 200 * time.Millisecond})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	if err := r.ctl.Restore(ctx); err != nil {
		d.Close()
		t.Fatal(err)
	}
	o := telemetry.New("device")
	mux := http.NewServeMux()
	o.Register(mux)
	r.ctl.Register(mux)
	srv := httpserver.New(httpserver.Config{Name: "ops", Addr: "127.0.0.1:0", Handler: mux, Logger: log})
	if err := srv.Start(); err != nil {
		d.Close()
		t.Fatal(err)
	}
	r.api, r.srv = srv.Addr(), srv
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *rig) call(t *testing.T, cmd string, args ...string) *control.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := control.Call(ctx, r.api, cmd, args)
	if err != nil {
		t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return rep
}

// play watches room through the demo's bridge with a Go ERS viewer: the
// device's offer, answer, ICE, then RTP packets.
func (r *rig) play(room string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := ersviewer.Play(ctx, ersviewer.Options{Bridge: r.demo.Bridge, Room: room, Stream: "sample", Packets: 20})
	return err
}

// dataOf re-decodes a reply's data into v.
func dataOf(t *testing.T, rep *control.Reply, v any) {
	t.Helper()
	b, _ := json.Marshal(rep.Data)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("reply data %s: %v", b, err)
	}
}

// TestStartStopThroughAPI drives the device through its HTTP API: a room
// started with startWebRTC is found by the bridge and played; starting it
// again fails; listConfig lists it; stopWebRTC ends it and lookups lose it.
func TestStartStopThroughAPI(t *testing.T) {
	state := filepath.Join(t.TempDir(), "device-webrtc.json")
	r := newRig(t, state, nil)

	rep := r.call(t, "startWebRTC", "roomid=frontdoor", "ersip=192.0.2.10", "ersport=4545")
	if !rep.OK() || rep.Description != control.DescStarted {
		t.Fatalf("startWebRTC: %+v", rep)
	}
	var started control.WebRTCConfig
	dataOf(t, rep, &started)
	if started.RoomID != "frontdoor" || started.ConfigID != 1 || !started.KeepAlive || started.ERSIP != "192.0.2.10" || started.ERSPort != 4545 {
		t.Errorf("startWebRTC data: %+v", started)
	}
	if err := r.play("frontdoor"); err != nil {
		t.Fatalf("viewer of a room started through the API: %v", err)
	}

	// A room can only be started once, also in other spellings of the
	// request, and a room the device was configured with counts too.
	for _, again := range []string{"startwebrtc?roomid=frontdoor", "?c=startWebRTC&roomid=demo"} {
		resp, err := http.Get("http://" + r.api + "/" + again)
		if err != nil {
			t.Fatal(err)
		}
		var rep control.Reply
		json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if rep.Status != control.StatusFail || !strings.Contains(rep.Description, "a room can only be started once") {
			t.Errorf("%s: %+v, want FAIL, started once", again, rep)
		}
	}

	rep = r.call(t, "listConfig")
	var list struct{ WebRTC []control.WebRTCConfig }
	dataOf(t, rep, &list)
	if !rep.OK() || len(list.WebRTC) != 1 || list.WebRTC[0].RoomID != "frontdoor" || list.WebRTC[0].ConfigID != 1 {
		t.Fatalf("listConfig: %+v", rep)
	}

	rep = r.call(t, "stopWebRTC", "roomid=frontdoor")
	if !rep.OK() || rep.Description != control.DescStopped {
		t.Fatalf("stopWebRTC: %+v", rep)
	}
	var stopped map[string]any
	dataOf(t, rep, &stopped)
	if stopped["roomid"] != "frontdoor" || stopped["ersip"] != "192.0.2.10" || stopped["ersport"] != 4545.0 {
		t.Errorf("stopWebRTC data: %v", stopped)
	}
	if rep := r.call(t, "stopWebRTC", "roomid=frontdoor"); rep.OK() {
		t.Errorf("second stopWebRTC: %+v, want FAIL", rep)
	}
	if rep := r.call(t, "listConfig"); !strings.Contains(mustJSON(rep), `"webrtc":[]`) {
		t.Errorf("listConfig after stop: %s", mustJSON(rep))
	}
	// The device refuses the room at once, whatever the bridge cached.
	if err := r.play("frontdoor"); err == nil {
		t.Fatal("a viewer played a stopped room")
	}
	// And lookups lose it once the last record expires.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := mesh.New(ctx, mesh.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: r.demo.BootstrapAddrs(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	res := mesh.NewResolver(n, mesh.ResolverOptions{CacheTTL: 100 * time.Millisecond, NegativeTTL: 50 * time.Millisecond})
	for {
		_, err := res.Resolve(ctx, "frontdoor")
		if errors.Is(err, mesh.ErrNotFound) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("a stopped room still resolves: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The state file no longer holds it.
	if saved, err := control.LoadState(state); err != nil || len(saved) != 0 {
		t.Errorf("state after stop: %v %v", saved, err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestKeepAliveSurvivesRestart saves a keepAlive startWebRTC, stops the
// device and starts a new one on the same state file: the room is served
// again, with its configId, and a viewer plays it. keepAlive=0 commands
// are not saved.
func TestKeepAliveSurvivesRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "ersmesh", "device-webrtc.json")
	first := newRig(t, state, nil)
	if rep := first.call(t, "startWebRTC", "roomid=frontdoor", "token=door-secret"); !rep.OK() {
		t.Fatalf("startWebRTC: %+v", rep)
	}
	if rep := first.call(t, "startWebRTC", "roomid=porch", "keepAlive=0"); !rep.OK() {
		t.Fatalf("startWebRTC keepAlive=0: %+v", rep)
	}
	// ersviewer cannot prove a room secret; porch has none.
	if rep := first.call(t, "startWebRTC", "roomid=garden", "keepAlive=1"); !rep.OK() {
		t.Fatalf("startWebRTC garden: %+v", rep)
	}
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600: it holds tokens", fi.Mode().Perm())
	}
	// listConfig does not show tokens.
	if s := mustJSON(first.call(t, "listConfig")); strings.Contains(s, "door-secret") {
		t.Errorf("listConfig shows a token: %s", s)
	}
	first.stop(t)

	second := newRig(t, state, nil)
	rooms := second.demo.Device().Rooms()
	if !slices.Equal(rooms, []string{"demo", "frontdoor", "garden"}) {
		t.Fatalf("rooms after restart: %v, want demo, frontdoor and garden (not porch: keepAlive=0)", rooms)
	}
	var list struct{ WebRTC []control.WebRTCConfig }
	dataOf(t, second.call(t, "listConfig"), &list)
	if len(list.WebRTC) != 2 || list.WebRTC[0].ConfigID != 1 || list.WebRTC[1].ConfigID != 3 {
		t.Errorf("listConfig after restart: %+v", list.WebRTC)
	}
	if err := second.play("garden"); err != nil {
		t.Fatalf("viewer of a restored room: %v", err)
	}
	// New commands continue the configIds.
	rep := second.call(t, "startWebRTC", "roomid=porch")
	var sc control.WebRTCConfig
	dataOf(t, rep, &sc)
	if !rep.OK() || sc.ConfigID != 4 {
		t.Errorf("startWebRTC after restart: %+v", rep)
	}
}

// hookReceiver is a webhook receiver that records the events it gets.
type hookReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	evs   []node.Event
	stall chan struct{} // when non-nil, every request waits for it to close
}

func newHookReceiver(t *testing.T, stall bool) *hookReceiver {
	h := &hookReceiver{}
	if stall {
		h.stall = make(chan struct{})
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.stall != nil {
			<-h.stall
		}
		var ev node.Event
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&ev) != nil {
			t.Errorf("webhook request %s %s is not a JSON event", r.Method, r.Header.Get("Content-Type"))
			return
		}
		h.mu.Lock()
		h.evs = append(h.evs, ev)
		h.mu.Unlock()
	}))
	return h
}

func (h *hookReceiver) types(room string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, ev := range h.evs {
		if ev.Room == room {
			out = append(out, ev.Type)
		}
	}
	return out
}

// TestWebhookEvents: a webhook receiver gets the device's events of a room
// started through the API, watched and stopped, in order.
func TestWebhookEvents(t *testing.T) {
	recv := newHookReceiver(t, false)
	defer recv.srv.Close()
	hook, err := webhook.New(webhook.Config{URL: recv.srv.URL + "/events"})
	if err != nil {
		t.Fatal(err)
	}
	defer hook.Close()
	r := newRig(t, "", hook.Send)
	if rep := r.call(t, "startWebRTC", "roomid=frontdoor"); !rep.OK() {
		t.Fatalf("startWebRTC: %+v", rep)
	}
	if err := r.play("frontdoor"); err != nil {
		t.Fatal(err)
	}
	// The viewer has left; its session ends on the device.
	want := []string{node.EventStarted, node.EventPeerConnectionCreated, node.EventPeerStreamStarted,
		node.EventPeerStreamClosed, node.EventPeerConnectionClosed}
	waitTypes(t, recv, "frontdoor", want)
	if rep := r.call(t, "stopWebRTC", "roomid=frontdoor"); !rep.OK() {
		t.Fatalf("stopWebRTC: %+v", rep)
	}
	waitTypes(t, recv, "frontdoor", append(want, node.EventStopped))
	recv.mu.Lock()
	for _, ev := range recv.evs {
		if ev.Time.IsZero() || (ev.Type == node.EventPeerStreamStarted && (ev.Session == "" || ev.Stream != "sample" || ev.Bridge == "")) {
			t.Errorf("event lacks its fields: %+v", ev)
		}
	}
	recv.mu.Unlock()
}

func waitTypes(t *testing.T, h *hookReceiver, room string, want []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !slices.Equal(h.types(room), want) {
		if time.Now().After(deadline) {
			t.Fatalf("webhook events of %s: %v, want %v", room, h.types(room), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStalledWebhookBlocksNothing: a receiver that never answers fills the
// webhook's queue; events are dropped and counted, and viewers play as
// if there were no webhook.
func TestStalledWebhookBlocksNothing(t *testing.T) {
	recv := newHookReceiver(t, true)
	defer recv.srv.Close()
	hook, err := webhook.New(webhook.Config{URL: recv.srv.URL, QueueSize: 1, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, "", hook.Send)
	if rep := r.call(t, "startWebRTC", "roomid=frontdoor"); !rep.OK() {
		t.Fatalf("startWebRTC with a stalled webhook: %+v", rep)
	}
	for range 2 {
		if err := r.play("frontdoor"); err != nil {
			t.Fatalf("viewer with a stalled webhook: %v", err)
		}
	}
	if _, _, dropped := hook.Stats(); dropped == 0 {
		t.Error("a stalled receiver with a queue of one dropped no events")
	}
	close(recv.stall)
	hook.Close()
}

// TestRefusedClients: only loopback clients, and no web pages, may command
// the device.
func TestRefusedClients(t *testing.T) {
	r := newRig(t, "", nil)
	for _, tc := range []struct {
		name   string
		remote string
		header map[string]string
		host   string
	}{
		{"non-loopback client", "192.0.2.7:40000", nil, ""},
		{"IPv6 non-loopback client", "[2001:db8::1]:40000", nil, ""},
		{"web page (Origin)", "127.0.0.1:40000", map[string]string{"Origin": "https://evil.example"}, ""},
		{"web page (Sec-Fetch-Site)", "127.0.0.1:40000", map[string]string{"Sec-Fetch-Site": "cross-site"}, ""},
		{"DNS rebinding", "127.0.0.1:40000", nil, "evil.example:7777"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/startWebRTC?roomid=evil", nil)
		req.RemoteAddr = tc.remote
		if tc.host != "" {
			req.Host = tc.host
		} else {
			req.Host = "127.0.0.1:7777"
		}
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		r.ctl.ServeHTTP(w, req)
		var rep control.Reply
		json.Unmarshal(w.Body.Bytes(), &rep)
		if w.Code != http.StatusForbidden || rep.Status != control.StatusFail {
			t.Errorf("%s: %d %s, want 403 FAIL", tc.name, w.Code, w.Body)
		}
	}
	if slices.Contains(r.demo.Device().Rooms(), "evil") {
		t.Fatal("a refused client started a room")
	}
	// Loopback through the real listener works, also with the EMS
	// base64 params.
	resp, err := http.Get("http://" + r.api + "/listConfig?params=")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("loopback listConfig: %s", resp.Status)
	}
	// The ops endpoints are still there beside the commands.
	resp, err = http.Get("http://" + r.api + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz beside the commands: %s", resp.Status)
	}
}

// TestRestoreRetries: a saved room that cannot be published at start (the
// device knows no DHT peer yet) is listed, retried, and served once the
// device reaches the mesh.
func TestRestoreRetries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	loopback := []string{"/ip4/127.0.0.1/tcp/0"}
	boot, err := mesh.New(ctx, mesh.Config{ListenAddrs: loopback, Server: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer boot.Close()
	alone, err := mesh.New(ctx, mesh.Config{ListenAddrs: loopback, Server: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	stream, err := media.NewSampleStream("sample", quiet)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := node.New(ctx, node.Config{Mesh: alone, Streams: map[string]*media.Stream{"sample": stream}, RecordTTL: recordTTL, Logger: quiet})
	if err != nil {
		stream.Close()
		t.Fatal(err)
	}
	defer dev.Close()

	state := filepath.Join(t.TempDir(), "state.json")
	if err := control.SaveState(state, []control.WebRTCConfig{{ConfigID: 7, RoomID: "late", KeepAlive: true}}); err != nil {
		t.Fatal(err)
	}
	c, err := control.New(control.Config{Device: dev, StateFile: state, Logger: quiet, StartTimeout: time.Second, RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if len(dev.Rooms()) != 0 {
		t.Fatalf("a room was published with no DHT peer: %v", dev.Rooms())
	}
	if s := mustJSON(c.Do(ctx, control.Command{Name: control.CmdListConfig})); !strings.Contains(s, `"configId":7`) {
		t.Errorf("a pending restored room is not listed: %s", s)
	}
	// Starting it by hand meanwhile is still "started once".
	if rep := c.Do(ctx, control.Command{Name: control.CmdStartWebRTC, Params: map[string]string{"roomid": "late"}}); rep.OK() {
		t.Errorf("start of a pending restored room: %+v", rep)
	}
	if err := alone.Libp2p().Connect(ctx, peer.AddrInfo{ID: boot.ID(), Addrs: boot.Libp2p().Addrs()}); err != nil {
		t.Fatal(err)
	}
	// Served once its start has answered (the device lists a room from the
	// moment its record is being published).
	for !c.Running("late") {
		if ctx.Err() != nil {
			t.Fatalf("the restored room was not retried into service: %v", dev.Rooms())
		}
		time.Sleep(50 * time.Millisecond)
	}
	res := mesh.NewResolver(boot, mesh.ResolverOptions{})
	if info, err := res.Resolve(ctx, "late"); err != nil || info.ID != alone.ID() {
		t.Fatalf("resolve the retried room: %v %v", info, err)
	}
}

// TestRegisterWithBridge: startWebRTC's ersip/ersport make the device hand
// its room to that bridge directly. The bridge here is in another mesh, so
// a DHT lookup there could never find the room: the viewer plays only
// because of the direct registration, which ends with stopWebRTC.
func TestRegisterWithBridge(t *testing.T) {
	r := newRig(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	other, err := demo.Start(ctx, demo.Config{Addr: "127.0.0.1:0", Room: "elsewhere", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	host := strings.TrimPrefix(other.Bridge, "http://")
	ip, port, _ := strings.Cut(host, ":")

	// Before: the other mesh's bridge cannot find the room.
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	_, err = ersviewer.Play(short, ersviewer.Options{Bridge: other.Bridge, Room: "faraway", Stream: "sample", Packets: 5})
	cancelShort()
	if err == nil {
		t.Fatal("a bridge of another mesh played a room it cannot know of")
	}

	rep := r.call(t, "startWebRTC", "roomid=faraway", "ersip="+ip, "ersport="+port)
	if rep.Status != control.StatusSuccess {
		t.Fatalf("startWebRTC: %+v", rep)
	}
	_, err = ersviewer.Play(ctx, ersviewer.Options{Bridge: other.Bridge, Room: "faraway", Stream: "sample", Packets: 20})
	if err != nil {
		t.Fatalf("viewer through the bridge the room was registered with: %v", err)
	}
	if rep := r.call(t, "stopWebRTC", "roomid=faraway"); rep.Status != control.StatusSuccess {
		t.Fatalf("stopWebRTC: %+v", rep)
	}
}
