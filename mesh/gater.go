package mesh

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/internal/ratelog"
)

// PrivateAddrs says whether a node dials loopback, private, link-local and
// CGNAT addresses of peers other than its bootstrap peers and relays.
//
// Addresses reach a node from strangers: a room record names its device's
// addresses, a bridge takes records at /ersmesh/register, the DHT passes
// on the addresses peers claim. A node on the internet that dialled them
// would be a scanner of its own networks on anyone's behalf (a bridge in a
// cloud would knock on 10.0.0.1:22, or the metadata service). On a LAN, or
// in a lab, private addresses are the only ones there are.
type PrivateAddrs int

const (
	// PrivateAddrsAuto refuses them when the mesh is on the internet: the
	// node's bootstrap peers have public addresses (a first bootstrap
	// node: it listens on a public or unspecified address). A mesh whose
	// bootstrap peers are all on loopback or private addresses is a LAN
	// or a lab, and allows them.
	PrivateAddrsAuto PrivateAddrs = iota
	// PrivateAddrsAllow always dials them: the lab switch.
	PrivateAddrsAllow
	// PrivateAddrsRefuse never dials them, except the bootstrap peers'
	// and relays' own.
	PrivateAddrsRefuse
)

// decide resolves Auto for a node with these bootstrap peers and listen
// addresses.
func (p PrivateAddrs) decide(bootstrap []peer.AddrInfo, listen []string) bool {
	switch p {
	case PrivateAddrsAllow:
		return true
	case PrivateAddrsRefuse:
		return false
	}
	var addrs []multiaddr.Multiaddr
	for _, ai := range bootstrap {
		addrs = append(addrs, ai.Addrs...)
	}
	if len(bootstrap) == 0 {
		for _, s := range listen {
			if a, err := multiaddr.NewMultiaddr(s); err == nil {
				addrs = append(addrs, a)
			}
		}
	}
	seen := false
	for _, a := range addrs {
		ip, ok := firstIP(a)
		if !ok {
			continue
		}
		seen = true
		// Listening on every interface (0.0.0.0, ::) says nothing
		// private about the node: treat it as public.
		if !privateIP(ip) || ip.IsUnspecified() {
			return false
		}
	}
	return seen
}

// firstIP is the IP address a dial to a goes to first (for a relayed
// address, the relay's).
func firstIP(a multiaddr.Multiaddr) (netip.Addr, bool) {
	for _, c := range a {
		switch c.Protocol().Code {
		case multiaddr.P_IP4, multiaddr.P_IP6:
			ip, ok := netip.AddrFromSlice(c.RawValue())
			return ip.Unmap(), ok
		}
	}
	return netip.Addr{}, false
}

// cgnat is RFC 6598's shared address space, which netip does not call
// private.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// privateIP reports whether ip is an address of this host or of the
// networks behind it. The unspecified address (0.0.0.0 reaches the host
// itself on Linux) and multicast are in it too.
func privateIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() ||
		ip.IsMulticast() || ip.IsLinkLocalMulticast() || cgnat.Contains(ip) ||
		(ip.Is4() && ip.As4()[0] == 0) // 0.0.0.0/8, "this network"
}

// addrGater is the node's libp2p connection gater: it refuses dials to
// private addresses (see PrivateAddrs) of peers not in exempt. Everything
// inbound is left to the resource manager and connection manager.
type addrGater struct {
	allowPrivate bool
	exempt       map[peer.ID]bool // bootstrap peers and relays; read-only
	refused      atomic.Uint64
	log          *ratelog.Keyed[peer.ID]
}

func newAddrGater(allowPrivate bool, exempt []peer.AddrInfo, log *ratelog.Keyed[peer.ID]) *addrGater {
	g := &addrGater{allowPrivate: allowPrivate, exempt: map[peer.ID]bool{}, log: log}
	for _, ai := range exempt {
		g.exempt[ai.ID] = true
	}
	return g
}

func (g *addrGater) InterceptPeerDial(peer.ID) bool { return true }

func (g *addrGater) InterceptAddrDial(p peer.ID, a multiaddr.Multiaddr) bool {
	if g.allowPrivate || g.exempt[p] {
		return true
	}
	ip, ok := firstIP(a)
	if !ok || !privateIP(ip) {
		return true // DNS names are checked once resolved
	}
	g.refused.Add(1)
	g.log.Info(p, "refused to dial a private address of a peer (see mesh.PrivateAddrs; --private-addrs allow for labs)", "peer", p, "addr", a)
	return false
}

func (g *addrGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *addrGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}

func (g *addrGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// exemptPeers are the peers whose private addresses a node dials anyway:
// its bootstrap peers and relays, which its operator named.
func exemptPeers(bootstrap, relays []peer.AddrInfo) []peer.AddrInfo {
	return slices.Concat(bootstrap, relays)
}

// gaterLogEvery is how often one peer's refused dials are logged.
const gaterLogEvery = time.Minute
