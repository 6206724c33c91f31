package turnserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"

	"github.com/ersmesh/ersmesh/internal/ratelog"
)

// Defaults of Config.
const (
	DefaultPort          = 3478 // UDP and TCP, RFC 8656 §20
	DefaultTLSPort       = 5349 // TURN over TLS, RFC 8656 §20
	DefaultRealm         = "ersmesh"
	DefaultMinRelayPort  = 49152
	DefaultMaxRelayPort  = 65535
	DefaultUserAllocs    = 10
	DefaultUserBandwidth = 4 << 20 // bytes per second: several HD streams
	DefaultMaxTTL        = 48 * time.Hour
)

// Port values of Config with a special meaning.
const (
	Off       = -1 // no listener on this transport
	Ephemeral = -2 // the kernel chooses the port (tests)
)

// idleTimeout closes a TCP or TLS client connection that sends nothing at
// all for this long; a live allocation refreshes every few minutes and a
// live ICE pair sends checks every few seconds.
const idleTimeout = 15 * time.Minute

// Config configures a Server. The zero value of each field means its
// default.
type Config struct {
	// Secret is the shared secret credentials are checked with. Required.
	Secret string
	// Realm is the TURN realm (RFC 8489 §14.9).
	Realm string
	// ListenIP is the address to listen on and to open relay sockets on;
	// empty means every interface.
	ListenIP string
	// UDPPort and TCPPort are the ports of the plain listeners
	// (DefaultPort); Off disables one, Ephemeral lets the kernel choose.
	UDPPort, TCPPort int
	// TLS, when set, adds a TURN-over-TLS listener on TLSPort
	// (DefaultTLSPort, or Ephemeral) with the operator's certificate.
	TLS     *tls.Config
	TLSPort int
	// SharedTLS, when set, is a listener of TURN-over-TLS connections
	// whose TLS is already done: the ones package tlsmux takes apart from
	// HTTPS on a shared port (443). The server closes it.
	SharedTLS net.Listener
	// PublicIP is the relay address given to clients: the server's public
	// address when it sits behind a 1:1 NAT (a cloud VM). Empty means
	// ListenIP, or the first non-loopback address of the host.
	PublicIP string
	// MinRelayPort and MaxRelayPort bound the relay sockets' ports, for
	// firewalls (DefaultMinRelayPort to DefaultMaxRelayPort).
	MinRelayPort, MaxRelayPort uint16
	// Policy says which peers may be relayed to.
	Policy Policy
	// MaxUserAllocations caps each user id's live allocations
	// (DefaultUserAllocs); -1 removes the cap.
	MaxUserAllocations int
	// MaxIPAllocations caps the live allocations of one client address
	// (IPv6: one /64), whatever credentials it shows
	// (DefaultIPAllocations); -1 removes the cap.
	MaxIPAllocations int
	// MaxAllocations caps the server's live allocations in all
	// (DefaultAllocations); -1 removes the cap.
	MaxAllocations int
	// UserBandwidth caps each user id's relayed bytes per second, both
	// directions together (DefaultUserBandwidth); -1 removes the cap.
	UserBandwidth int64
	// MaxCredentialTTL refuses credentials that expire further ahead than
	// this (DefaultMaxTTL).
	MaxCredentialTTL time.Duration
	Logger           *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Secret == "" {
		return errors.New("TURN server needs a shared secret")
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	port := func(p *int, def int) error {
		switch {
		case *p == 0:
			*p = def
		case *p == Ephemeral:
			*p = 0
		case *p == Off:
		case *p < 0 || *p > 65535:
			return fmt.Errorf("TURN port %d out of range", *p)
		}
		return nil
	}
	if err := errors.Join(port(&c.UDPPort, DefaultPort), port(&c.TCPPort, DefaultPort), port(&c.TLSPort, DefaultTLSPort)); err != nil {
		return err
	}
	if c.TLS == nil {
		c.TLSPort = Off
	}
	if c.MinRelayPort == 0 {
		c.MinRelayPort = DefaultMinRelayPort
	}
	if c.MaxRelayPort == 0 {
		c.MaxRelayPort = DefaultMaxRelayPort
	}
	if c.MinRelayPort > c.MaxRelayPort {
		return fmt.Errorf("relay port range %d-%d is empty", c.MinRelayPort, c.MaxRelayPort)
	}
	if c.MaxUserAllocations == 0 {
		c.MaxUserAllocations = DefaultUserAllocs
	}
	if c.MaxIPAllocations == 0 {
		c.MaxIPAllocations = DefaultIPAllocations
	}
	if c.MaxAllocations == 0 {
		c.MaxAllocations = DefaultAllocations
	}
	if c.UserBandwidth == 0 {
		c.UserBandwidth = DefaultUserBandwidth
	}
	if c.MaxCredentialTTL == 0 {
		c.MaxCredentialTTL = DefaultMaxTTL
	}
	if c.ListenIP != "" {
		if _, err := netip.ParseAddr(c.ListenIP); err != nil {
			return fmt.Errorf("TURN listen address: %w", err)
		}
	}
	if c.PublicIP == "" {
		c.PublicIP = c.ListenIP
		if ip, err := netip.ParseAddr(c.ListenIP); c.ListenIP == "" || (err == nil && ip.IsUnspecified()) {
			c.PublicIP = firstHostIP()
		}
	}
	if _, err := netip.ParseAddr(c.PublicIP); err != nil {
		return fmt.Errorf("TURN public IP: %w", err)
	}
	if c.UDPPort == Off && c.TCPPort == Off && c.TLSPort == Off {
		return errors.New("TURN server has no listener: UDP, TCP and TLS are all off")
	}
	return nil
}

// firstHostIP guesses the relay address of a server with no configured
// public IP: its first global IPv4 address, else loopback (fine for the
// demo, wrong for anything else, hence the flag).
func firstHostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// ownAddrs are the server's addresses for Policy.Self: its public and
// listening addresses, and with no listening address every address of the
// host.
func ownAddrs(public, listen string) []netip.Addr {
	var out []netip.Addr
	for _, s := range []string{public, listen} {
		if a, err := netip.ParseAddr(s); err == nil && !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	if a, err := netip.ParseAddr(listen); listen == "" || (err == nil && a.IsUnspecified()) {
		addrs, _ := net.InterfaceAddrs()
		for _, ia := range addrs {
			if n, ok := ia.(*net.IPNet); ok {
				if a, ok := netip.AddrFromSlice(n.IP); ok {
					out = append(out, a.Unmap())
				}
			}
		}
	}
	return out
}

// Server is a running TURN server. Close stops it.
type Server struct {
	cfg Config
	log *slog.Logger
	// refused logs what clients can cause at will (wrong credentials,
	// refused allocations and peers) at a bounded rate.
	refused  *ratelog.Logger
	turn     *turn.Server
	q        *quotas
	caps     *allocCaps
	udp      net.PacketConn
	tcp      net.Listener
	tlsL     net.Listener
	shared   net.Listener
	conns    *connSet
	refusals logOnce
	closed   sync.Once
	err      error
}

// New listens and starts serving.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	cfg.Policy.Self = append(cfg.Policy.Self, ownAddrs(cfg.PublicIP, cfg.ListenIP)...)
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "turn"), conns: newConnSet()}
	s.refused = ratelog.New(s.log, time.Second/5, 20)
	s.q = newQuotas(s.log, cfg.MaxUserAllocations, cfg.UserBandwidth)
	s.caps = newAllocCaps(cfg.MaxIPAllocations, cfg.MaxAllocations)
	relayIP := net.ParseIP(cfg.PublicIP)
	bindIP := cfg.ListenIP
	if bindIP == "" {
		bindIP = "0.0.0.0"
	}
	gen := func() turn.RelayAddressGenerator {
		return &cappedGenerator{caps: s.caps, inner: &relayGenerator{q: s.q, inner: &turn.RelayAddressGeneratorPortRange{
			RelayAddress: relayIP,
			Address:      bindIP,
			MinPort:      cfg.MinRelayPort,
			MaxPort:      cfg.MaxRelayPort,
		}}}
	}
	perm := s.permission

	var tc turn.ServerConfig
	fail := func(err error) (*Server, error) {
		s.closeListeners()
		return nil, err
	}
	if cfg.UDPPort != Off {
		pc, err := net.ListenPacket("udp4", net.JoinHostPort(cfg.ListenIP, strconv.Itoa(cfg.UDPPort)))
		if err != nil {
			return fail(fmt.Errorf("TURN UDP listener: %w", err))
		}
		s.udp = pc
		tc.PacketConnConfigs = append(tc.PacketConnConfigs, turn.PacketConnConfig{PacketConn: pc, RelayAddressGenerator: gen(), PermissionHandler: perm})
	}
	if cfg.TCPPort != Off {
		l, err := net.Listen("tcp4", net.JoinHostPort(cfg.ListenIP, strconv.Itoa(cfg.TCPPort)))
		if err != nil {
			return fail(fmt.Errorf("TURN TCP listener: %w", err))
		}
		s.tcp = &trackedListener{Listener: l, set: s.conns}
		tc.ListenerConfigs = append(tc.ListenerConfigs, turn.ListenerConfig{Listener: s.tcp, RelayAddressGenerator: gen(), PermissionHandler: perm})
	}
	if cfg.TLSPort != Off {
		l, err := net.Listen("tcp4", net.JoinHostPort(cfg.ListenIP, strconv.Itoa(cfg.TLSPort)))
		if err != nil {
			return fail(fmt.Errorf("TURN TLS listener: %w", err))
		}
		// Track the raw TCP conns so Close can end them; pion gets the
		// TLS layer on top (it reads the handshake itself).
		s.tlsL = tls.NewListener(&trackedListener{Listener: l, set: s.conns}, cfg.TLS)
		tc.ListenerConfigs = append(tc.ListenerConfigs, turn.ListenerConfig{Listener: s.tlsL, RelayAddressGenerator: gen(), PermissionHandler: perm})
	}
	if cfg.SharedTLS != nil {
		s.shared = &trackedListener{Listener: cfg.SharedTLS, set: s.conns}
		tc.ListenerConfigs = append(tc.ListenerConfigs, turn.ListenerConfig{Listener: s.shared, RelayAddressGenerator: gen(), PermissionHandler: perm})
	}
	tc.Realm = cfg.Realm
	tc.AuthHandler = s.authenticate
	tc.QuotaHandler = s.allowAllocation
	tc.LoggerFactory = pionLogger{s.log}
	tc.EventHandler = turn.EventHandler{
		OnAuth: func(src, _ net.Addr, proto, username, _ string, method string, ok bool) {
			if !ok && s.refusals.first("auth "+src.String()+" "+username) {
				s.refused.Warn("turn: refused credentials", "client", src, "username", truncate(username, 64), "method", method, "reason", "wrong password, secret or realm")
			}
		},
		OnAllocationCreated: func(src, _ net.Addr, proto, user, _ string, relay net.Addr, _ int) {
			s.log.Debug("turn: allocation", "client", src, "transport", proto, "user", user, "relay", relay)
		},
		OnAllocationDeleted: func(src, _ net.Addr, proto, user, _ string) {
			s.log.Debug("turn: allocation ended", "client", src, "transport", proto, "user", user)
		},
	}
	t, err := turn.NewServer(tc)
	if err != nil {
		return fail(fmt.Errorf("start TURN server: %w", err))
	}
	s.turn = t
	s.log.Info("TURN server listening", "udp", addrString(s.UDPAddr()), "tcp", addrString(s.TCPAddr()), "tls", addrString(s.TLSAddr()), "tls_shared", addrString(s.SharedTLSAddr()),
		"relay_ip", cfg.PublicIP, "relay_ports", fmt.Sprintf("%d-%d", cfg.MinRelayPort, cfg.MaxRelayPort),
		"allow_private_peers", cfg.Policy.AllowPrivate, "realm", cfg.Realm)
	return s, nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return a.String()
}

// authenticate is pion's AuthHandler. It returns the user id quotas are
// counted against and the long-term key (RFC 8489 §9.2.2) pion checks the
// request's MESSAGE-INTEGRITY with; a forged password fails there and is
// logged by OnAuth.
//
// Credentials are short-lived (minutes): a new allocation needs unexpired
// ones, but the requests that keep an existing allocation alive (Refresh,
// CreatePermission, ChannelBind) are taken with expired ones, for at most
// MaxCredentialTTL: pion matches them to the allocation of the same
// five-tuple and user, so they can create nothing new. So is an Allocate
// from a client (its address, an IPv6 /64) that holds a live allocation
// made with the same credentials: an ICE restart gathers anew, minutes or
// hours into a session, while its old allocation still lives.
//
// The user id handed back carries the client's address key (see
// joinUser), so that allocations are counted by address too.
func (s *Server) authenticate(ra *turn.RequestAttributes) (string, []byte, bool) {
	now := time.Now()
	key := clientKey(ra.SrcAddr)
	id, err := checkUsername(ra.Username, now, s.cfg.MaxCredentialTTL)
	if errors.Is(err, ErrExpired) {
		if exp, eid, perr := ParseUsername(ra.Username); perr == nil && now.Sub(exp) < s.cfg.MaxCredentialTTL &&
			(ra.Method != stun.MethodAllocate || s.caps.holding(joinUser(eid, key))) {
			id, err = eid, nil
		}
	}
	if err != nil {
		if s.refusals.first("auth " + ra.SrcAddr.String() + " " + ra.Username) {
			s.refused.Warn("turn: refused credentials", "client", ra.SrcAddr, "username", truncate(ra.Username, 64), "reason", err)
		}
		return "", nil, false
	}
	pw := password(s.cfg.Secret, ra.Username)
	return joinUser(id, key), turn.GenerateAuthKey(ra.Username, ra.Realm, pw), true
}

// allowAllocation is pion's QuotaHandler, asked before every Allocate: the
// client's address and the server must be under their caps, and the
// credential under its quota.
func (s *Server) allowAllocation(user, realm string, src net.Addr) bool {
	id, key := splitUser(user)
	if err := s.caps.check(key); err != nil {
		if s.refusals.first("caps " + key.String()) {
			s.refused.Warn("turn: refused allocation", "client", src, "user", id, "reason", err)
		}
		return false
	}
	return s.q.allow(id, realm, src)
}

// permission is pion's PermissionHandler, asked before every
// CreatePermission and ChannelBind (RFC 8656 §9): the only place a peer
// address enters the server.
func (s *Server) permission(client net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	v := Invalid
	if ok {
		v = s.cfg.Policy.Check(ip)
	}
	if v != Allowed {
		// Clients retry refused permissions every few hundred ms: one
		// line per client and peer a minute says it all.
		if s.refusals.first(client.String() + ">" + peer.String()) {
			s.refused.Warn("turn: refused relay to peer", "client", client, "peer", peer.String(), "reason", string(v))
		}
		return false
	}
	return true
}

// UDPAddr is the UDP listener's address, or nil.
func (s *Server) UDPAddr() net.Addr {
	if s.udp == nil {
		return nil
	}
	return s.udp.LocalAddr()
}

// TCPAddr is the TCP listener's address, or nil.
func (s *Server) TCPAddr() net.Addr {
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// TLSAddr is the TLS listener's address, or nil.
func (s *Server) TLSAddr() net.Addr {
	if s.tlsL == nil {
		return nil
	}
	return s.tlsL.Addr()
}

// SharedTLSAddr is the shared TLS port's address (Config.SharedTLS), or nil.
func (s *Server) SharedTLSAddr() net.Addr {
	if s.shared == nil {
		return nil
	}
	return s.shared.Addr()
}

// Allocations is the number of live allocations.
func (s *Server) Allocations() int { return s.turn.AllocationCount() }

// Close stops listening, closes every client connection and every
// allocation. It is idempotent.
func (s *Server) Close() error {
	s.closed.Do(func() {
		// pion closes its listeners (and, as each read loop ends, the
		// allocations) but not accepted TCP connections: those are ours.
		s.err = s.turn.Close()
		s.conns.closeAll()
	})
	return s.err
}

func (s *Server) closeListeners() {
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.tlsL != nil {
		s.tlsL.Close()
	}
	if s.cfg.SharedTLS != nil {
		s.cfg.SharedTLS.Close()
	}
}

// logOnce says whether a refusal for key was not logged within the last
// minute. It forgets everything when it holds too many keys, so a client
// cycling through peers can make it log more, but not grow.
type logOnce struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *logOnce) first(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if t, ok := l.last[key]; ok && now.Sub(t) < time.Minute {
		return false
	}
	if l.last == nil || len(l.last) >= 4096 {
		l.last = make(map[string]time.Time)
	}
	l.last[key] = now
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
