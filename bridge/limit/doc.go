// Package limit protects a bridge from greedy or hostile clients: caps on
// concurrent connections per IP address and per subnet, a handshake rate
// per address, an origin allow-list, and token buckets for per-socket event
// rates.
//
// It decides and counts; it knows nothing of Socket.IO packets or ERS
// events. Package bridge applies it: Gate wraps the ERS endpoint's HTTP
// handler, Rate guards each viewer's joins, offers and candidates.
package limit
