// Package bridgeload measures one bridge under load from many Socket.IO
// sessions: memory per idle session, joins per second for a cached room,
// and signalling messages per second forwarded to a device with their
// added latency.
//
// The bridge under test runs in a child process (ServeTarget, started by
// `ersmesh-bench bridge` as `ersmesh-bench bridge-target`) with
// GOMAXPROCS=1, so that its memory and CPU time are its own and its
// throughput is that of one core; the load client (internal/sioclient
// sessions over loopback) and the device run in the parent. The device is a
// real mesh node speaking the real signalling protocol, but it answers
// joins without WebRTC: what is measured is the bridge, not pion.
package bridgeload
