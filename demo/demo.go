package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/role"
	"github.com/ersmesh/ersmesh/tlscert"
	"github.com/ersmesh/ersmesh/turnserver"
)

// Config of a demo. Zero values give what `ersmesh demo` runs.
type Config struct {
	Addr string // bridge HTTP address; default 127.0.0.1:4545
	// Listener, if set, is where the bridge serves instead of Addr.
	Listener net.Listener
	// TLS serves HTTPS with a certificate generated for localhost and
	// 127.0.0.1 (browsers warn; localhost is a secure context over plain
	// HTTP already, so this is for trying TLS). A TuneBridge that sets
	// bridge.Config.TLS brings its own certificate instead.
	TLS    bool
	Room   string // default "demo"
	Stream string // default "sample"
	// Source is the stream's media.OpenStreams source; default "sample:",
	// the built-in clip (H.264 and AAC).
	Source string
	// TURN runs a TURN server on loopback (UDP and TCP, kernel-chosen
	// ports, private peers allowed) and hands its credentials out.
	TURN   bool
	Logger *slog.Logger
	// TuneBridge, if set, adjusts the bridge's config before it starts:
	// limits and timeouts for tests and load runs.
	TuneBridge func(*bridge.Config)
	// TuneDevice, likewise, adjusts the device's config (room secrets, say).
	TuneDevice func(*node.Config)
}

// OneClient is a TuneBridge for tests and benchmarks whose viewers all
// come from one address: the bridge's per-address limits and rates are off.
func OneClient(c *bridge.Config) {
	c.Rates = bridge.Rates{Joins: -1, Messages: -1, Candidates: -1}
	c.Limits = limit.Config{PerIP: -1, PerSubnet: -1, HandshakeRate: -1}
}

// Demo is a running mesh of three roles.
type Demo struct {
	URL    string // the player page for the demo room
	Bridge string // the bridge's origin, http://host:port (WHEP is at Bridge+"/whep/<room>")

	bootstrap *role.Bootstrap
	device    *role.Device
	bridge    *role.Bridge
	certs     *tlscert.Manager
}

var loopback = []string{"/ip4/127.0.0.1/tcp/0"}

// Start brings the demo up and returns once the room can be played.
func Start(ctx context.Context, cfg Config) (_ *Demo, err error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:4545"
	}
	if cfg.Room == "" {
		cfg.Room = "demo"
	}
	if cfg.Source == "" {
		cfg.Source = "sample:"
	}
	if cfg.Stream == "" {
		cfg.Stream = "sample"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Demo{}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()

	// Every role as the command line composes it, with no identity files,
	// no ops endpoints and everything on loopback.
	d.bootstrap, err = role.NewBootstrap(ctx, role.BootstrapConfig{
		Mesh: role.MeshConfig{Listen: loopback}, Logger: cfg.Logger.With("role", "bootstrap"),
	})
	if err != nil {
		return nil, err
	}
	boot := role.Addrs(d.bootstrap.Host().Addrs())

	// On one machine the device is as reachable as any server: let it serve
	// the DHT too, as a publicly reachable device would.
	d.device, err = role.NewDevice(ctx, role.DeviceConfig{
		Mesh:               role.MeshConfig{Listen: loopback, Bootstrap: boot},
		DHTServer:          true,
		Rooms:              []string{cfg.Room},
		Streams:            []string{cfg.Stream + "=" + cfg.Source},
		LoopbackCandidates: true,
		Tune:               cfg.TuneDevice,
		Logger:             cfg.Logger.With("role", "device"),
	})
	if err != nil {
		return nil, fmt.Errorf("start device: %w", err)
	}
	if err := d.device.Start(ctx); err != nil {
		return nil, err
	}

	bcfg := role.BridgeConfig{
		Mesh:     role.MeshConfig{Listen: loopback, Bootstrap: boot},
		HTTP:     cfg.Addr,
		Listener: cfg.Listener,
		Tune:     cfg.TuneBridge,
		Logger:   cfg.Logger.With("role", "bridge"),
	}
	if cfg.TLS {
		d.certs, err = tlscert.New(tlscert.Config{SelfSigned: []string{"localhost", "127.0.0.1", "::1"}, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		bcfg.Tune = func(c *bridge.Config) {
			c.TLS = d.certs.TLSConfig()
			if cfg.TuneBridge != nil {
				cfg.TuneBridge(c)
			}
		}
	}
	if cfg.TURN {
		bcfg.TURN = role.BridgeTURNConfig{Run: true, TURNServerConfig: role.TURNServerConfig{
			Listen: "127.0.0.1", Port: turnserver.Ephemeral,
			// Every peer of the demo is on loopback.
			AllowPrivatePeers: true,
		}}
	}
	d.bridge, err = role.NewBridge(ctx, bcfg)
	if err != nil {
		return nil, fmt.Errorf("start bridge: %w", err)
	}
	if err := d.bridge.Start(ctx); err != nil {
		return nil, fmt.Errorf("bridge cannot listen on %s: %w", cfg.Addr, err)
	}

	q := url.Values{"room": {cfg.Room}, "stream": {cfg.Stream}}
	d.Bridge = d.bridge.URL()
	d.URL = d.Bridge + "/?" + q.Encode()
	return d, nil
}

// BootstrapAddrs are the demo's bootstrap multiaddrs, for a second device or
// bridge started by hand.
func (d *Demo) BootstrapAddrs() []multiaddr.Multiaddr { return d.bootstrap.Host().Addrs() }

// Device is the demo's device, for tests that look at its viewers.
func (d *Demo) Device() *node.Device { return d.device.Device() }

// Close stops every role, newest first, and waits for each.
func (d *Demo) Close() error {
	var errs []error
	if d.bridge != nil {
		errs = append(errs, d.bridge.Close())
	}
	if d.device != nil {
		errs = append(errs, d.device.Close())
	}
	if d.certs != nil {
		errs = append(errs, d.certs.Close())
	}
	if d.bootstrap != nil {
		errs = append(errs, d.bootstrap.Close())
	}
	return errors.Join(errs...)
}
