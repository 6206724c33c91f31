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
)

// Config of a Gate. Zero fields take their defaults; a negative cap or
// rate turns that limit off (a load test on loopback, a bridge behind a
// proxy that limits on its own).
type Config struct {
	// PerIP caps concurrent WebSockets from one address; default 64.
	PerIP int
	// PerSubnet caps concurrent WebSockets from one /24 (IPv4) or /48
	// (IPv6); default 512.
	PerSubnet int
	// HandshakeRate is handshakes per second allowed from one address,
	// with HandshakeBurst in reserve; defaults 5 and 20. A browser makes
	// one per (re)connect.
	HandshakeRate  float64
	HandshakeBurst int
	// AllowedOrigins lists the page origins ("https://example.org") that
	// may use the ERS endpoint; "*" or an empty list allows any, as ERS
	// did. Requests without an Origin (not from a browser page) and pages
	// the bridge serves itself are always allowed.
	AllowedOrigins []string
}

const (
	defaultPerIP          = 64
	defaultPerSubnet      = 512
	defaultHandshakeRate  = 5
	defaultHandshakeBurst = 20

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

	mu         sync.Mutex // guards the maps below
	perIP      map[netip.Addr]int
	perSubnet  map[netip.Prefix]int
	handshakes map[netip.Addr]*tracked
	nextSweep  time.Time
}

type tracked struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewGate returns a gate. refused, if not nil, is told of every refusal
// (for a log line or a metric).
func NewGate(cfg Config, refused func(reason string, r *http.Request)) *Gate {
	cfg = cfg.withDefaults()
	g := &Gate{
		cfg:        cfg,
		anyOrig:    len(cfg.AllowedOrigins) == 0 || slices.Contains(cfg.AllowedOrigins, "*"),
		refusals:   refused,
		perIP:      make(map[netip.Addr]int),
		perSubnet:  make(map[netip.Prefix]int),
		handshakes: make(map[netip.Addr]*tracked),
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
	if g.cfg.HandshakeRate < 0 {
		return true
	}
	a, ok := Addr(r)
	if !ok {
		return false
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweepLocked(now)
	t := g.handshakes[a]
	if t == nil {
		t = &tracked{lim: rate.NewLimiter(rate.Limit(g.cfg.HandshakeRate), g.cfg.HandshakeBurst)}
		g.handshakes[a] = t
	}
	t.seen = now
	return t.lim.AllowN(now, 1)
}

// sweepLocked forgets addresses whose bucket has been idle long enough to
// be full again, and bounds the table.
func (g *Gate) sweepLocked(now time.Time) {
	if now.Before(g.nextSweep) && len(g.handshakes) < maxTracked {
		return
	}
	g.nextSweep = now.Add(sweepEvery)
	refill := time.Duration(float64(g.cfg.HandshakeBurst)/g.cfg.HandshakeRate*float64(time.Second)) + time.Second
	for a, t := range g.handshakes {
		if now.Sub(t.seen) > refill {
			delete(g.handshakes, a)
		}
	}
	if len(g.handshakes) >= maxTracked {
		clear(g.handshakes)
	}
}

// Acquire takes a connection slot for r's address and subnet. It returns
// a release func, or false if either cap is reached.
func (g *Gate) Acquire(r *http.Request) (release func(), ok bool) {
	a, ok := Addr(r)
	if !ok {
		return nil, false
	}
	sub := Subnet(a)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cfg.PerIP > 0 && g.perIP[a] >= g.cfg.PerIP {
		return nil, false
	}
	if g.cfg.PerSubnet > 0 && g.perSubnet[sub] >= g.cfg.PerSubnet {
		return nil, false
	}
	g.perIP[a]++
	g.perSubnet[sub]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.perIP[a]--; g.perIP[a] <= 0 {
				delete(g.perIP, a)
			}
			if g.perSubnet[sub]--; g.perSubnet[sub] <= 0 {
				delete(g.perSubnet, sub)
			}
		})
	}, true
}

// Open returns the number of connections held now, for tests and metrics.
func (g *Gate) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.perIP {
		n += c
	}
	return n
}

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
