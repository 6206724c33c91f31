// Package keylimit admits work per key (a client address, a peer, a TURN
// user): a cap on what one key holds at once, a cap on what all keys hold
// together, and a token bucket per key, in one table whose size is bounded
// because strangers choose the keys.
//
// It decides and counts; it logs nothing and knows nothing of HTTP, libp2p
// or TURN. The bridge's gate and WHEP endpoint, the device's signalling
// stream guard, the TURN server's quotas and the DHT record quotas use it.
// KeyForAddr keys an IP address the way a rate limit should see it: an
// IPv6 client owns a whole /64, so its addresses share one key.
package keylimit
