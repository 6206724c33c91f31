// Package meshsim runs many ersmesh mesh nodes (real mesh.Host, real
// kad-dht, real room records) in one process on go-libp2p's mocknet, an
// in-memory network with a configurable one-way link latency, and measures
// how the DHT behaves at community scale: publishing rooms, resolving them
// from bridges with a cold cache, lookups while 30 % of the nodes are gone,
// and how fast an offline device disappears.
//
// What mocknet does not model, and the report must say: opening a
// connection costs no round trip (real TCP+Noise or QUIC costs one to
// three), there is no bandwidth or CPU cost of encryption, and a killed
// node's connections close at once (a crash behind a NAT could leave them
// half-open until a timeout).
//
// It owns the simulated network and every node in it; Sim.Close stops them
// all. It is a benchmark harness: `ersmesh-bench mesh` runs it; the default
// `go test` only runs a small sanity simulation.
package meshsim
