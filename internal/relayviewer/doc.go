// Package relayviewer is a Go viewer that speaks the relay protocol of
// docs/relay.md as the player does: it joins through a bridge (ERS over
// Socket.IO) with a relay fingerprint, plays the device's signed fmp4
// stream directly or through the parent the device assigns, verifies every
// unit before it counts it, reports a bad parent and re-attaches, and
// relays verified units to the children the device gives it.
//
// Tests and the relay benchmark use it where hundreds of browsers would be
// too heavy, and to play a hostile relay (Options.Tamper). It records when
// each unit arrived (Arrivals), so that tests can check that every unit
// came and how long the gaps were.
package relayviewer
