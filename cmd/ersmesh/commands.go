package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/bootstrap"
	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/access"
	"github.com/ersmesh/ersmesh/bridge/admin"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/config"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/control"
	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/node/webhook"
	"github.com/ersmesh/ersmesh/telemetry"
	"github.com/ersmesh/ersmesh/tlsmux"
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
		{"turn", "run a TURN server (UDP, TCP, TLS) for viewers and devices behind NATs", runTURN},
		{"ctl", "send an EMS-style command to a running device: startWebRTC, stopWebRTC, listConfig", runCtl},
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
			if errors.Is(err, flag.ErrHelp) || errors.Is(err, config.ErrPrinted) {
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

// Get lets package config see a repeatable flag (a YAML list).
func (l *listFlag) Get() any { return []string(*l) }

// meshFlags are the flags every mesh role shares.
type meshFlags struct {
	identity  string
	listen    listFlag
	bootstrap listFlag
	logLevel  string
	// hardening (docs/hardening.md)
	connLow, connHigh          int
	recordsPerPeer, maxRecords int
}

func (m *meshFlags) register(fs *flag.FlagSet, role string) {
	fs.StringVar(&m.identity, "identity", defaultIdentity(role), "Ed25519 identity key `file`, created on first run (keeps the peer ID stable)")
	fs.Var(&m.listen, "listen", "libp2p listen `multiaddr` (repeatable)")
	fs.Var(&m.bootstrap, "bootstrap", "bootstrap peer `multiaddr` with /p2p/<id> (repeatable)")
	fs.StringVar(&m.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text, or json for log collectors")
	fs.IntVar(&m.connLow, "conn-low", mesh.DefaultConnLow, "libp2p connections kept when trimming (connections carrying viewers are never trimmed)")
	fs.IntVar(&m.connHigh, "conn-high", mesh.DefaultConnHigh, "libp2p connections beyond which the least useful are trimmed down to --conn-low")
	fs.IntVar(&m.recordsPerPeer, "max-records-per-peer", mesh.DefaultMaxRecordsPerPeer, "room records this node stores for the mesh per publisher (DHT servers)")
	fs.IntVar(&m.maxRecords, "max-records", mesh.DefaultMaxRecords, "room records this node stores for the mesh in all (DHT servers)")
}

// logFormat is set by --log-format on the roles that have it.
var logFormat = "text"

func (m *meshFlags) config(server bool, log *slog.Logger) (mesh.Config, error) {
	cfg := mesh.Config{IdentityFile: m.identity, ListenAddrs: m.listen, Server: server, Logger: log,
		ConnLow: m.connLow, ConnHigh: m.connHigh, MaxRecordsPerPeer: m.recordsPerPeer, MaxRecords: m.maxRecords}
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
	opts := &slog.HandlerOptions{Level: l}
	switch logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", logFormat)
}

func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	config.Register(fs)
	return config.Parse(fs, args, nil)
}

// interrupted returns a context that ends on Ctrl-C or SIGTERM.
func interrupted() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runDemo(args []string) error {
	fs := flag.NewFlagSet("ersmesh demo", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:4545", "bridge HTTP `address`")
	room := fs.String("room", "demo", "room `name`")
	turn := fs.Bool("turn", false, "also run a TURN server on loopback and hand out its credentials")
	tlsOn := fs.Bool("tls", false, "serve HTTPS with a certificate generated for localhost (the browser warns about it once; plain HTTP on localhost is already a secure context)")
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
	d, err := demo.Start(ctx, demo.Config{Addr: *addr, Room: *room, TURN: *turn, TLS: *tlsOn, Logger: log})
	if err != nil {
		return err
	}
	fmt.Printf("\nersmesh demo is running: bootstrap, bridge and device on loopback.\n\n  Open %s\n  WHEP  %s/whep/%s/sample\n\nPress Ctrl-C to stop.\n\n", d.URL, d.Bridge, *room)
	<-ctx.Done()
	fmt.Println("stopping…")
	return d.Close()
}

func runBootstrap(args []string) error {
	fs := flag.NewFlagSet("ersmesh bootstrap", flag.ContinueOnError)
	var mf meshFlags
	mf.register(fs, "bootstrap")
	opsAddr := fs.String("ops", "127.0.0.1:9400", "`address` for /metrics, /healthz and /readyz (empty: none)")
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
	defer n.Close()
	o := telemetry.New("bootstrap")
	if err := n.RegisterMetrics(o.Registerer()); err != nil {
		return err
	}
	stopOps, err := startOps(*opsAddr, o.Handler(), log)
	if err != nil {
		return err
	}
	defer stopOps()
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
	httpAddr := fs.String("http", bridge.DefaultAddr, "HTTP `address` for the player page, the ERS protocol and WHEP (/whep/<room>)")
	var stun listFlag
	fs.Var(&stun, "stun", "STUN server `url` handed to browsers and devices, e.g. stun:stun.example.org:3478 (repeatable)")
	var origins listFlag
	fs.Var(&origins, "allowed-origin", "page `origin` (https://example.org) allowed to use the ERS endpoint (repeatable; default any, as ERS)")
	perIP := fs.Int("max-conns-per-ip", 64, "concurrent viewer sockets from one IP address (-1: no cap)")
	perSubnet := fs.Int("max-conns-per-subnet", 512, "concurrent viewer sockets from one /24 or IPv6 /48 (-1: no cap)")
	httpPerIP := fs.Int("max-http-conns-per-ip", 0, "open HTTP connections from one IP address or IPv6 /64, WebSockets not counted (default twice --max-conns-per-ip; -1: no cap)")
	bodyTimeout := fs.Duration("body-timeout", 10*time.Second, "time a client has to send a request body")
	adminAddr := fs.String("admin", admin.DefaultAddr, "`address` of the ERS-style admin endpoint (empty: none)")
	var adminAllow, allowedRooms listFlag
	fs.Var(&adminAllow, "admin-allow", "client `prefix` (10.0.0.0/8) or address allowed to use the admin endpoint (repeatable; default loopback)")
	tokens := fs.Bool("tokens", false, "require an ERS viewer token on every join (add them with the admin command addToken)")
	fs.Var(&allowedRooms, "allowed-room", "`room` viewers may join (repeatable; default any; the admin commands addRoom/delRoom edit the list)")
	var tf bridgeTURN
	tf.register(fs)
	var tlsf tlsFlags
	tlsf.register(fs)
	relayService := fs.Bool("relay-service", false, "also relay signalling for devices behind NAT (circuit relay v2), as bootstrap nodes do")
	var whep bridge.WHEPConfig
	fs.IntVar(&whep.MaxSessions, "whep-max-sessions", 256, "WHEP sessions relayed at once; more get 503")
	fs.IntVar(&whep.RatePerMinute, "whep-rate", 30, "WHEP POSTs per minute allowed from one client address; more get 429")
	fs.IntVar(&whep.Burst, "whep-burst", 10, "WHEP POSTs one client address may make at once before --whep-rate applies")
	if err := parse(fs, args); err != nil {
		return err
	}
	allow, err := parsePrefixes(adminAllow)
	if err != nil {
		return fmt.Errorf("--admin-allow: %w", err)
	}
	store := access.NewStore(*tokens)
	for _, r := range allowedRooms {
		if err := store.AddRoom(r); err != nil {
			return fmt.Errorf("--allowed-room %q: %w", r, err)
		}
	}
	log, err := newLogger(mf.logLevel)
	if err != nil {
		return err
	}
	certs, err := tlsf.start(*httpAddr, log)
	if err != nil {
		return err
	}
	var turnTLS *tls.Config
	var certName string
	if certs != nil {
		defer certs.Close()
		turnTLS = certs.TURNConfig()
		if len(tlsf.domains) > 0 {
			certName = tlsf.domains[0]
		}
	}
	// With --turn-on-https the HTTPS port is listened on now: the TURN
	// server takes its TURN half.
	var mux *tlsmux.Mux
	if tlsf.turnOnHTTPS {
		if certs == nil || !tf.run {
			return errors.New("--turn-on-https needs TLS on (--acme-domain or --tls-cert) and --turn")
		}
		l, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("--http %s: %w", *httpAddr, err)
		}
		mux = tlsmux.New(l, tlsmux.Config{TLS: certs.TLSConfig(), Logger: log})
		defer mux.Close()
		tf.shared = mux.TURN()
	}
	issuer, turnSrv, err := tf.start(log, turnTLS, certName)
	if err != nil {
		return err
	}
	if turnSrv != nil {
		defer turnSrv.Close()
		// Our TURN server answers STUN too.
		if u := turnSrv.STUNURL(tf.host); u != "" {
			stun = append(stun, u)
		}
	}
	cfg, err := mf.config(true, log)
	if err != nil {
		return err
	}
	cfg.RelayService = *relayService
	ctx, stop := interrupted()
	defer stop()
	n, err := mesh.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	o := telemetry.New("bridge")
	o.Ready("mesh", n.Ready)
	if err := n.RegisterMetrics(o.Registerer()); err != nil {
		return err
	}
	if turnSrv != nil {
		if err := turnSrv.RegisterMetrics(o.Registerer()); err != nil {
			return err
		}
	}
	bcfg := bridge.Config{
		Host:        n.Libp2p(),
		Resolver:    mesh.NewResolver(n, mesh.ResolverOptions{}),
		STUNServers: stun,
		Limits: limit.Config{PerIP: *perIP, PerSubnet: *perSubnet, AllowedOrigins: origins,
			HTTPConnsPerIP: *httpPerIP, BodyTimeout: *bodyTimeout},
		Access:     store,
		AdminAllow: allow,
		Version:    versionString(),
		Ops:        o,
		TURN:       issuer,
		WHEP:       whep,
		Logger:     log,
	}
	if certs != nil {
		bcfg.TLS, bcfg.HSTS = certs.TLSConfig(), tlsf.hsts
		o.Ready("tls", certs.Ready)
	}
	b, err := bridge.New(bcfg)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 3)
	if mux != nil {
		log.Info("bridge serving", "http", mux.Addr().String(), "tls", true, "turn_on_https", true, "peer", n.ID())
		go func() { serveErr <- b.ServeTLSConns(mux.HTTP()) }()
	} else {
		l, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("--http %s: %w", *httpAddr, err)
		}
		log.Info("bridge serving", "http", l.Addr().String(), "tls", certs != nil, "peer", n.ID())
		go func() { serveErr <- b.Serve(l) }()
	}
	serving := 1
	if certs != nil && tlsf.plain != "" {
		pl, err := net.Listen("tcp", tlsf.plain)
		if err != nil {
			b.Close()
			<-serveErr
			return fmt.Errorf("--http-redirect %s: %w", tlsf.plain, err)
		}
		log.Info("plain HTTP: ACME challenges and redirects to HTTPS", "http", pl.Addr().String())
		_, httpsPort, _ := splitPort(*httpAddr)
		go func() { serveErr <- b.ServePlain(pl, certs.HTTPHandler(httpsPort)) }()
		serving++
	}
	if *adminAddr != "" {
		al, err := net.Listen("tcp", *adminAddr)
		if err != nil {
			b.Close()
			<-serveErr
			return fmt.Errorf("--admin %s: %w", *adminAddr, err)
		}
		log.Info("admin endpoint", "http", al.Addr().String())
		go func() { serveErr <- b.ServeAdmin(al) }()
		serving++
	}
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		b.Close()
		for range serving - 1 {
			<-serveErr
		}
		return err
	}
	err = b.Close()
	for range serving {
		<-serveErr
	}
	return err
}

// startOps serves a role's ops endpoints on addr ("": none).
func startOps(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	s, err := telemetry.Listen(addr, h)
	if err != nil {
		return nil, fmt.Errorf("--ops %s: %w", addr, err)
	}
	log.Info("ops endpoint: /metrics /healthz /readyz", "http", s.Addr())
	return func() { s.Close() }, nil
}

// parsePrefixes reads addresses and prefixes ("10.0.0.0/8", "192.0.2.7").
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a prefix", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func runDevice(args []string) error {
	fs := flag.NewFlagSet("ersmesh device", flag.ContinueOnError)
	var mf meshFlags
	mf.register(fs, "device")
	var rooms listFlag
	fs.Var(&rooms, "room", "room `name` to publish: name, or name@<this device's peer ID> for an owned room (repeatable; more can be started with ersmesh ctl startWebRTC)")
	var streamFlags listFlag
	fs.Var(&streamFlags, "stream", "`NAME=SOURCE` to serve (repeatable); SOURCE is sample:, an H.264 Annex-B file[,audio=file.aac|file.ogg][,fps=N], an MP4 file, - for stdin, rtsp://..., or rtp://host[:port],sdp=file.sdp (ports from the SDP); a bare NAME serves the sample clip")
	ttl := fs.Duration("record-ttl", node.DefaultRecordTTL, "how long a room record stays valid; republished at a third of it")
	server := fs.Bool("dht-server", false, "serve the DHT (only when this device is publicly reachable)")
	loopbackCands := fs.Bool("loopback-candidates", false, "also offer 127.0.0.1 ICE candidates (viewer on the same machine)")
	natTraversal := fs.Bool("nat-traversal", true, "behind NAT, stay reachable through relay reservations on the bootstrap nodes and hole punching")
	reach := fs.String("reachability", "", "skip AutoNAT and take this reachability: public or private")
	opsAddr := fs.String("ops", "127.0.0.1:7777", "`address` for /metrics, /healthz, /readyz and the control API (startWebRTC, ...; empty: none)")
	state := fs.String("state", defaultState(), "`file` keeping the keepAlive startWebRTC commands across restarts (empty: none)")
	var controlAllow listFlag
	fs.Var(&controlAllow, "control-allow", "client `prefix` or address allowed to send control commands (repeatable; default loopback)")
	webhookURL := fs.String("webhook", "", "`URL` to POST device events to as JSON (webRTCStarted, webRTCPeerStreamStarted, ...)")
	webhookTimeout := fs.Duration("webhook-timeout", webhook.DefaultTimeout, "how long one webhook POST may take; events queued meanwhile beyond the queue are dropped")
	var secretFlags listFlag
	fs.Var(&secretFlags, "room-secret", "`ROOM=SECRET`: viewers of ROOM must prove they know SECRET (the player's ?secret=); bridges never see it (repeatable)")
	var limits node.Limits
	fs.IntVar(&limits.MaxStreamsPerPeer, "max-streams-per-bridge", node.DefaultMaxStreamsPerPeer, "signalling streams (viewers, joined or joining) one bridge may hold open")
	fs.IntVar(&limits.MaxStreams, "max-streams", node.DefaultMaxStreams, "signalling streams all bridges together may hold open")
	fs.Float64Var(&limits.StreamRate, "stream-rate", node.DefaultStreamRate, "new signalling streams per second from one bridge, after --stream-burst")
	fs.IntVar(&limits.StreamBurst, "stream-burst", node.DefaultStreamBurst, "new signalling streams one bridge may open at once")
	fs.DurationVar(&limits.UnconnectedTimeout, "unconnected-timeout", node.DefaultUnconnectedTimeout, "end a viewer session whose WebRTC connection is not up this long after its join")
	if err := parse(fs, args); err != nil {
		return err
	}
	allow, err := parsePrefixes(controlAllow)
	if err != nil {
		return fmt.Errorf("--control-allow: %w", err)
	}
	if len(rooms) == 0 && *opsAddr == "" && *state == "" {
		return errors.New("--room is required (or the control API, --ops, to start rooms with ersmesh ctl startWebRTC)")
	}
	secrets := map[string]string{}
	for _, f := range secretFlags {
		r, sec, ok := strings.Cut(f, "=")
		if !ok || r == "" || sec == "" {
			return fmt.Errorf("--room-secret %q: want ROOM=SECRET", f)
		}
		secrets[r] = sec
	}
	if len(mf.bootstrap) == 0 {
		return errors.New("--bootstrap is required: the multiaddr of a bootstrap node (ersmesh bootstrap prints it)")
	}
	log, err := newLogger(mf.logLevel)
	if err != nil {
		return err
	}
	var onEvent func(node.Event)
	var hook *webhook.Hook
	if *webhookURL != "" {
		hook, err = webhook.New(webhook.Config{URL: *webhookURL, Timeout: *webhookTimeout, Logger: log})
		if err != nil {
			return fmt.Errorf("--webhook: %w", err)
		}
		defer hook.Close() // after the device: its last events go out
		onEvent = hook.Send
	}
	cfg, err := mf.config(*server, log)
	if err != nil {
		return err
	}
	cfg.NATTraversal = *natTraversal
	cfg.Reachability = mesh.Reachability(*reach)
	ctx, stop := interrupted()
	defer stop()
	n, err := mesh.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	streams, err := media.OpenStreams(streamFlags, os.Stdin, log)
	if err != nil {
		return err
	}
	pubCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, err := node.New(pubCtx, node.Config{
		Mesh:            n,
		Rooms:           rooms,
		Streams:         streams,
		RecordTTL:       *ttl,
		IncludeLoopback: *loopbackCands,
		Secrets:         secrets,
		Limits:          limits,
		OnEvent:         onEvent,
		Logger:          log,
	})
	if err != nil {
		for _, s := range streams {
			s.Close()
		}
		return err
	}
	ctl, err := control.New(control.Config{Device: d, StateFile: *state, Allow: allow, Logger: log})
	if err != nil {
		d.Close()
		return err
	}
	defer ctl.Close()
	if err := ctl.Restore(pubCtx); err != nil {
		d.Close()
		return fmt.Errorf("--state: %w", err)
	}
	o := telemetry.New("device")
	o.Ready("mesh", n.Ready)
	if err := errors.Join(n.RegisterMetrics(o.Registerer()), d.RegisterMetrics(o.Registerer())); err != nil {
		d.Close()
		return err
	}
	if hook != nil {
		if err := hook.RegisterMetrics(o.Registerer()); err != nil {
			d.Close()
			return err
		}
	}
	mux := http.NewServeMux()
	o.Register(mux)
	ctl.Register(mux)
	stopOps, err := startOps(*opsAddr, mux, log)
	if err != nil {
		d.Close()
		return err
	}
	defer stopOps()
	if *opsAddr != "" {
		log.Info("control API: startWebRTC, stopWebRTC, listConfig (ersmesh ctl)", "http", *opsAddr)
	}
	fmt.Printf("device %s serving rooms %s\n", n.ID(), strings.Join(d.Rooms(), ", "))
	<-ctx.Done()
	return d.Close()
}

// defaultState is where a device keeps its keepAlive commands, beside its
// identity.
func defaultState() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ersmesh", "device-webrtc.json")
}

func runVersion(args []string) error {
	fs := flag.NewFlagSet("ersmesh version", flag.ContinueOnError)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Println("ersmesh", versionString())
	return nil
}

// versionString is the link-time version, else the module's, else "devel".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
