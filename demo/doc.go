// Package demo runs every role of ersmesh in one process on loopback: a
// bootstrap node, a bridge and a device serving the built-in sample clip,
// each a separate libp2p host talking over real sockets, exactly as they
// would on separate machines. `ersmesh demo` and the end-to-end tests use it.
package demo
