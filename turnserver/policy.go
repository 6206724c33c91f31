package turnserver

import (
	"net/netip"
)

// privateRanges are the networks a TURN server on the internet must not
// relay to unless its operator says so: the server's own host and the
// networks behind it. Relaying there would let anyone with credentials
// scan or attack them from inside.
var privateRanges = mustPrefixes(
	"0.0.0.0/8",      // "this network" (RFC 791); 0.0.0.0 reaches the host itself on Linux
	"10.0.0.0/8",     // RFC 1918
	"100.64.0.0/10",  // carrier-grade NAT, RFC 6598
	"127.0.0.0/8",    // loopback, RFC 1122
	"169.254.0.0/16", // link-local, RFC 3927
	"172.16.0.0/12",  // RFC 1918
	"192.0.0.0/24",   // IETF protocol assignments, RFC 6890
	"192.168.0.0/16", // RFC 1918
	"198.18.0.0/15",  // benchmarking, RFC 2544
	"::1/128",        // loopback, RFC 4291
	"::/128",         // unspecified
	"fc00::/7",       // unique local, RFC 4193
	"fe80::/10",      // link-local, RFC 4291
)

// forbiddenRanges are never relayed to, whatever the operator allows: no
// lab needs them and they are what an attacker wants most.
var forbiddenRanges = mustPrefixes(
	"169.254.169.254/32", // cloud instance metadata (AWS, GCP, Azure, ...)
	"169.254.170.2/32",   // AWS ECS task metadata
	"168.63.129.16/32",   // Azure wireserver (host agent, DHCP, health probes)
	"fd00:ec2::254/128",  // AWS instance metadata over IPv6
	"224.0.0.0/4",        // multicast, RFC 5771
	"240.0.0.0/4",        // reserved, and the broadcast address
	"ff00::/8",           // IPv6 multicast
	// IPv6 forms that carry an IPv4 address, which a gateway on the way
	// may turn back into IPv4: they would smuggle 10.0.0.1 past the IPv4
	// checks. (::ffff:a.b.c.d, the mapped form, is judged as the IPv4
	// address it carries.) None is needed by a WebRTC peer.
	"::/96",           // IPv4-compatible (RFC 4291 §2.5.5.1, deprecated); :: and ::1 are private
	"::ffff:0:0:0/96", // IPv4-translated (SIIT, RFC 2765)
	"64:ff9b::/96",    // NAT64 (RFC 6052)
	"64:ff9b:1::/48",  // local-use NAT64, RFC 8215
	"2002::/16",       // 6to4 (RFC 3056)
	"2001::/32",       // Teredo (RFC 4380): carries the server's and the client's IPv4
)

// stillPrivate are addresses inside forbiddenRanges that are only
// private: the unspecified address and loopback, in ::/96.
var stillPrivate = mustPrefixes("::/128", "::1/128")

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Verdict is why the relay policy refuses a peer address, or "" when it
// allows it.
type Verdict string

// The reasons a peer address is refused.
const (
	Allowed   Verdict = ""
	Private   Verdict = "private or local address (allow with the private-peers switch)"
	Forbidden Verdict = "metadata, multicast, reserved or IPv4-embedding address (never relayed)"
	Self      Verdict = "an address of the TURN server itself (allow with the private-peers switch)"
	Invalid   Verdict = "not an IP address"
)

// Policy decides which peer addresses the server relays to.
type Policy struct {
	// AllowPrivate relays to loopback, private, link-local, CGNAT and
	// unique-local addresses too: for labs and tests where every host is
	// on such a network. Metadata, multicast and reserved addresses stay
	// refused.
	AllowPrivate bool
	// Self lists the server's own addresses (its public and listening
	// addresses): relaying to them would reach the server's other
	// services (the bridge's HTTP, its admin port) from its own address.
	// Refused unless AllowPrivate. New fills it in.
	Self []netip.Addr
}

// Check returns Allowed or the reason ip is refused. IPv4-mapped IPv6
// addresses (::ffff:10.0.0.1) are judged as the IPv4 address they carry.
func (p Policy) Check(ip netip.Addr) Verdict {
	if !ip.IsValid() {
		return Invalid
	}
	ip = ip.Unmap().WithZone("")
	for _, r := range forbiddenRanges {
		if r.Contains(ip) && !contains(stillPrivate, ip) {
			return Forbidden
		}
	}
	if p.AllowPrivate {
		return Allowed
	}
	for _, a := range p.Self {
		if a.Unmap().WithZone("") == ip {
			return Self
		}
	}
	for _, r := range privateRanges {
		if r.Contains(ip) {
			return Private
		}
	}
	return Allowed
}

func contains(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
