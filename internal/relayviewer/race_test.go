//go:build race

package relayviewer_test

// slow scales the viewers' protocol timings and the tests' waits: the race
// detector slows pion and Ed25519 many times over, and a healthy but
// slowed parent would be reported stalled. fps is the test stream's frame
// rate: every frame is a unit each viewer verifies, so fewer under the
// race detector.
const (
	slow = 4
	fps  = 10
)
