// Package go2rtcbench compares the ersmesh device with go2rtc
// (github.com/AlexxIT/go2rtc), a widely used camera-to-WebRTC server, in
// one run on one machine: the same RTSP stream into both, the same pion
// WHEP receivers out of both (package devicebench), each server's CPU time
// read from /proc; and navigate to first decoded frame in headless
// Chromium, go2rtc's own WebRTC page against the ersmesh player's fmp4 and
// srtp transports.
//
// go2rtc is a benchmark dependency only: Binary builds the pinned version
// from its module in a scratch directory with its own go.mod (ersmesh's
// go.mod does not name it) and caches the binary in the user's cache
// directory. The stream is a generated clip (Clip) that ffmpeg publishes
// in a loop to an RTSP server in the benchmark's process (gortsplib, rtsp.go);
// go2rtc and the ersmesh device, each run as its own process (the device by
// the ersmesh command), are both RTSP clients of it, as of a camera. An
// earlier version had the device read go2rtc's own RTSP server, which made
// go2rtc pay for a relay the device did not, and under load garbled the
// device's RTSP session.
package go2rtcbench
