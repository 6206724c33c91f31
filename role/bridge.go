package role

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/access"
	"github.com/ersmesh/ersmesh/bridge/admin"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/telemetry"
	"github.com/ersmesh/ersmesh/tlscert"
	"github.com/ersmesh/ersmesh/tlsmux"
	"github.com/ersmesh/ersmesh/turnserver"
)

// BridgeConfig configures a bridge.
type BridgeConfig struct {
	Mesh MeshConfig
	// HTTP is the address of the player page, the ERS endpoint and WHEP.
	HTTP string
	// STUN servers are handed to browsers and devices.
	STUN []string
	// Limits: connections per address and subnet, allowed page origins.
	Limits limit.Config
	// Admin is the address of the ERS-style admin endpoint and the ops
	// endpoints beside it; "" none.
	Admin        string
	AdminAllow   []string // client prefixes or addresses; empty: loopback
	Tokens       bool     // every join needs an ERS viewer token
	AllowedRooms []string // empty: any
	TURN         BridgeTURNConfig
	// TLS serves HTTP as HTTPS (certificate files or ACME).
	TLS BridgeTLSConfig
	// Listener, if set, is where the bridge serves instead of HTTP (a
	// test that must know its port before the bridge exists).
	Listener net.Listener
	// RelayService relays signalling for devices behind NAT, as bootstrap
	// nodes do.
	RelayService bool
	WHEP         bridge.WHEPConfig
	Version      string // reported by the admin endpoint
	// Tune, if set, adjusts the bridge's config last: limits and
	// timeouts that tests and load runs change, and that no flag sets.
	Tune   func(*bridge.Config)
	Logger *slog.Logger
}

// BridgeTURNConfig is a bridge's TURN: it runs a server (Run), or hands
// out credentials for a fleet elsewhere (URLs), or both.
type BridgeTURNConfig struct {
	TURNServerConfig
	Run           bool
	Host          string   // name browsers reach our server at; default PublicIP
	URLs          []string // TURN URLs of servers sharing Secret
	CredentialTTL time.Duration
}

// DefaultBridgeConfig has the command line's defaults.
func DefaultBridgeConfig() BridgeConfig {
	return BridgeConfig{
		Mesh:   DefaultMeshConfig("bridge"),
		HTTP:   bridge.DefaultAddr,
		Limits: limit.Config{PerIP: 64, PerSubnet: 512, BodyTimeout: 10 * time.Second},
		Admin:  admin.DefaultAddr,
		TURN:   BridgeTURNConfig{TURNServerConfig: DefaultTURNServerConfig(), CredentialTTL: turnserver.DefaultCredentialTTL},
		TLS:    DefaultBridgeTLSConfig(),
		WHEP:   bridge.WHEPConfig{MaxSessions: 256, RatePerMinute: 30, Burst: 10},
	}
}

// Flags binds the bridge's flags.
func (c *BridgeConfig) Flags(fs *flag.FlagSet) {
	c.Mesh.Flags(fs)
	fs.StringVar(&c.HTTP, "http", c.HTTP, "HTTP `address` for the player page, the ERS protocol and WHEP (/whep/<room>)")
	listVar(fs, &c.STUN, "stun", "STUN server `url` handed to browsers and devices, e.g. stun:stun.example.org:3478 (repeatable)")
	listVar(fs, &c.Limits.AllowedOrigins, "allowed-origin", "page `origin` (https://example.org) allowed to use the ERS endpoint (repeatable; default any, as ERS)")
	fs.IntVar(&c.Limits.PerIP, "max-conns-per-ip", c.Limits.PerIP, "concurrent viewer sockets from one IP address (-1: no cap)")
	fs.IntVar(&c.Limits.PerSubnet, "max-conns-per-subnet", c.Limits.PerSubnet, "concurrent viewer sockets from one /24 or IPv6 /48 (-1: no cap)")
	fs.IntVar(&c.Limits.HTTPConnsPerIP, "max-http-conns-per-ip", c.Limits.HTTPConnsPerIP, "open HTTP connections from one IP address or IPv6 /64, WebSockets not counted (default twice --max-conns-per-ip; -1: no cap)")
	fs.DurationVar(&c.Limits.BodyTimeout, "body-timeout", c.Limits.BodyTimeout, "time a client has to send a request body")
	fs.StringVar(&c.Admin, "admin", c.Admin, "`address` of the ERS-style admin endpoint (empty: none)")
	listVar(fs, &c.AdminAllow, "admin-allow", "client `prefix` (10.0.0.0/8) or address allowed to use the admin endpoint (repeatable; default loopback)")
	fs.BoolVar(&c.Tokens, "tokens", c.Tokens, "require an ERS viewer token on every join (add them with the admin command addToken)")
	listVar(fs, &c.AllowedRooms, "allowed-room", "`room` viewers may join (repeatable; default any; the admin commands addRoom/delRoom edit the list)")
	c.TURN.TURNServerConfig.Flags(fs)
	c.TLS.Flags(fs)
	fs.BoolVar(&c.TURN.Run, "turn", c.TURN.Run, "run a TURN server (UDP and TCP) and hand its credentials to viewers")
	fs.StringVar(&c.TURN.Host, "turn-host", c.TURN.Host, "`name` or address browsers reach the TURN server at (default --turn-public-ip)")
	listVar(fs, &c.TURN.URLs, "turn-url", "TURN `url` of a server sharing --turn-secret, e.g. turn:turn.example.org:3478?transport=tcp (repeatable)")
	fs.DurationVar(&c.TURN.CredentialTTL, "turn-credential-ttl", c.TURN.CredentialTTL, "lifetime of the TURN credentials handed to each viewer that joined (ersmesh's TURN keeps allocations made in time; for coturn fleets make it as long as a viewing)")
	fs.BoolVar(&c.RelayService, "relay-service", c.RelayService, "also relay signalling for devices behind NAT (circuit relay v2), as bootstrap nodes do")
	fs.IntVar(&c.WHEP.MaxSessions, "whep-max-sessions", c.WHEP.MaxSessions, "WHEP sessions relayed at once; more get 503")
	fs.IntVar(&c.WHEP.RatePerMinute, "whep-rate", c.WHEP.RatePerMinute, "WHEP POSTs per minute allowed from one client address; more get 429")
	fs.IntVar(&c.WHEP.Burst, "whep-burst", c.WHEP.Burst, "WHEP POSTs one client address may make at once before --whep-rate applies")
}

// Bridge is a running bridge.
type Bridge struct {
	cfg    BridgeConfig
	log    *slog.Logger
	st     stack
	host   *mesh.Host
	turn   *turnserver.Server
	certs  *tlscert.Manager // nil without TLS
	mux    *tlsmux.Mux      // the HTTPS port shared with TURN (--turn-on-https)
	bridge *bridge.Bridge
	tls    *tls.Config // what HTTP is served with (after Tune); nil: plain
	ops    *telemetry.Ops
	// With TLS, HTTP's and the redirect's listeners, bound before the
	// certificates start (NewBridge).
	httpL, redirectL net.Listener
	// Where HTTP and the admin endpoint are served, once started.
	httpAddr, adminAddr string
}

// NewBridge checks cfg, runs the TURN server if asked, joins the mesh and
// creates the bridge; Start serves it.
func NewBridge(ctx context.Context, cfg BridgeConfig) (_ *Bridge, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger
	allow, err := parsePrefixes("admin-allow", cfg.AdminAllow)
	if err != nil {
		return nil, err
	}
	store := access.NewStore(cfg.Tokens)
	for _, r := range cfg.AllowedRooms {
		if err := store.AddRoom(r); err != nil {
			return nil, keyErr("allowed-room", "%q: %w", r, err)
		}
	}
	mcfg, err := cfg.Mesh.mesh(true, log)
	if err != nil {
		return nil, err
	}
	mcfg.RelayService = cfg.RelayService
	b := &Bridge{cfg: cfg, log: log, ops: telemetry.New("bridge")}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	httpAddr := cfg.HTTP
	if cfg.TLS.on() {
		// Bound before the certificates start: certmagic's ACME solvers
		// listen on a challenge port themselves when nothing does yet,
		// and would take ours from under the bridge.
		if cfg.Listener == nil {
			if b.httpL, err = listen("http", cfg.HTTP); err != nil {
				return nil, err
			}
			b.st.push(closeListener(b.httpL))
			httpAddr = b.httpL.Addr().String()
		}
		if cfg.TLS.HTTPRedirect != "" {
			if b.redirectL, err = listen("http-redirect", cfg.TLS.HTTPRedirect); err != nil {
				return nil, err
			}
			b.st.push(closeListener(b.redirectL))
		}
	}
	if b.certs, err = cfg.TLS.start(httpAddr, log); err != nil {
		return nil, err
	}
	var turnTLS *tls.Config
	var certName string
	if b.certs != nil {
		b.st.push(b.certs.Close)
		turnTLS = b.certs.TURNConfig()
		if len(cfg.TLS.ACMEDomains) > 0 {
			certName = cfg.TLS.ACMEDomains[0]
		}
	}
	if cfg.TLS.TURNOnHTTPS {
		// The HTTPS port is listened on now: the TURN server takes its
		// TURN half, the bridge the rest (Start).
		if b.certs == nil || !cfg.TURN.Run {
			return nil, keyErr("turn-on-https", "needs TLS on (--acme-domain or --tls-cert) and --turn")
		}
		l := cfg.Listener
		if l == nil {
			l = b.httpL
		}
		b.mux = tlsmux.New(l, tlsmux.Config{TLS: b.certs.TLSConfig(), Logger: log})
		b.st.push(b.mux.Close)
	}
	issuer, err := b.startTURN(turnTLS, certName)
	if err != nil {
		return nil, err
	}
	stun := append([]string(nil), cfg.STUN...)
	if b.turn != nil {
		// Our TURN server answers STUN too.
		if u := b.turn.STUNURL(cfg.TURN.Host); u != "" {
			stun = append(stun, u)
		}
	}
	if b.host, err = mesh.New(ctx, mcfg); err != nil {
		return nil, err
	}
	b.st.push(b.host.Close)
	b.ops.Ready("mesh", b.host.Ready)
	if err := b.host.RegisterMetrics(b.ops.Registerer()); err != nil {
		return nil, err
	}
	if b.turn != nil {
		if err := b.turn.RegisterMetrics(b.ops.Registerer()); err != nil {
			return nil, err
		}
	}
	bcfg := bridge.Config{
		Host:        b.host.Libp2p(),
		Resolver:    mesh.NewResolver(b.host, mesh.ResolverOptions{}),
		STUNServers: stun,
		Limits:      cfg.Limits,
		Access:      store,
		AdminAllow:  allow,
		Version:     cfg.Version,
		Ops:         b.ops,
		TURN:        issuer,
		WHEP:        cfg.WHEP,
		Logger:      log,
	}
	if b.certs != nil {
		bcfg.TLS, bcfg.HSTS = b.certs.TLSConfig(), cfg.TLS.HSTS
		b.ops.Ready("tls", b.certs.Ready)
		if err := b.certs.RegisterMetrics(b.ops.Registerer()); err != nil {
			return nil, err
		}
	}
	if cfg.Tune != nil {
		cfg.Tune(&bcfg)
	}
	b.tls = bcfg.TLS
	if b.bridge, err = bridge.New(bcfg); err != nil {
		return nil, err
	}
	b.st.push(b.bridge.Close)
	return b, nil
}

// startTURN runs the TURN server if asked and returns the issuer of
// credentials for the bridge (nil without TURN). With the bridge's TLS on
// (tc set), TURN over TLS uses its certificate unless --turn-cert gives
// another, and name (the certificate's, which turns: URLs must carry for
// browsers to accept it) is the default --turn-host.
func (b *Bridge) startTURN(tc *tls.Config, name string) (*turnserver.Issuer, error) {
	t := &b.cfg.TURN
	if t.Run && t.Host == "" {
		t.Host = name
	}
	if t.Run && t.Host == "" {
		t.Host = t.PublicIP
	}
	if !t.Run && len(t.URLs) == 0 {
		return nil, nil
	}
	if t.Secret == "" {
		if !t.Run {
			return nil, keyErr("turn-url", "needs --turn-secret (or $ERSMESH_TURN_SECRET): the fleet's shared secret")
		}
		// A bridge alone needs no shared secret; one it keeps to itself
		// is as good and never leaves the process.
		t.Secret = rand.Text()
		b.log.Info("TURN: no --turn-secret given; using a random one (only this bridge's credentials will work)")
	}
	is := &turnserver.Issuer{Secret: t.Secret, URLs: t.URLs, TTL: t.CredentialTTL}
	if t.Run {
		scfg, certs, err := t.server(b.log)
		if err != nil {
			return nil, err
		}
		if certs != nil {
			b.st.push(certs.Close)
		}
		if scfg.TLS == nil && tc != nil {
			scfg.TLS, scfg.TLSPort = tc, t.TLSPort
		}
		if b.mux != nil {
			scfg.SharedTLS = b.mux.TURN()
		}
		if b.turn, err = turnserver.New(scfg); err != nil {
			return nil, err
		}
		b.st.push(b.turn.Close)
		is.URLs = append(b.turn.URLs(t.Host), is.URLs...)
	}
	b.log.Info("handing out TURN credentials", "urls", is.URLs, "ttl", is.TTL)
	return is, nil
}

// Start serves the player, the ERS endpoint and WHEP on HTTP (HTTPS with
// TLS on, and the plain-HTTP redirect beside it), and the admin commands
// and ops endpoints on Admin. The bridge serves each listener itself, with
// its own limits; Close ends them all and waits for each.
func (b *Bridge) Start(context.Context) error {
	var l net.Listener
	serve := b.bridge.Serve
	switch {
	case b.mux != nil:
		l, serve = b.mux.HTTP(), b.bridge.ServeTLSConns
	case b.cfg.Listener != nil:
		l = b.cfg.Listener
	case b.httpL != nil:
		l = b.httpL
	default:
		var err error
		if l, err = listen("http", b.cfg.HTTP); err != nil {
			return err
		}
	}
	b.httpAddr = l.Addr().String()
	b.goServe(l, serve)
	b.log.Info("bridge serving", "http", b.httpAddr, "tls", b.tls != nil, "turn_on_https", b.mux != nil, "peer", b.host.ID())
	if b.certs != nil && b.cfg.TLS.HTTPRedirect != "" {
		_, port, err := splitPort(b.httpAddr)
		if err != nil {
			return err
		}
		pl := b.redirectL
		b.log.Info("plain HTTP: ACME challenges and redirects to HTTPS", "http", pl.Addr().String())
		h := b.certs.HTTPHandler(port)
		b.goServe(pl, func(l net.Listener) error { return b.bridge.ServePlain(l, h) })
	}
	if b.cfg.Admin != "" {
		al, err := listen("admin", b.cfg.Admin)
		if err != nil {
			return err
		}
		b.adminAddr = al.Addr().String()
		b.log.Info("admin endpoint", "http", b.adminAddr)
		b.goServe(al, b.bridge.ServeAdmin)
	}
	return nil
}

// goServe runs serve on l until the bridge closes; Close waits for it.
func (b *Bridge) goServe(l net.Listener, serve func(net.Listener) error) {
	done := make(chan error, 1)
	go func() { done <- serve(l) }()
	b.st.push(func() error {
		b.bridge.Close() // ends every Serve; later calls do nothing
		return <-done
	})
}

// listen opens addr for the server whose address is config key name.
// closeListener closes l if its server has not already done so: a
// listener bound in NewBridge is the server's once Start has run.
func closeListener(l net.Listener) func() error {
	return func() error {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}
}

func listen(name, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", name, addr, err)
	}
	return l, nil
}

// Host is the bridge's libp2p host.
func (b *Bridge) Host() *mesh.Host { return b.host }

// Bridge is the ERS and WHEP bridge itself.
func (b *Bridge) Bridge() *bridge.Bridge { return b.bridge }

// TURN is the bridge's own TURN server (nil without --turn).
func (b *Bridge) TURN() *turnserver.Server { return b.turn }

// Ops holds the bridge's metrics and readiness checks.
func (b *Bridge) Ops() *telemetry.Ops { return b.ops }

// URL is the bridge's origin, http://host:port or https://host:port (""
// before Start).
func (b *Bridge) URL() string {
	switch {
	case b.httpAddr == "":
		return ""
	case b.tls != nil:
		return "https://" + b.httpAddr
	}
	return "http://" + b.httpAddr
}

// Certs is the bridge's certificate manager (nil without TLS).
func (b *Bridge) Certs() *tlscert.Manager { return b.certs }

// AdminAddr is where the admin and ops endpoints are served ("" none).
func (b *Bridge) AdminAddr() string { return b.adminAddr }

// Close tells every viewer goodbye, stops serving, leaves the mesh and
// stops the TURN server; it waits for all of it.
func (b *Bridge) Close() error {
	// The bridge first: it ends the Socket.IO sessions and their pending
	// polls and stops its listeners; the stack then waits for each serving
	// goroutine and closes the rest, newest first.
	var err error
	if b.bridge != nil {
		err = b.bridge.Close()
	}
	return errors.Join(err, b.st.close())
}

// parsePrefixes reads addresses and prefixes ("10.0.0.0/8", "192.0.2.7")
// given under key.
func parsePrefixes(key string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, keyErr(key, "%q is neither an address nor a prefix", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
