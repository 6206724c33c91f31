// Package node is the device: the EMS side of ersmesh. It publishes the
// device's rooms in the mesh (given at start, or started and stopped at run
// time: rooms.go, driven by package node/control), reports what happens as
// EMS-named events (events.go, posted by package node/webhook), accepts
// signalling streams from bridges (protocol signal.ProtocolID), and for
// each viewer creates a pion
// PeerConnection, sends the offer (the ERS flow) or answers the viewer's
// offer (WHEP, answer.go) in the same session, and streams media to the
// viewer peer to peer: WebRTC tracks for the srtp transport (srtp.go), EMS
// data channels carrying fragmented MP4 for the fmp4 transport (fmp4.go).
//
// It owns viewer sessions and their PeerConnections. Media sources live in
// package media; the libp2p host and DHT in package mesh; the wire format in
// package signalwire. It must not speak to browsers directly: every byte of
// signalling goes through a bridge.
package node
