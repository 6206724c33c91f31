package main

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ersmesh/ersmesh/telemetry"
	"github.com/ersmesh/ersmesh/turnserver"
)

// turnFlags are the TURN server's flags, shared by `ersmesh turn` and
// `ersmesh bridge --turn`.
type turnFlags struct {
	secret, realm, listen, publicIP, relayPorts string
	cert, key                                   string
	port, tlsPort, userAllocs, ipAllocs, allocs int
	userBandwidth                               int64
	allowPrivate                                bool
}

func (f *turnFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.secret, "turn-secret", os.Getenv("ERSMESH_TURN_SECRET"), "shared `secret` for TURN credentials (default $ERSMESH_TURN_SECRET); bridges and TURN servers that share it share credentials")
	fs.StringVar(&f.realm, "turn-realm", turnserver.DefaultRealm, "TURN `realm`")
	fs.StringVar(&f.listen, "turn-listen", "", "TURN listen and relay `IP` (default every interface)")
	fs.IntVar(&f.port, "turn-port", turnserver.DefaultPort, "TURN `port` on UDP and TCP")
	fs.IntVar(&f.tlsPort, "turn-tls-port", turnserver.DefaultTLSPort, "TURN over TLS `port`, used with --turn-cert and --turn-key")
	fs.StringVar(&f.cert, "turn-cert", "", "TLS certificate `file` (PEM) for TURN over TLS")
	fs.StringVar(&f.key, "turn-key", "", "TLS key `file` (PEM) for TURN over TLS")
	fs.StringVar(&f.publicIP, "turn-public-ip", "", "relay `IP` given to clients: the public address behind a 1:1 NAT (default the listen IP or the first host address)")
	fs.StringVar(&f.relayPorts, "turn-relay-ports", fmt.Sprintf("%d-%d", turnserver.DefaultMinRelayPort, turnserver.DefaultMaxRelayPort), "relay port `range` min-max, to open in firewalls")
	fs.BoolVar(&f.allowPrivate, "turn-allow-private-peers", false, "relay to loopback, private, link-local, CGNAT and ULA addresses too (labs only; metadata addresses stay refused)")
	fs.IntVar(&f.userAllocs, "turn-user-allocations", turnserver.DefaultUserAllocs, "live allocations per user (-1: no limit)")
	fs.IntVar(&f.ipAllocs, "turn-ip-allocations", turnserver.DefaultIPAllocations, "live allocations per client address, IPv6 per /64, whatever its credentials (-1: no limit)")
	fs.IntVar(&f.allocs, "turn-allocations", turnserver.DefaultAllocations, "live allocations of the server in all (-1: no limit)")
	fs.Int64Var(&f.userBandwidth, "turn-user-bandwidth", turnserver.DefaultUserBandwidth, "relayed `bytes` per second per user (-1: no limit)")
}

func (f *turnFlags) config(log *slog.Logger) (turnserver.Config, error) {
	cfg := turnserver.Config{
		Secret: f.secret, Realm: f.realm, ListenIP: f.listen, PublicIP: f.publicIP,
		UDPPort: f.port, TCPPort: f.port,
		Policy:             turnserver.Policy{AllowPrivate: f.allowPrivate},
		MaxUserAllocations: f.userAllocs, UserBandwidth: f.userBandwidth,
		MaxIPAllocations: f.ipAllocs, MaxAllocations: f.allocs,
		Logger: log,
	}
	lo, hi, ok := strings.Cut(f.relayPorts, "-")
	min, err1 := strconv.ParseUint(lo, 10, 16)
	max, err2 := strconv.ParseUint(hi, 10, 16)
	if !ok || err1 != nil || err2 != nil || min == 0 {
		return cfg, fmt.Errorf("--turn-relay-ports %q: want min-max, e.g. 49152-65535", f.relayPorts)
	}
	cfg.MinRelayPort, cfg.MaxRelayPort = uint16(min), uint16(max)
	if (f.cert == "") != (f.key == "") {
		return cfg, errors.New("--turn-cert and --turn-key go together")
	}
	if f.cert != "" {
		kp, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return cfg, fmt.Errorf("TURN TLS certificate: %w", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
		cfg.TLSPort = f.tlsPort
	}
	return cfg, nil
}

func runTURN(args []string) error {
	fs := flag.NewFlagSet("ersmesh turn", flag.ContinueOnError)
	var tf turnFlags
	tf.register(fs)
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	opsAddr := fs.String("ops", "127.0.0.1:9401", "`address` for /metrics, /healthz and /readyz (empty: none)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if tf.secret == "" {
		return errors.New("--turn-secret (or $ERSMESH_TURN_SECRET) is required: the secret the bridges mint credentials with")
	}
	log, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	cfg, err := tf.config(log)
	if err != nil {
		return err
	}
	s, err := turnserver.New(cfg)
	if err != nil {
		return err
	}
	o := telemetry.New("turn")
	if err := s.RegisterMetrics(o.Registerer()); err != nil {
		s.Close()
		return err
	}
	stopOps, err := startOps(*opsAddr, o.Handler(), log)
	if err != nil {
		s.Close()
		return err
	}
	defer stopOps()
	fmt.Println("TURN server running; give bridges --turn-secret and these with --turn-url:")
	for _, u := range s.URLs("") {
		fmt.Println("  " + u)
	}
	ctx, stop := interrupted()
	defer stop()
	<-ctx.Done()
	return s.Close()
}

// bridgeTURN are the bridge's TURN flags: run a server (--turn), or hand
// out credentials for a fleet elsewhere (--turn-url), or both.
type bridgeTURN struct {
	turnFlags
	run  bool
	host string
	// shared, when set, is the TURN half of the HTTPS port (--turn-on-https).
	shared net.Listener
	urls   listFlag
	ttl    time.Duration
}

func (b *bridgeTURN) register(fs *flag.FlagSet) {
	b.turnFlags.register(fs)
	fs.BoolVar(&b.run, "turn", false, "run a TURN server (UDP and TCP) and hand its credentials to viewers")
	fs.StringVar(&b.host, "turn-host", "", "`name` or address browsers reach the TURN server at (default --turn-public-ip)")
	fs.Var(&b.urls, "turn-url", "TURN `url` of a server sharing --turn-secret, e.g. turn:turn.example.org:3478?transport=tcp (repeatable)")
	fs.DurationVar(&b.ttl, "turn-credential-ttl", turnserver.DefaultCredentialTTL, "lifetime of the TURN credentials handed to each viewer that joined (ersmesh's TURN keeps allocations made in time; for coturn fleets make it as long as a viewing)")
}

// start runs the TURN server if asked and returns the issuer for the
// bridge (nil without TURN) and the server to close (nil if none). With
// the bridge's TLS on (tc set), TURN over TLS uses its certificate unless
// --turn-cert gives another, and name (the certificate's, which turns:
// URLs must carry for browsers to accept it) is the default --turn-host.
func (b *bridgeTURN) start(log *slog.Logger, tc *tls.Config, name string) (*turnserver.Issuer, *turnserver.Server, error) {
	if b.run && b.host == "" {
		b.host = name
	}
	if b.run && b.host == "" {
		b.host = b.publicIP
	}
	if !b.run && len(b.urls) == 0 {
		return nil, nil, nil
	}
	if b.secret == "" {
		if !b.run {
			return nil, nil, errors.New("--turn-url needs --turn-secret (or $ERSMESH_TURN_SECRET): the fleet's shared secret")
		}
		// A bridge alone needs no shared secret; one it keeps to itself
		// is as good and never leaves the process.
		b.secret = rand.Text()
		log.Info("TURN: no --turn-secret given; using a random one (only this bridge's credentials will work)")
	}
	is := &turnserver.Issuer{Secret: b.secret, URLs: b.urls, TTL: b.ttl}
	if !b.run {
		log.Info("handing out TURN credentials", "urls", is.URLs, "ttl", is.TTL)
		return is, nil, nil
	}
	cfg, err := b.config(log)
	if err != nil {
		return nil, nil, err
	}
	if cfg.TLS == nil && tc != nil {
		cfg.TLS, cfg.TLSPort = tc, b.tlsPort
	}
	cfg.SharedTLS = b.shared
	s, err := turnserver.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	is.URLs = append(s.URLs(b.host), is.URLs...)
	log.Info("handing out TURN credentials", "urls", is.URLs, "ttl", is.TTL)
	return is, s, nil
}
