package limit

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ersmesh/ersmesh/internal/keylimit"
)

// Config of a Gate. Zero fields take their defaults; a negative cap or
// rate turns that limit off (a load test on loopback, a bridge behind a
// proxy that limits on its own).
type Config struct {
	// PerIP caps concurrent WebSockets from one address (one /64 for
	// IPv6); default 64.
	PerIP int
	// PerSubnet caps concurrent WebSockets from one /24 (IPv4) or /48
	// (IPv6); default 512.
	PerSubnet int
	// HandshakeRate is handshakes per second allowed from one address
	// (one /64 for IPv6),
	// with HandshakeBurst in reserve; defaults 5 and 20. A browser makes
	// one per (re)connect.
	HandshakeRate  float64
	HandshakeBurst int
	// AllowedOrigins lists the page origins ("https://example.org") that
	// may use the ERS endpoint; "*" or an empty list allows any, as ERS
	// did. Requests without an Origin (not from a browser page) and pages
	// the bridge serves itself are always allowed.
	AllowedOrigins []string
	// HTTPConnsPerIP caps the open HTTP connections of one address (one
	// /64 for IPv6) on every listener of the bridge, WebSockets not
	// counted once upgraded (PerIP counts those); default twice PerIP,
	// and off when PerIP is off. See ConnCap.
	HTTPConnsPerIP int
	// BodyTimeout bounds reading a request body; default 10 s. See
	// BodyDeadline.
	BodyTimeout time.Duration
}

const (
	defaultPerIP          = 64
	defaultPerSubnet      = 512
	defaultHandshakeRate  = 5
	defaultHandshakeBurst = 20
	defaultBodyTimeout    = 10 * time.Second

	// maxTracked bounds the handshake limiter table, so that a flood from
	// many addresses costs a fixed amount of memory; idle entries are
	// swept first, and if that is not enough the table starts over.
	maxTracked = 50000
	sweepEvery = time.Minute
)

func (c Config) withDefaults() Config {
	if c.PerIP == 0 {
		c.PerIP = defaultPerIP
	}
	if c.PerSubnet == 0 {
		c.PerSubnet = defaultPerSubnet
	}
	if c.HTTPConnsPerIP == 0 {
		c.HTTPConnsPerIP = 2 * c.PerIP // negative (off) when PerIP is
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = defaultBodyTimeout
	}
	if c.HandshakeRate == 0 {
		c.HandshakeRate = defaultHandshakeRate
	}
	if c.HandshakeBurst <= 0 {
		c.HandshakeBurst = defaultHandshakeBurst
	}
	return c
}

// Gate admits requests to the ERS endpoint. It is safe for concurrent use.
type Gate struct {
	cfg      Config
	anyOrig  bool
	refusals func(reason string, r *http.Request)

	// Clients are keyed by keylimit.KeyForAddr: an IPv6 client's /64 is
	// one client, since it picks addresses in it at will.
	perIP      *keylimit.Limiter[netip.Prefix]
	perSubnet  *keylimit.Limiter[netip.Prefix]
	handshakes *keylimit.Limiter[netip.Prefix]
}

// maxHeld bounds the connection tables; they only hold clients with a
// socket open, so the bound is that of the bridge's file descriptors.
const maxHeld = 1 << 20

// NewGate returns a gate. refused, if not nil, is told of every refusal
// (for a log line or a metric).
func NewGate(cfg Config, refused func(reason string, r *http.Request)) *Gate {
	cfg = cfg.withDefaults()
	g := &Gate{
		cfg:       cfg,
		anyOrig:   len(cfg.AllowedOrigins) == 0 || slices.Contains(cfg.AllowedOrigins, "*"),
		refusals:  refused,
		perIP:     keylimit.New(keylimit.Config[netip.Prefix]{PerKey: max(0, cfg.PerIP), MaxKeys: maxHeld}),
		perSubnet: keylimit.New(keylimit.Config[netip.Prefix]{PerKey: max(0, cfg.PerSubnet), MaxKeys: maxHeld}),
	}
	if cfg.HandshakeRate > 0 {
		g.handshakes = keylimit.New(keylimit.Config[netip.Prefix]{
			Rate: rate.Limit(cfg.HandshakeRate), Burst: cfg.HandshakeBurst,
			MaxKeys: maxTracked, WhenFull: keylimit.Forget, SweepEvery: sweepEvery,
		})
	}
	if g.refusals == nil {
		g.refusals = func(string, *http.Request) {}
	}
	return g
}

// Addr returns the client address of r (its TCP peer: headers such as
// X-Forwarded-For are not trusted).
func Addr(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// Subnet is the block a client's neighbours share: a /24 for IPv4, a /48
// (a typical site) for IPv6.
func Subnet(a netip.Addr) netip.Prefix {
	bits := 24
	if a.Is6() {
		bits = 48
	}
	p, _ := a.Prefix(bits)
	return p
}

// OriginAllowed reports whether a page of r's Origin may use the endpoint.
func (g *Gate) OriginAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || g.anyOrig {
		return true
	}
	// The bridge's own player page.
	if strings.EqualFold(origin, "http://"+r.Host) || strings.EqualFold(origin, "https://"+r.Host) {
		return true
	}
	for _, o := range g.cfg.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	return false
}

// Handshake reports whether r's address may make another handshake now.
func (g *Gate) Handshake(r *http.Request) bool {
	if g.handshakes == nil {
		return true
	}
	a, ok := Addr(r)
	if !ok {
		return false
	}
	return g.handshakes.Allow(keylimit.KeyForAddr(a)) == nil
}

// Acquire takes a connection slot for r's address and subnet. It returns
// a release func, or false if either cap is reached.
func (g *Gate) Acquire(r *http.Request) (release func(), ok bool) {
	a, ok := Addr(r)
	if !ok {
		return nil, false
	}
	key, sub := keylimit.KeyForAddr(a), Subnet(a)
	if g.perIP.Acquire(key) != nil {
		return nil, false
	}
	if g.perSubnet.Acquire(sub) != nil {
		g.perIP.Release(key)
		return nil, false
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			g.perIP.Release(key)
			g.perSubnet.Release(sub)
		})
	}, true
}

// Open returns the number of connections held now, for tests and metrics.
func (g *Gate) Config() Config { return g.cfg }

// Open is the number of WebSockets the gate holds open.
func (g *Gate) Open() int { return g.perIP.Held() }

// Wrap guards a Socket.IO 0.9 endpoint: the origin check on every
// request, the handshake rate on handshakes, the connection caps on
// WebSockets, which hold their slot until the handler returns (the socket's
// whole life). Refusals are plain-text HTTP errors a person can read.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.OriginAllowed(r) {
			g.refusals("origin not allowed", r)
			http.Error(w, "this bridge does not serve pages from "+abbrev(r.Header.Get("Origin"), 100), http.StatusForbidden)
			return
		}
		if strings.Contains(r.URL.Path, "/websocket/") {
			release, ok := g.Acquire(r)
			if !ok {
				g.refusals("too many connections", r)
				http.Error(w, "too many connections from your network; close some and retry", http.StatusTooManyRequests)
				return
			}
			defer release()
		} else if r.Method == http.MethodGet && !g.Handshake(r) {
			g.refusals("handshake rate", r)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many handshakes from your address; retry in a second", http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func abbrev(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
