// Package devicebench measures a device's media fan-out: the CPU the device
// spends per viewer, and so viewers per core, with N pion receivers that
// join through the bridge as ERS players do and receive the srtp
// transport; and, for comparison, the same for Janus's streaming plugin fed
// the same clip (RunJanus).
//
// The system under test is the demo (bootstrap, bridge and device with the
// built-in sample stream) in a child process with GOMAXPROCS=1
// (ServeTarget, started as `ersmesh-bench device-target`), or Janus pinned
// to one core; the viewers run in the benchmark's process, so their
// decryption is not counted against the system under test. The bridge in
// the child only relays signalling, which ends before the measurement
// starts.
//
// MeasureStep and Target lend the same measurement to comparisons with
// other servers (package go2rtcbench): N pion WHEP receivers POST their
// offers to any WHEP endpoint, the server's process's CPU is read, and
// each receiver counts the video frames and the packets lost it saw.
package devicebench
