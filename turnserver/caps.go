package turnserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/turn/v5"

	"github.com/ersmesh/ersmesh/internal/keylimit"
)

// Defaults of the address and server caps.
const (
	// DefaultIPAllocations caps the allocations of one client address
	// (IPv6: one /64), whatever credentials it shows: a device relaying
	// for many viewers makes one or two per viewer, an attacker with a
	// fresh credential per socket gets no more.
	DefaultIPAllocations = 64
	// DefaultAllocations caps the server's allocations in all; each is a
	// relay port, and the default port range has 16384.
	DefaultAllocations = 8192
)

var (
	errIPQuota     = errors.New("allocation quota of this client address reached")
	errServerQuota = errors.New("the server's allocation quota reached")
)

// allocCaps counts live allocations by client address and in all. The
// per-credential quota (quotas) cannot do this: credentials are free to
// anyone who joins a room, so an address could mint as many as it likes.
type allocCaps struct {
	lim *keylimit.Limiter[netip.Prefix]
	// users counts live allocations by credential and client key (the
	// user string of joinUser), uncapped: an ICE restart's new allocation
	// may use credentials that expired if that same client holds one
	// made with them (see Server.authenticate).
	users                 *keylimit.Limiter[string]
	refusedIP, refusedAll atomic.Uint64
}

func newAllocCaps(perIP, total int) *allocCaps {
	return &allocCaps{lim: keylimit.New(keylimit.Config[netip.Prefix]{PerKey: max(0, perIP), Total: max(0, total),
		// Only addresses holding allocations are tracked: the ports bound
		// them far below this.
		MaxKeys: 1 << 20}),
		users: keylimit.New(keylimit.Config[string]{MaxKeys: 1 << 20})}
}

// holding reports whether user (credential id and client key) holds a
// live allocation.
func (c *allocCaps) holding(user string) bool { return c.users.HeldBy(user) > 0 }

// clientKey is what a client address is counted by
// (keylimit.KeyForAddr): the address for IPv4, its /64 for IPv6 (one
// subscriber's network holds a whole /64, so counting addresses would
// give it 2^64 quotas).
func clientKey(a net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	return keylimit.KeyForAddr(ip)
}

// check reports why one more allocation for key would be refused (nil:
// it would not be). pion asks before it allocates (QuotaHandler); acquire
// enforces it again.
func (c *allocCaps) check(key netip.Prefix) error { return c.refusal(c.lim.Check(key)) }

func (c *allocCaps) acquire(key netip.Prefix) error { return c.refusal(c.lim.Acquire(key)) }

func (c *allocCaps) release(key netip.Prefix) { c.lim.Release(key) }

// heldBy is the allocations of key's clients (tests).
func (c *allocCaps) heldBy(key netip.Prefix) int { return c.lim.HeldBy(key) }

// refusal counts a refusal of the limiter and names it for the client.
func (c *allocCaps) refusal(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, keylimit.ErrPerKey):
		c.refusedIP.Add(1)
		return errIPQuota
	default: // the total, or (never at these bounds) the table
		c.refusedAll.Add(1)
		return errServerQuota
	}
}

// The user id pion carries for an allocation is the credential's id and
// the client's key, so that the relay generator, which is not told the
// client's address, can count it. Credential ids never hold a space.
const keySep = " "

func joinUser(id string, key netip.Prefix) string { return id + keySep + key.String() }

func splitUser(u string) (id string, key netip.Prefix) {
	id, k, ok := strings.Cut(u, keySep)
	if !ok {
		return u, netip.Prefix{}
	}
	key, _ = netip.ParsePrefix(k)
	return id, key
}

// cappedGenerator counts every relay socket against its client's address
// and the server's total before the per-credential quotas see it.
type cappedGenerator struct {
	inner *relayGenerator
	caps  *allocCaps
}

func (g *cappedGenerator) Validate() error { return g.inner.Validate() }

func (g *cappedGenerator) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	user := c.UserID
	id, key := splitUser(user)
	if err := g.caps.acquire(key); err != nil {
		return nil, nil, fmt.Errorf("%w: %s", err, key)
	}
	c.UserID = id
	pc, addr, err := g.inner.AllocatePacketConn(c)
	if err != nil {
		g.caps.release(key)
		return nil, nil, err
	}
	if err := g.caps.users.Acquire(user); err != nil { // only at 2^20 users
		pc.Close()
		g.caps.release(key)
		return nil, nil, fmt.Errorf("%w: %w", errServerQuota, err)
	}
	return &cappedConn{PacketConn: pc, release: func() {
		g.caps.release(key)
		g.caps.users.Release(user)
	}}, addr, nil
}

func (g *cappedGenerator) AllocateListener(c turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	c.UserID, _ = splitUser(c.UserID)
	return g.inner.AllocateListener(c)
}

func (g *cappedGenerator) AllocateConn(c turn.AllocateConnConfig) (net.Conn, error) {
	c.UserID, _ = splitUser(c.UserID)
	return g.inner.AllocateConn(c)
}

// cappedConn gives its address's count back when pion closes it.
type cappedConn struct {
	net.PacketConn
	once    sync.Once
	release func()
}

func (c *cappedConn) Close() error {
	c.once.Do(c.release)
	return c.PacketConn.Close()
}
