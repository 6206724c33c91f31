//go:build !race

package relayviewer_test

// slow: the protocol's own timings; fps: a camera's frame rate
// (race_test.go changes both).
const (
	slow = 1
	fps  = 30
)
