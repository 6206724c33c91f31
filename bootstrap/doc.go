// Package bootstrap is the stable entry point of a mesh: a libp2p host that
// runs the DHT in server mode and whose addresses devices and bridges dial
// first. It holds no rooms of its own and never sees signalling or media.
package bootstrap
