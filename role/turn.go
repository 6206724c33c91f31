package role

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ersmesh/ersmesh/tlscert"
	"github.com/ersmesh/ersmesh/turnserver"
)

// TURNServerConfig is a TURN server's settings, shared by the turn role
// and a bridge that runs its own (--turn).
type TURNServerConfig struct {
	// Secret is shared with the bridges that mint credentials for this
	// server (the flag's environment variable is ERSMESH_TURN_SECRET).
	Secret   string
	Realm    string
	Listen   string // listen and relay IP; "" every interface
	PublicIP string // relay IP given to clients behind a 1:1 NAT
	// Port is the UDP and TCP port; turnserver.Ephemeral lets the kernel
	// choose (tests).
	Port      int
	TLSPort   int    // with Cert and Key
	Cert, Key string // PEM files for TURN over TLS
	// CertReload is how often Cert and Key are looked at for a
	// replacement (default 30 s, as the bridge's --tls-reload).
	CertReload time.Duration
	RelayPorts string // "min-max"; "" the turnserver defaults
	// AllowPrivatePeers relays to loopback and private addresses too.
	AllowPrivatePeers bool
	UserAllocations   int
	IPAllocations     int // per client address (IPv6 per /64)
	Allocations       int // of the server in all
	UserBandwidth     int64
}

// DefaultTURNServerConfig has the command line's defaults.
func DefaultTURNServerConfig() TURNServerConfig {
	return TURNServerConfig{
		Realm: turnserver.DefaultRealm, Port: turnserver.DefaultPort, TLSPort: turnserver.DefaultTLSPort,
		RelayPorts:      fmt.Sprintf("%d-%d", turnserver.DefaultMinRelayPort, turnserver.DefaultMaxRelayPort),
		UserAllocations: turnserver.DefaultUserAllocs, UserBandwidth: turnserver.DefaultUserBandwidth,
		IPAllocations: turnserver.DefaultIPAllocations, Allocations: turnserver.DefaultAllocations,
	}
}

// Flags binds the TURN server's flags.
func (c *TURNServerConfig) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Secret, "turn-secret", c.Secret, "shared `secret` for TURN credentials; bridges and TURN servers that share it share credentials")
	fs.StringVar(&c.Realm, "turn-realm", c.Realm, "TURN `realm`")
	fs.StringVar(&c.Listen, "turn-listen", c.Listen, "TURN listen and relay `IP` (default every interface)")
	fs.IntVar(&c.Port, "turn-port", c.Port, "TURN `port` on UDP and TCP")
	fs.IntVar(&c.TLSPort, "turn-tls-port", c.TLSPort, "TURN over TLS `port`, used with --turn-cert and --turn-key")
	fs.StringVar(&c.Cert, "turn-cert", c.Cert, "TLS certificate `file` (PEM) for TURN over TLS")
	fs.StringVar(&c.Key, "turn-key", c.Key, "TLS key `file` (PEM) for TURN over TLS")
	fs.StringVar(&c.PublicIP, "turn-public-ip", c.PublicIP, "relay `IP` given to clients: the public address behind a 1:1 NAT (default the listen IP or the first host address)")
	fs.StringVar(&c.RelayPorts, "turn-relay-ports", c.RelayPorts, "relay port `range` min-max, to open in firewalls")
	fs.BoolVar(&c.AllowPrivatePeers, "turn-allow-private-peers", c.AllowPrivatePeers, "relay to loopback, private, link-local, CGNAT and ULA addresses too (labs only; metadata addresses stay refused)")
	fs.IntVar(&c.UserAllocations, "turn-user-allocations", c.UserAllocations, "live allocations per user (-1: no limit)")
	fs.IntVar(&c.IPAllocations, "turn-ip-allocations", c.IPAllocations, "live allocations per client address, IPv6 per /64, whatever its credentials (-1: no limit)")
	fs.IntVar(&c.Allocations, "turn-allocations", c.Allocations, "live allocations of the server in all (-1: no limit)")
	fs.Int64Var(&c.UserBandwidth, "turn-user-bandwidth", c.UserBandwidth, "relayed `bytes` per second per user (-1: no limit)")
}

// server is the turnserver.Config this one describes, and the certificate
// files' watcher to close with the server (nil without --turn-cert).
func (c TURNServerConfig) server(log *slog.Logger) (turnserver.Config, *tlscert.Manager, error) {
	cfg := turnserver.Config{
		Secret: c.Secret, Realm: c.Realm, ListenIP: c.Listen, PublicIP: c.PublicIP,
		UDPPort: c.Port, TCPPort: c.Port,
		Policy:             turnserver.Policy{AllowPrivate: c.AllowPrivatePeers},
		MaxUserAllocations: c.UserAllocations, UserBandwidth: c.UserBandwidth,
		MaxIPAllocations: c.IPAllocations, MaxAllocations: c.Allocations,
		Logger: log,
	}
	if c.RelayPorts != "" {
		lo, hi, ok := strings.Cut(c.RelayPorts, "-")
		min, err1 := strconv.ParseUint(lo, 10, 16)
		max, err2 := strconv.ParseUint(hi, 10, 16)
		if !ok || err1 != nil || err2 != nil || min == 0 {
			return cfg, nil, keyErr("turn-relay-ports", "%q: want min-max, e.g. 49152-65535", c.RelayPorts)
		}
		cfg.MinRelayPort, cfg.MaxRelayPort = uint16(min), uint16(max)
	}
	if (c.Cert == "") != (c.Key == "") {
		return cfg, nil, keyErr("turn-cert", "--turn-cert and --turn-key go together")
	}
	if c.Cert == "" {
		return cfg, nil, nil
	}
	// Read again when replaced, as the bridge's: an external renewer
	// needs no restart.
	certs, err := tlscert.New(tlscert.Config{CertFile: c.Cert, KeyFile: c.Key, ReloadInterval: c.CertReload, Logger: log})
	if err != nil {
		return cfg, nil, keyErr("turn-cert", "TURN TLS certificate: %w", err)
	}
	cfg.TLS = certs.TURNConfig()
	cfg.TLSPort = c.TLSPort
	return cfg, certs, nil
}

// TURNConfig configures the turn role: a TURN server for a fleet of
// bridges sharing its secret.
type TURNConfig struct {
	TURNServerConfig
	Ops    string // address of /metrics, /healthz, /readyz; "" none
	Logger *slog.Logger
}

// DefaultTURNConfig has the command line's defaults.
func DefaultTURNConfig() TURNConfig {
	return TURNConfig{TURNServerConfig: DefaultTURNServerConfig(), Ops: "127.0.0.1:9401"}
}

// Flags binds the turn role's flags.
func (c *TURNConfig) Flags(fs *flag.FlagSet) {
	c.TURNServerConfig.Flags(fs)
	fs.StringVar(&c.Ops, "ops", c.Ops, "`address` for /metrics, /healthz and /readyz (empty: none)")
}

// TURN is a running turn role.
type TURN struct {
	served
	cfg    TURNConfig
	server *turnserver.Server
}

// NewTURN checks cfg and starts the TURN server; Start serves its ops
// endpoints.
func NewTURN(_ context.Context, cfg TURNConfig) (_ *TURN, err error) {
	if cfg.Secret == "" {
		return nil, keyErr("turn-secret", "required (or $ERSMESH_TURN_SECRET): the secret the bridges mint credentials with")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &TURN{served: newServed("turn", cfg.Logger), cfg: cfg}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	scfg, certs, err := cfg.server(cfg.Logger)
	if err != nil {
		return nil, err
	}
	if certs != nil {
		t.st.push(certs.Close)
	}
	if t.server, err = turnserver.New(scfg); err != nil {
		return nil, err
	}
	t.st.push(t.server.Close)
	if err := t.server.RegisterMetrics(t.ops.Registerer()); err != nil {
		return nil, err
	}
	return t, nil
}

// Start serves the ops endpoints.
func (t *TURN) Start(context.Context) error { return t.serveOps(t.cfg.Ops, t.ops.Handler()) }

// Server is the TURN server.
func (t *TURN) Server() *turnserver.Server { return t.server }
