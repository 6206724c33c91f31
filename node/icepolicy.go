package node

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v3"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/signalwire"
)

// What a bridge may make the device contact. A join's STUN/TURN servers
// and a viewer's candidates come through a bridge run by a stranger, and
// each one makes the device send packets (STUN, TURN allocations,
// connectivity checks) to the address it names: without a policy a bridge
// could use every device it reaches to probe or hit the devices' own
// networks (routers' admin pages, the camera's neighbours). So:
//   - STUN/TURN servers must be public: no loopback, private, link-local,
//     CGNAT, multicast or unspecified address, by literal or by name;
//   - candidates may be private only on a network the device is on (a
//     viewer on the same LAN), never loopback or link-local;
//   - at most maxICEURLs server URLs per join.
//
// IncludeLoopback (a device and its viewers on one machine: the demo,
// tests) lets loopback through, and nothing else.
const (
	maxICEURLs      = 8
	iceLookupBudget = 2 * time.Second // for all the names of one join
)

// NAT64's well-known prefix (RFC 6052) carries an IPv4 address in its last
// 32 bits; so do 6to4 (2002::/16, bits 16-48) and Teredo's server field.
var (
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
	teredoPrefix = netip.MustParsePrefix("2001::/32")
	cgnat        = netip.MustParsePrefix("100.64.0.0/10")
)

// embeddedV4 returns the IPv4 address an IPv6 address carries (mapped,
// NAT64, 6to4, Teredo's server), if any.
func embeddedV4(a netip.Addr) (netip.Addr, bool) {
	if a.Is4In6() {
		return a.Unmap(), true
	}
	b := a.As16()
	switch {
	case !a.Is6():
		return netip.Addr{}, false
	case nat64Prefix.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case teredoPrefix.Contains(a):
		return netip.AddrFrom4([4]byte(b[4:8])), true
	}
	return netip.Addr{}, false
}

// localKind sorts an address: "" for a public one, else what it is.
func localKind(a netip.Addr) string {
	a = a.Unmap()
	if v4, ok := embeddedV4(a); ok {
		if k := localKind(v4); k != "" {
			return k
		}
	}
	switch {
	case !a.IsValid(), a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	case a.IsPrivate(), cgnat.Contains(a):
		return "private"
	case a.Is4() && a.As4()[0] == 0, a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "unspecified"
	}
	return ""
}

// icePolicy decides, for one device, which addresses bridges may name.
type icePolicy struct {
	loopback bool // IncludeLoopback: a lab on one machine
	// ownNets are the device's own networks, where a viewer's private
	// candidate can be real; read once, at start.
	ownNets []netip.Prefix
}

func newICEPolicy(loopback bool) *icePolicy {
	p := &icePolicy{loopback: loopback}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					ones, _ := n.Mask.Size()
					p.ownNets = append(p.ownNets, netip.PrefixFrom(ip.Unmap(), ones).Masked())
				}
			}
		}
	}
	return p
}

// serverAllowed reports whether a STUN/TURN server at a may be used.
func (p *icePolicy) serverAllowed(a netip.Addr) bool {
	switch localKind(a) {
	case "":
		return true
	case "loopback":
		return p.loopback
	}
	return false
}

// candidateAllowed reports whether a remote candidate at a may be checked.
func (p *icePolicy) candidateAllowed(a netip.Addr) bool {
	a = a.Unmap()
	switch localKind(a) {
	case "":
		return true
	case "loopback":
		return p.loopback
	case "private":
		for _, n := range p.ownNets {
			if n.Contains(a) {
				return true
			}
		}
	}
	return false
}

// iceServers returns the join's STUN/TURN servers the policy allows, and
// how many URLs it refused.
func (p *icePolicy) iceServers(ctx context.Context, list []signalwire.ICEServer) (out []webrtc.ICEServer, refused int) {
	ctx, cancel := context.WithTimeout(ctx, iceLookupBudget)
	defer cancel()
	n := 0
	for _, is := range list {
		var urls []string
		for _, u := range is.URLs {
			if n >= maxICEURLs {
				refused++
				continue
			}
			n++
			if p.urlAllowed(ctx, u) {
				urls = append(urls, u)
			} else {
				refused++
			}
		}
		if len(urls) > 0 {
			out = append(out, webrtc.ICEServer{URLs: urls, Username: is.Username, Credential: is.Credential})
		}
	}
	return out, refused
}

func (p *icePolicy) urlAllowed(ctx context.Context, raw string) bool {
	u, err := stun.ParseURI(raw)
	if err != nil {
		return false
	}
	if a, err := netip.ParseAddr(strings.Trim(u.Host, "[]")); err == nil {
		return p.serverAllowed(a)
	}
	// A name: every address it has now must be allowed. pion looks it up
	// again, so a name that changes in between gets through; a bridge
	// that can do that controls a DNS zone, and still only reaches what
	// the name pointed to a moment before.
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !p.serverAllowed(a) {
			return false
		}
	}
	return true
}

// candidateOK reports whether a remote candidate line ("candidate:...",
// with or without "a=") may be used: an mDNS name (which pion resolves
// on the local link only) or an address the policy allows.
func (p *icePolicy) candidateOK(line string) bool {
	c, err := ice.UnmarshalCandidate(strings.TrimPrefix(line, "a="))
	if err != nil {
		return false
	}
	addr := c.Address()
	if strings.HasSuffix(addr, ".local") {
		return true
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	return p.candidateAllowed(a)
}

// filterSDP removes from a remote description the candidates the policy
// refuses, and says how many.
func (p *icePolicy) filterSDP(sdp string) (string, int) {
	if !strings.Contains(sdp, "a=candidate:") {
		return sdp, 0
	}
	var b strings.Builder
	refused := 0
	for line := range strings.Lines(sdp) {
		l := strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(l, "a=candidate:") && !p.candidateOK(l) {
			refused++
			continue
		}
		b.WriteString(line)
	}
	return b.String(), refused
}
