// Package nattest holds ersmesh's NAT traversal tests on real network
// namespaces. It has no code of its own beyond the tests: they build a
// small internet out of namespaces, veth pairs, a Linux bridge and
// iptables MASQUERADE, run each role (bootstrap relay, bridge with TURN,
// device, viewer) as a copy of the test binary inside its namespace, and
// check that video crosses the NATs, over relayed signalling and, with UDP
// blocked for the viewer, through TURN over TCP.
//
// The topology (203.0.113.0/24 is the "internet"; it never leaves the
// namespaces):
//
//	public ns:  br0 203.0.113.1  bootstrap+relay, bridge, TURN
//	devnat ns:  wan 203.0.113.2 ─ MASQUERADE ─ lan 10.1.0.1
//	device ns:  eth0 10.1.0.2 (default via 10.1.0.1)
//	viewnat ns: wan 203.0.113.3 ─ MASQUERADE ─ lan 10.2.0.1
//	viewer ns:  eth0 10.2.0.2 (default via 10.2.0.1)
//
// The tests need root, ip and iptables. They skip with a message
// elsewhere and fail when CI=true.
package nattest
