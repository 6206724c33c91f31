// Package bridge is the ERS side of ersmesh: an HTTP server that serves the
// player page and speaks the EvoStream Rendezvous Server protocol (events on
// Socket.IO 0.9, see package socketio) to browsers, finds each room's device
// in the mesh and relays signalling to it over a libp2p stream (package
// signal), one stream per viewer session. It also serves WHEP (whep.go): a
// standard player POSTs its offer to /whep/<room>, the device answers through
// the same signalling, and the answer is the POST's response.
//
// The bridge is a router, not a party: it never carries media and never
// changes an SDP; it only checks that a WHEP offer is SDP and keeps its ICE
// ufrag and media ids, to route trickled candidates. It owns viewer sessions,
// WHEP sessions and their device streams; the Socket.IO transport, the DHT
// and the wire format belong to other packages.
package bridge
