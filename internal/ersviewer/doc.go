// Package ersviewer is a viewer in Go for tests: it speaks the ERS browser
// protocol (Socket.IO 0.9 over WebSocket) to a bridge the way the player
// page does, answers the device's offer with a pion PeerConnection built
// from the bridge's stunservers and turnservers, and reports what it
// received and over which ICE candidate pair. Tests use it where a real
// browser would be too heavy (many runs, network namespaces) and to check
// things a page cannot show, such as the relay protocol of the selected
// pair.
//
// Play watches until a number of RTP packets arrived and reports the
// selected pair; Open returns the Session and hands its tracks to a
// callback until Close, for load tools that keep many viewers (the device
// fan-out benchmark). The protocol's shapes come from package ersproto.
//
// It is test support: it trusts the bridge and checks only what tests ask.
package ersviewer
