// Package relaybench measures the relay tree of docs/relay.md: many Go
// relay viewers (internal/relayviewer) join one device whose uplink budget
// fits a few of them; the others are served by viewers relaying the
// signed fmp4 stream. It reports the tree's shape, the latency each depth
// adds over the device's direct viewers (median, p95), the units lost and
// the device's own send rate against its budget.
//
// Everything runs in one process on loopback (bootstrap, bridge, device,
// viewers), so the figures include the machine's own load: what they show
// is how latency grows with depth, not a network's.
package relaybench
