// Package signal is the wire protocol between a bridge and a device:
// protocol /ersmesh/signal/1.0.0, one libp2p stream per viewer session.
//
// A stream carries length-delimited JSON messages (an unsigned varint length,
// then the JSON body, at most MaxMessageSize bytes). The bridge opens the
// stream and sends a join; the device answers accept or reject; after an
// accept both sides relay ERS signalling (offer, answer, candidate, ...) as
// opaque payloads, send pings so a dead peer is noticed, and send leave when
// the session ends. The bridge never reads an SDP: it only routes.
//
// This package owns the message types, their validation and the framing. It
// knows nothing of browsers, WebRTC or the DHT.
package signal
