// Package relay is the wire format of relaying (docs/relay.md): the SIG
// record that the device puts before every MOOV and frame group of a
// signed fmp4 stream, the reader that cuts a stream channel's bytes into
// signed units, the checks every player makes before it appends or
// forwards a unit, and the JSON payloads of the relay signalling messages
// with the device's signatures over assignments.
//
// It owns formats and checks only: the device's tree (node/relay*.go) and
// the Go relay viewer (internal/relayviewer) use it; web/static/relay.js
// is its twin in the player and must match it byte for byte. It knows
// nothing of PeerConnections, sessions or bridges.
package relay
