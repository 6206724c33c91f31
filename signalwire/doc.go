// Package signalwire is the wire protocol between a bridge and a device:
// protocol /ersmesh/signal/1.0.0, one libp2p stream per viewer session.
//
// A stream carries length-delimited JSON messages (an unsigned varint length,
// then the JSON body, at most MaxMessageSize bytes). The bridge opens the
// stream and sends a join; the device answers accept or reject; after an
// accept both sides relay ERS signalling (offer, answer, candidate, ...) as
// opaque payloads, send pings so a dead peer is noticed, and send leave when
// the session ends. The bridge never reads an SDP: it only routes.
//
// Two directions of negotiation share this protocol. In the ERS flow the
// device offers after its accept and the viewer answers. A join with
// ViewerOffers set (WHEP) turns it round: the bridge sends the viewer's
// offer as the first signal, possibly right after the join without waiting
// for the accept, and the device replies with one complete answer (its ICE
// gathering finished or cut short), then both sides may trickle candidates
// as in the ERS flow. A reject or leave may carry a Code (CodeNotFound,
// CodeUnauthorized, ...) that a bridge maps onto HTTP statuses.
//
// This package owns the message types, their validation, the framing and
// the keepalive (Conn.KeepAlive) both sides run. It
// knows nothing of browsers, WebRTC or the DHT.
package signalwire
