package role

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/control"
	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/node/talkback"
	"github.com/ersmesh/ersmesh/node/webhook"
)

// DeviceConfig configures a device.
type DeviceConfig struct {
	Mesh         MeshConfig
	DHTServer    bool   // serve the DHT (a publicly reachable device)
	NATTraversal bool   // relay reservations and hole punching behind NAT
	Reachability string // "", public or private: skips AutoNAT
	// RelayWait, with NATTraversal, holds the first publication until the
	// device holds a relay reservation (at most this long), so that its
	// first records already carry relayed addresses. Zero: publish at once
	// and again when the addresses change.
	RelayWait time.Duration
	Rooms     []string
	// Streams are NAME=SOURCE values (media.OpenStreams); none serves the
	// sample clip as "sample".
	Streams            []string
	Stdin              io.Reader // the "-" source; default os.Stdin
	RecordTTL          time.Duration
	LoopbackCandidates bool
	// Ops is the address of /metrics, /healthz, /readyz and the control
	// API; "" none.
	Ops            string
	State          string   // keepAlive commands across restarts; "" none
	ControlAllow   []string // clients allowed to send control commands; empty: loopback
	Webhook        string   // URL events are POSTed to; "" none
	WebhookTimeout time.Duration
	RoomSecrets    []string // ROOM=SECRET
	Talkback       []string // STREAM=SINK (node/talkback.ParseSink)
	TalkSecrets    []string // STREAM=SECRET
	Limits         node.Limits
	// Relay caps the direct viewers and shapes the relay tree (node.RelayConfig).
	Relay node.RelayConfig
	// UplinkMbit is Relay.UplinkBudget in Mbit/s, as the flag takes it.
	UplinkMbit float64
	// PublishTimeout bounds the first publication of the rooms; default
	// 30 s.
	PublishTimeout time.Duration
	// Tune, if set, adjusts the device's config last (tests: record
	// lifetimes, event hooks, rooms owned by the device's own peer ID).
	Tune   func(*node.Config)
	Logger *slog.Logger
}

// DefaultDeviceConfig has the command line's defaults.
func DefaultDeviceConfig() DeviceConfig {
	return DeviceConfig{
		Mesh:           DefaultMeshConfig("device"),
		NATTraversal:   true,
		RecordTTL:      node.DefaultRecordTTL,
		Ops:            "127.0.0.1:7777",
		State:          inConfigDir("device-webrtc.json"),
		WebhookTimeout: webhook.DefaultTimeout,
		Relay:          node.RelayConfig{Depth: node.DefaultRelayDepth, Fanout: node.DefaultRelayFanout},
		Limits: node.Limits{
			MaxStreamsPerPeer: node.DefaultMaxStreamsPerPeer, MaxStreams: node.DefaultMaxStreams,
			StreamRate: node.DefaultStreamRate, StreamBurst: node.DefaultStreamBurst,
			UnconnectedTimeout: node.DefaultUnconnectedTimeout,
		},
	}
}

// Flags binds the device's flags.
func (c *DeviceConfig) Flags(fs *flag.FlagSet) {
	c.Mesh.Flags(fs)
	listVar(fs, &c.Rooms, "room", "room `name` to publish: name, or name@<this device's peer ID> for an owned room (repeatable; more can be started with ersmesh ctl startWebRTC)")
	listVar(fs, &c.Streams, "stream", "`NAME=SOURCE` to serve (repeatable); SOURCE is sample:, an H.264 or H.265 Annex-B file[,audio=file.aac|file.ogg][,fps=N], an MP4 file, - for stdin, rtsp://..., or rtp://host[:port],sdp=file.sdp (ports from the SDP); a bare NAME serves the sample clip")
	fs.DurationVar(&c.RecordTTL, "record-ttl", c.RecordTTL, "how long a room record stays valid; republished at a third of it")
	fs.BoolVar(&c.DHTServer, "dht-server", c.DHTServer, "serve the DHT (only when this device is publicly reachable)")
	fs.BoolVar(&c.LoopbackCandidates, "loopback-candidates", c.LoopbackCandidates, "also offer 127.0.0.1 ICE candidates (viewer on the same machine)")
	fs.BoolVar(&c.NATTraversal, "nat-traversal", c.NATTraversal, "behind NAT, stay reachable through relay reservations on the bootstrap nodes and hole punching")
	fs.StringVar(&c.Reachability, "reachability", c.Reachability, "skip AutoNAT and take this reachability: public or private")
	fs.StringVar(&c.Ops, "ops", c.Ops, "`address` for /metrics, /healthz, /readyz and the control API (startWebRTC, ...; empty: none)")
	fs.StringVar(&c.State, "state", c.State, "`file` keeping the keepAlive startWebRTC commands across restarts (empty: none)")
	listVar(fs, &c.ControlAllow, "control-allow", "client `prefix` or address allowed to send control commands (repeatable; default loopback)")
	fs.StringVar(&c.Webhook, "webhook", c.Webhook, "`URL` to POST device events to as JSON (webRTCStarted, webRTCPeerStreamStarted, ...)")
	fs.DurationVar(&c.WebhookTimeout, "webhook-timeout", c.WebhookTimeout, "how long one webhook POST may take; events queued meanwhile beyond the queue are dropped")
	listVar(fs, &c.RoomSecrets, "room-secret", "`ROOM=SECRET`: viewers of ROOM must prove they know SECRET (the player's #secret=); bridges never see it; make one with ersmesh secret (repeatable)")
	listVar(fs, &c.TalkSecrets, "talk-secret", "`STREAM=SECRET`: only viewers who prove SECRET (the player's #talk=) may talk to STREAM's camera; the room secret alone then lets them watch, not talk; make one with ersmesh secret (repeatable)")
	listVar(fs, &c.Talkback, "talkback", "`STREAM=SINK`: viewers who proved the room secret (or the stream's --talk-secret) may talk to STREAM's camera; SINK is file:PATH (an Ogg Opus file per talk spurt), exec:COMMAND ARGS (each spurt as Ogg Opus on the command's stdin, e.g. exec:ffmpeg -i - -f alsa default), pcm:RATE:COMMAND ARGS (each spurt as s16le mono PCM at RATE Hz, e.g. pcm:16000:aplay -f S16_LE -r 16000) or rtsp://CAMERA/PATH (the camera's ONVIF audio backchannel, G.711 transcoded by ffmpeg) (repeatable; default none)")
	fs.IntVar(&c.Limits.MaxStreamsPerPeer, "max-streams-per-bridge", c.Limits.MaxStreamsPerPeer, "signalling streams (viewers, joined or joining) one bridge may hold open")
	fs.IntVar(&c.Limits.MaxStreams, "max-streams", c.Limits.MaxStreams, "signalling streams all bridges together may hold open")
	fs.Float64Var(&c.Limits.StreamRate, "stream-rate", c.Limits.StreamRate, "new signalling streams per second from one bridge, after --stream-burst")
	fs.IntVar(&c.Limits.StreamBurst, "stream-burst", c.Limits.StreamBurst, "new signalling streams one bridge may open at once")
	fs.IntVar(&c.Relay.MaxViewers, "max-viewers", c.Relay.MaxViewers, "viewers the device serves itself (0: no cap); fmp4 viewers beyond are served by other viewers relaying the signed stream (docs/relay.md), or told the room is full")
	fs.Float64Var(&c.UplinkMbit, "uplink-budget", c.UplinkMbit, "`Mbit/s` the device may send to the viewers it serves itself, each counted at its stream's measured rate (0: no budget); viewers beyond are relayed or told the room is full")
	fs.IntVar(&c.Relay.Depth, "relay-depth", c.Relay.Depth, "deepest place in the relay tree (the device's own viewers are at depth 1)")
	fs.IntVar(&c.Relay.Fanout, "relay-fanout", c.Relay.Fanout, "most viewers one relaying viewer serves")
	fs.DurationVar(&c.Limits.UnconnectedTimeout, "unconnected-timeout", c.Limits.UnconnectedTimeout, "end a viewer session whose WebRTC connection is not up this long after its join")
}

// Device is a running device.
// Its ops endpoints (OpsAddr) serve the control API too; Close stops
// serving, ends every viewer, withdraws from the mesh and flushes the
// webhook, and waits for all of it.
type Device struct {
	served
	cfg    DeviceConfig
	host   *mesh.Host
	device *node.Device
	ctl    *control.Controller
}

// NewDevice checks cfg, joins the mesh, opens the streams and publishes
// the rooms; Start restores the saved rooms and serves the ops endpoints
// and the control API.
func NewDevice(ctx context.Context, cfg DeviceConfig) (_ *Device, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Stdin == nil {
		cfg.Stdin = os.Stdin
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 30 * time.Second
	}
	log := cfg.Logger
	allow, err := parsePrefixes("control-allow", cfg.ControlAllow)
	if err != nil {
		return nil, err
	}
	if len(cfg.Rooms) == 0 && cfg.Ops == "" && cfg.State == "" {
		return nil, keyErr("room", "required (or the control API, --ops, to start rooms with ersmesh ctl startWebRTC)")
	}
	secrets := map[string]string{}
	for _, f := range cfg.RoomSecrets {
		r, sec, ok := strings.Cut(f, "=")
		if !ok || r == "" || sec == "" {
			return nil, keyErr("room-secret", "%q: want ROOM=SECRET", f)
		}
		secrets[r] = sec
	}
	talk := map[string]talkback.Sink{}
	for _, f := range cfg.Talkback {
		st, spec, ok := strings.Cut(f, "=")
		if !ok || st == "" || spec == "" {
			return nil, keyErr("talkback", "%q: want STREAM=SINK", f)
		}
		sink, err := talkback.ParseSink(spec)
		if err != nil {
			return nil, keyErr("talkback", "%v", err)
		}
		if c, ok := sink.(*talkback.CommandSink); ok {
			c.Log = log.With("talkback", st)
		}
		talk[st] = sink
	}
	talkSecrets := map[string]string{}
	for _, f := range cfg.TalkSecrets {
		st, sec, ok := strings.Cut(f, "=")
		if !ok || st == "" || sec == "" {
			return nil, keyErr("talk-secret", "%q: want STREAM=SECRET", f)
		}
		if talk[st] == nil {
			return nil, keyErr("talk-secret", "stream %q has no --talkback sink", st)
		}
		talkSecrets[st] = sec
	}
	if len(cfg.Mesh.Bootstrap) == 0 {
		return nil, keyErr("bootstrap", "required: the multiaddr of a bootstrap node (ersmesh bootstrap prints it)")
	}
	mcfg, err := cfg.Mesh.mesh(cfg.DHTServer, log)
	if err != nil {
		return nil, err
	}
	mcfg.NATTraversal = cfg.NATTraversal
	mcfg.Reachability = mesh.Reachability(cfg.Reachability)

	d := &Device{served: newServed("device", log), cfg: cfg}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	var onEvent func(node.Event)
	var hook *webhook.Hook
	if cfg.Webhook != "" {
		if hook, err = webhook.New(webhook.Config{URL: cfg.Webhook, Timeout: cfg.WebhookTimeout, Logger: log}); err != nil {
			return nil, &ConfigError{Key: "webhook", Err: err}
		}
		d.st.push(hook.Close) // closed after the device: its last events go out
		onEvent = hook.Send
	}
	if d.host, err = mesh.New(ctx, mcfg); err != nil {
		return nil, err
	}
	d.st.push(d.host.Close)
	if cfg.NATTraversal && cfg.RelayWait > 0 {
		if err := waitRelay(ctx, d.host, cfg.RelayWait); err != nil {
			return nil, err
		}
	}
	streams, err := media.OpenStreams(cfg.Streams, cfg.Stdin, log)
	if err != nil {
		return nil, &ConfigError{Key: "stream", Err: err}
	}
	for st := range talk {
		if streams[st] == nil {
			for _, s := range streams {
				s.Close()
			}
			return nil, keyErr("talkback", "stream %q is not one of this device's --stream names", st)
		}
	}
	pubCtx, cancel := context.WithTimeout(ctx, cfg.PublishTimeout)
	defer cancel()
	if cfg.Relay.MaxViewers < 0 || cfg.UplinkMbit < 0 || cfg.Relay.Depth < 0 || cfg.Relay.Fanout < 0 {
		return nil, keyErr("max-viewers", "--max-viewers, --uplink-budget, --relay-depth and --relay-fanout cannot be negative")
	}
	ncfg := node.Config{
		Mesh:            d.host,
		Rooms:           cfg.Rooms,
		Streams:         streams,
		RecordTTL:       cfg.RecordTTL,
		IncludeLoopback: cfg.LoopbackCandidates,
		Secrets:         secrets,
		Talkback:        talk,
		TalkSecrets:     talkSecrets,
		Limits:          cfg.Limits,
		Relay:           relayConfig(cfg),
		OnEvent:         onEvent,
		Logger:          log,
	}
	if cfg.Tune != nil {
		cfg.Tune(&ncfg)
	}
	if d.device, err = node.New(pubCtx, ncfg); err != nil {
		for _, s := range ncfg.Streams { // the device owns them once it runs
			s.Close()
		}
		return nil, err
	}
	d.st.push(d.device.Close)
	if d.ctl, err = control.New(control.Config{Device: d.device, StateFile: cfg.State, Allow: allow, Logger: log}); err != nil {
		return nil, err
	}
	d.st.push(d.ctl.Close)
	d.ops.Ready("mesh", d.host.Ready)
	if err := errors.Join(d.host.RegisterMetrics(d.ops.Registerer()), d.device.RegisterMetrics(d.ops.Registerer())); err != nil {
		return nil, err
	}
	if hook != nil {
		if err := hook.RegisterMetrics(d.ops.Registerer()); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// waitRelay waits until h holds a relay reservation, at most wait.
func waitRelay(ctx context.Context, h *mesh.Host, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for len(h.RelaysHeld()) == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no relay reservation within %s", wait)
		case <-t.C:
		}
	}
	return nil
}

// Start runs the saved keepAlive commands again (--state) and serves the
// ops endpoints and the control API.
func (d *Device) Start(ctx context.Context) error {
	pubCtx, cancel := context.WithTimeout(ctx, d.cfg.PublishTimeout)
	defer cancel()
	if err := d.ctl.Restore(pubCtx); err != nil {
		return &ConfigError{Key: "state", Err: err}
	}
	mux := http.NewServeMux()
	d.ops.Register(mux)
	d.ctl.Register(mux)
	if err := d.serveOps(d.cfg.Ops, mux); err != nil {
		return err
	}
	if d.opsSrv != nil {
		d.log.Info("control API: startWebRTC, stopWebRTC, listConfig (ersmesh ctl)", "http", d.opsSrv.Addr())
	}
	return nil
}

// Host is the device's libp2p host.
func (d *Device) Host() *mesh.Host { return d.host }

// Device is the device proper: its rooms and viewers.
func (d *Device) Device() *node.Device { return d.device }

// Controller runs the EMS-style commands (startWebRTC, ...) against it.
func (d *Device) Controller() *control.Controller { return d.ctl }

// relayConfig is the node's relay config from the flags.
func relayConfig(cfg DeviceConfig) node.RelayConfig {
	rc := cfg.Relay
	rc.UplinkBudget = cfg.UplinkMbit * 1e6
	return rc
}
