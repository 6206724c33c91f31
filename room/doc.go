// Package room owns what a room is in ersmesh: its name, the signed record a
// device publishes for it in the DHT, and the validator every DHT node runs on
// those records.
//
// It is pure: no networking, no goroutines, no global state other than the
// per-process sequence counter. The mesh package puts records in the DHT and
// looks them up; the bridge, the device and the player only ever see names
// and decoded records.
//
// A name is what a user types, with ERS semantics: an open room ("frontdoor")
// belongs to whoever publishes it last, an owned room
// ("frontdoor@12D3KooW...") can only be published by the device whose Ed25519
// key is embedded in that peer ID, so a viewer can verify the device without
// trusting any bridge or DHT node.
//
// Records are short-lived (minutes, bounded by Validator.MaxTTL) so that an
// offline camera vanishes from lookups quickly; devices republish them well
// before they expire.
package room
