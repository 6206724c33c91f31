// Package stallproxy is a loopback TCP proxy for tests whose path can go
// silent: Stall stops every byte in both directions while the connections
// stay open, as a peer that stopped answering or a link that died without
// a reset would. Tests use it to hold a real network call (a DHT put
// through libp2p, say) in flight for as long as they need, and to show
// that nothing else waits behind it.
//
// Only tests import it.
package stallproxy
