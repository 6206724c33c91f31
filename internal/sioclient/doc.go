// Package sioclient is a Go client of Socket.IO 0.9 over WebSocket, as ERS
// bridges speak it: the HTTP handshake, the connect packet, events with and
// without acks, and heartbeats answered in the background.
//
// It exists for tests and load tools that play the browser's part against a
// real bridge; the bridge itself uses bridge/socketio. It trusts nothing the
// server sends: frames are size-capped and every blocking call takes a
// context.
package sioclient
