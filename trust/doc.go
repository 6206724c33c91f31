// Package trust holds what lets a player trust a device through bridges it
// does not trust: offers signed with the device's libp2p key, bound to the
// room and to a nonce the player chose, and room-secret proofs bound to the
// viewer's DTLS fingerprint, so that a bridge that relays a proof cannot
// use it for a session of its own.
//
// web/static/trust.js is the player's half of the same formats; the two
// must change together (the browser tests check one against the other).
// This package knows nothing of bridges, streams or WebRTC sessions: it
// builds and checks byte strings.
package trust
