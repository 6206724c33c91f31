package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/bootstrap"
	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/media"
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

// Demo is a running mesh of three roles.
type Demo struct {
	URL    string // the player page for the demo room
	Bridge string // the bridge's origin, http://host:port (WHEP is at Bridge+"/whep/<room>")

	bootstrap *mesh.Host
	bridgeN   *mesh.Host
	deviceN   *mesh.Host
	bridge    *bridge.Bridge
	device    *node.Device
	turn      *turnserver.Server
	certs     *tlscert.Manager
	serving   bool
	serveErr  chan error
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
	if cfg.Stream == "" {
		cfg.Stream = "sample"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Demo{serveErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()

	d.bootstrap, err = bootstrap.New(ctx, mesh.Config{ListenAddrs: loopback, Logger: cfg.Logger.With("role", "bootstrap")})
	if err != nil {
		return nil, err
	}
	boot := d.bootstrap.Addrs()

	d.bridgeN, err = mesh.New(ctx, mesh.Config{ListenAddrs: loopback, Bootstrap: boot, Server: true, Logger: cfg.Logger.With("role", "bridge")})
	if err != nil {
		return nil, fmt.Errorf("start bridge node: %w", err)
	}
	// On one machine the device is as reachable as any server: let it serve
	// the DHT too, as a publicly reachable device would.
	d.deviceN, err = mesh.New(ctx, mesh.Config{ListenAddrs: loopback, Bootstrap: boot, Server: true, Logger: cfg.Logger.With("role", "device")})
	if err != nil {
		return nil, fmt.Errorf("start device node: %w", err)
	}

	stream, err := media.NewSampleStream(cfg.Stream, cfg.Logger.With("role", "device"))
	if err != nil {
		return nil, err
	}
	dcfg := node.Config{
		Mesh:            d.deviceN,
		Rooms:           []string{cfg.Room},
		Streams:         map[string]*media.Stream{cfg.Stream: stream},
		IncludeLoopback: true,
		Logger:          cfg.Logger.With("role", "device"),
	}
	if cfg.TuneDevice != nil {
		cfg.TuneDevice(&dcfg)
	}
	d.device, err = node.New(ctx, dcfg)
	if err != nil {
		stream.Close()
		return nil, fmt.Errorf("start device: %w", err)
	}

	var issuer *turnserver.Issuer
	if cfg.TURN {
		secret := rand.Text()
		d.turn, err = turnserver.New(turnserver.Config{
			Secret: secret, ListenIP: "127.0.0.1",
			UDPPort: turnserver.Ephemeral, TCPPort: turnserver.Ephemeral,
			// Every peer of the demo is on loopback.
			Policy: turnserver.Policy{AllowPrivate: true},
			Logger: cfg.Logger.With("role", "turn"),
		})
		if err != nil {
			return nil, err
		}
		issuer = &turnserver.Issuer{Secret: secret, URLs: d.turn.URLs("")}
	}
	bcfg := bridge.Config{
		Host:     d.bridgeN.Libp2p(),
		Resolver: mesh.NewResolver(d.bridgeN, mesh.ResolverOptions{}),
		TURN:     issuer,
		Logger:   cfg.Logger.With("role", "bridge"),
	}
	if cfg.TLS {
		d.certs, err = tlscert.New(tlscert.Config{SelfSigned: []string{"localhost", "127.0.0.1", "::1"}, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		bcfg.TLS = d.certs.TLSConfig()
	}
	if cfg.TuneBridge != nil {
		cfg.TuneBridge(&bcfg)
	}
	d.bridge, err = bridge.New(bcfg)
	if err != nil {
		return nil, err
	}
	l := cfg.Listener
	if l == nil {
		if l, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("bridge cannot listen on %s: %w", cfg.Addr, err)
		}
	}
	d.serving = true
	go func() { d.serveErr <- d.bridge.Serve(l) }()

	q := url.Values{"room": {cfg.Room}, "stream": {cfg.Stream}}
	scheme := "http://"
	if bcfg.TLS != nil {
		scheme = "https://"
	}
	d.Bridge = scheme + l.Addr().String()
	d.URL = d.Bridge + "/?" + q.Encode()
	return d, nil
}

// BootstrapAddrs are the demo's bootstrap multiaddrs, for a second device or
// bridge started by hand.
func (d *Demo) BootstrapAddrs() []multiaddr.Multiaddr { return d.bootstrap.Addrs() }

// Device is the demo's device, for tests that look at its viewers.
func (d *Demo) Device() *node.Device { return d.device }

// Close stops every role, newest first, and waits for each.
func (d *Demo) Close() error {
	var errs []error
	if d.bridge != nil {
		errs = append(errs, d.bridge.Close())
		if d.serving {
			errs = append(errs, <-d.serveErr)
		}
	}
	if d.device != nil {
		errs = append(errs, d.device.Close())
	}
	if d.turn != nil {
		errs = append(errs, d.turn.Close())
	}
	if d.certs != nil {
		errs = append(errs, d.certs.Close())
	}
	for _, n := range []*mesh.Host{d.deviceN, d.bridgeN, d.bootstrap} {
		if n != nil {
			errs = append(errs, n.Close())
		}
	}
	return errors.Join(errs...)
}
