// Package bridge is the ERS side of ersmesh: an HTTP server that serves the
// player page and speaks the EvoStream Rendezvous Server protocol (events on
// Socket.IO 0.9, see package socketio) to browsers, finds each room's device
// in the mesh and relays signalling to it over a libp2p stream (package
// signal), one stream per viewer session.
//
// The bridge is a router, not a party: it never reads an SDP and never
// carries media. It owns viewer sessions and their device streams; the
// Socket.IO transport, the DHT and the wire format belong to other packages.
package bridge
