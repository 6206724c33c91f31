package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	ossignal "os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/bootstrap"
	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/media"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = ""

type command struct {
	name, summary string
	run           func(args []string) error
}

func commands() []command {
	return []command{
		{"demo", "run a bootstrap, a bridge and a device on loopback with the sample stream", runDemo},
		{"device", "publish rooms and stream to viewers (the camera side)", runDevice},
		{"bridge", "serve the player and the ERS protocol, relay signalling to devices", runBridge},
		{"bootstrap", "run a stable DHT node for devices and bridges to dial first", runBootstrap},
		{"bench", "run the benchmarks of docs/benchmarks.md and write the report", runBench},
		{"version", "print the version", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "ersmesh: peer-to-peer camera-to-browser streaming over a libp2p mesh")
	fmt.Fprintln(w, "\nUsage: ersmesh <command> [flags]   (ersmesh <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		usage(os.Stderr)
		return errors.New("no command given")
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(os.Stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(args[1:])
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
	}
	usage(os.Stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// meshFlags are the flags every mesh role shares.
type meshFlags struct {
	identity  string
	listen    listFlag
	bootstrap listFlag
	logLevel  string
}

func (m *meshFlags) register(fs *flag.FlagSet, role string) {
	fs.StringVar(&m.identity, "identity", defaultIdentity(role), "Ed25519 identity key `file`, created on first run (keeps the peer ID stable)")
	fs.Var(&m.listen, "listen", "libp2p listen `multiaddr` (repeatable)")
	fs.Var(&m.bootstrap, "bootstrap", "bootstrap peer `multiaddr` with /p2p/<id> (repeatable)")
	fs.StringVar(&m.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

func (m *meshFlags) config(server bool, log *slog.Logger) (mesh.Config, error) {
	cfg := mesh.Config{IdentityFile: m.identity, ListenAddrs: m.listen, Server: server, Logger: log}
	for _, s := range m.bootstrap {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return cfg, fmt.Errorf("--bootstrap %q: %w", s, err)
		}
		cfg.Bootstrap = append(cfg.Bootstrap, a)
	}
	return cfg, nil
}

func defaultIdentity(role string) string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ersmesh", role+".key")
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// interrupted returns a context that ends on Ctrl-C or SIGTERM.
func interrupted() (context.Context, context.CancelFunc) {
	return ossignal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runDemo(args []string) error {
	fs := flag.NewFlagSet("ersmesh demo", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:4545", "bridge HTTP `address`")
	room := fs.String("room", "demo", "room `name`")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	ctx, stop := interrupted()
	defer stop()
	d, err := demo.Start(ctx, demo.Config{Addr: *addr, Room: *room, Logger: log})
	if err != nil {
		return err
	}
	fmt.Printf("\nersmesh demo is running: bootstrap, bridge and device on loopback.\n\n  Open %s\n\nPress Ctrl-C to stop.\n\n", d.URL)
	<-ctx.Done()
	fmt.Println("stopping…")
	return d.Close()
}

func runBootstrap(args []string) error {
	fs := flag.NewFlagSet("ersmesh bootstrap", flag.ContinueOnError)
	var mf meshFlags
	mf.register(fs, "bootstrap")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(mf.listen) == 0 {
		// A fixed port, so the multiaddrs printed below stay the same
		// across restarts and can be written into other nodes' configs.
		mf.listen = listFlag{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}
	}
	log, err := newLogger(mf.logLevel)
	if err != nil {
		return err
	}
	cfg, err := mf.config(true, log)
	if err != nil {
		return err
	}
	ctx, stop := interrupted()
	defer stop()
	n, err := bootstrap.New(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Println("bootstrap node running; give other nodes one of these with --bootstrap:")
	for _, a := range n.Addrs() {
		fmt.Println("  " + a.String())
	}
	<-ctx.Done()
	return n.Close()
}

func runBridge(args []string) error {
	fs := flag.NewFlagSet("ersmesh bridge", flag.ContinueOnError)
	var mf meshFlags
	mf.register(fs, "bridge")
	httpAddr := fs.String("http", bridge.DefaultAddr, "HTTP `address` for the player page and the ERS protocol")
	var stun listFlag
	fs.Var(&stun, "stun", "STUN server `url` handed to browsers and devices, e.g. stun:stun.example.org:3478 (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(mf.logLevel)
	if err != nil {
		return err
	}
	cfg, err := mf.config(true, log)
	if err != nil {
		return err
	}
	ctx, stop := interrupted()
	defer stop()
	n, err := mesh.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	b, err := bridge.New(bridge.Config{
		Host:        n.Host(),
		Resolver:    mesh.NewResolver(n, mesh.ResolverOptions{}),
		STUNServers: stun,
		Logger:      log,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("--http %s: %w", *httpAddr, err)
	}
	log.Info("bridge serving", "http", l.Addr().String(), "peer", n.ID())
	serveErr := make(chan error, 1)
	go func() { serveErr <- b.Serve(l) }()
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		b.Close()
		return err
	}
	err = b.Close()
	<-serveErr
	return err
}

func runDevice(args []string) error {
	fs := flag.NewFlagSet("ersmesh device", flag.ContinueOnError)
	var mf meshFlags
	mf.register(fs, "device")
	var rooms listFlag
	fs.Var(&rooms, "room", "room `name` to publish: name, or name@<this device's peer ID> for an owned room (repeatable)")
	streamName := fs.String("stream", "sample", "stream `name` viewers ask for (serves the built-in sample clip)")
	ttl := fs.Duration("record-ttl", node.DefaultRecordTTL, "how long a room record stays valid; republished at a third of it")
	server := fs.Bool("dht-server", false, "serve the DHT (only when this device is publicly reachable)")
	loopbackCands := fs.Bool("loopback-candidates", false, "also offer 127.0.0.1 ICE candidates (viewer on the same machine)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(rooms) == 0 {
		return errors.New("--room is required")
	}
	if len(mf.bootstrap) == 0 {
		return errors.New("--bootstrap is required: the multiaddr of a bootstrap node (ersmesh bootstrap prints it)")
	}
	log, err := newLogger(mf.logLevel)
	if err != nil {
		return err
	}
	cfg, err := mf.config(*server, log)
	if err != nil {
		return err
	}
	ctx, stop := interrupted()
	defer stop()
	n, err := mesh.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	stream, err := media.NewSampleStream(*streamName, log)
	if err != nil {
		return err
	}
	pubCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, err := node.New(pubCtx, node.Config{
		Mesh:            n,
		Rooms:           rooms,
		Streams:         map[string]*media.Stream{*streamName: stream},
		RecordTTL:       *ttl,
		IncludeLoopback: *loopbackCands,
		Logger:          log,
	})
	if err != nil {
		stream.Close()
		return err
	}
	fmt.Printf("device %s serving rooms %s\n", n.ID(), strings.Join(rooms, ", "))
	<-ctx.Done()
	return d.Close()
}

func runVersion(args []string) error {
	fs := flag.NewFlagSet("ersmesh version", flag.ContinueOnError)
	if err := parse(fs, args); err != nil {
		return err
	}
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	fmt.Println("ersmesh", v)
	return nil
}
