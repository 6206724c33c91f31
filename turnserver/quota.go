package turnserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v5"
	"golang.org/x/time/rate"

	"github.com/ersmesh/ersmesh/internal/keylimit"
	"github.com/ersmesh/ersmesh/internal/ratelog"
)

// errQuota is returned to pion when a user is at their allocation quota;
// pion answers the client with an error response.
var errQuota = errors.New("allocation quota reached")

// errTCPRelay refuses RFC 6062 TCP allocations: browsers never ask for
// them (they relay UDP, whatever transport they reach the server on), and
// a server that opens TCP connections on request is a proxy to the world.
var errTCPRelay = errors.New("TCP relay allocations (RFC 6062) are not offered")

// quotas counts each user's allocations and meters their relayed bytes,
// in one keylimit table keyed by user id: its holds are the allocations,
// its token bucket the bandwidth in bytes.
type quotas struct {
	// log is written at most once per user per ten seconds for each kind
	// of line: a client can make refusals and drops as fast as it sends.
	refusals, drops *ratelog.Keyed[string]
	maxAllocs       int     // per user; <= 0 means no limit
	bytesPerS       float64 // per user, both directions together; <= 0 means no limit
	users           *keylimit.Limiter[string]

	// Totals for metrics.
	allocated, refused       atomic.Uint64 // allocations made, refused by quota
	toPeers, fromPeers, drop atomic.Uint64 // relayed bytes each way, dropped over quota
}

func newQuotas(log *slog.Logger, maxAllocs int, bytesPerS int64) *quotas {
	cfg := keylimit.Config[string]{PerKey: max(0, maxAllocs),
		// Users holding allocations are bounded by the server's ports;
		// the rest are meters refilling, forgotten first.
		MaxKeys: 1 << 20, WhenFull: keylimit.Forget}
	if bytesPerS > 0 {
		// A second's worth of burst, and at least a few full-size
		// packets, so a keyframe does not trip the meter.
		cfg.Rate, cfg.Burst = rate.Limit(bytesPerS), max(int(bytesPerS), 64<<10)
	}
	return &quotas{
		refusals:  ratelog.NewKeyed[string](log, 10*time.Second, time.Second/5, 5, 4096),
		drops:     ratelog.NewKeyed[string](log, 10*time.Second, time.Second/5, 5, 4096),
		maxAllocs: maxAllocs, bytesPerS: float64(bytesPerS), users: keylimit.New(cfg),
	}
}

// allow is pion's QuotaHandler: it answers 486 (Allocation Quota Reached,
// RFC 8656 §7.2) before pion allocates anything.
func (q *quotas) allow(userID, _ string, src net.Addr) bool {
	if q.maxAllocs <= 0 {
		return true
	}
	if n := q.users.HeldBy(userID); n >= q.maxAllocs {
		q.refusals.Warn(userID, "turn: refused allocation: user at allocation quota", "user", userID, "client", src, "allocations", n)
		q.refused.Add(1)
		return false
	}
	return true
}

// acquire counts one more allocation of userID and returns its meter (nil
// without a bandwidth quota); the check in allow can race with a
// concurrent Allocate, so it is enforced here again.
func (q *quotas) acquire(userID string) (*rate.Limiter, error) {
	if err := q.users.Acquire(userID); err != nil {
		return nil, fmt.Errorf("%w: %w", errQuota, err)
	}
	return q.users.Bucket(userID), nil
}

func (q *quotas) release(userID string) { q.users.Release(userID) }

// allocations reports how many allocations userID holds (for tests and
// metrics).
func (q *quotas) allocations(userID string) int { return q.users.HeldBy(userID) }

// relayGenerator wraps pion's port-range generator: every relay socket it
// hands out is counted against its user and metered.
type relayGenerator struct {
	inner *turn.RelayAddressGeneratorPortRange
	q     *quotas
}

func (g *relayGenerator) Validate() error { return g.inner.Validate() }

func (g *relayGenerator) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	lim, err := g.q.acquire(c.UserID)
	if err != nil {
		g.q.refusals.Warn(c.UserID, "turn: refused allocation: user at allocation quota", "user", c.UserID)
		g.q.refused.Add(1)
		return nil, nil, err
	}
	pc, addr, err := g.inner.AllocatePacketConn(c)
	if err != nil {
		g.q.release(c.UserID)
		return nil, nil, fmt.Errorf("allocate relay port: %w", err)
	}
	g.q.allocated.Add(1)
	return &meteredConn{PacketConn: pc, q: g.q, user: c.UserID, lim: lim}, addr, nil
}

func (g *relayGenerator) AllocateListener(c turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	g.q.refusals.Warn(c.UserID, "turn: refused TCP relay allocation", "user", c.UserID)
	return nil, nil, errTCPRelay
}

func (g *relayGenerator) AllocateConn(c turn.AllocateConnConfig) (net.Conn, error) {
	g.q.refusals.Warn(c.UserID, "turn: refused TCP relay connection", "user", c.UserID, "peer", c.RemoteAddr)
	return nil, errTCPRelay
}

// meteredConn is one allocation's relay socket. Packets over the user's
// bandwidth quota are dropped, as a congested link would: UDP has no
// back-pressure, and WebRTC's congestion control reacts to loss.
type meteredConn struct {
	net.PacketConn
	q    *quotas
	user string
	lim  *rate.Limiter

	once sync.Once
}

func (c *meteredConn) over(n int) bool {
	if c.lim == nil || c.lim.AllowN(time.Now(), n) {
		return false
	}
	c.q.drops.Warn(c.user, "turn: dropping relayed packets: user over bandwidth quota", "user", c.user, "bytes_per_second", c.q.bytesPerS)
	return true
}

// WriteTo sends towards the peer.
func (c *meteredConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.over(len(p)) {
		c.q.drop.Add(uint64(len(p)))
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	c.q.toPeers.Add(uint64(n))
	return n, err
}

// ReadFrom receives from peers, dropping what is over quota.
func (c *meteredConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || !c.over(n) {
			c.q.fromPeers.Add(uint64(n))
			return n, addr, err
		}
		c.q.drop.Add(uint64(n))
	}
}

func (c *meteredConn) Close() error {
	c.once.Do(func() { c.q.release(c.user) })
	return c.PacketConn.Close()
}
