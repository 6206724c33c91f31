// Package talkback is where a viewer's voice goes on the device: the sinks
// a talk spurt is written to (an Ogg Opus file, a command's standard input,
// a camera's ONVIF audio backchannel) and the floor that lets one viewer talk at a time.
//
// A talk spurt is what one viewer says while it holds the floor: one Ogg
// Opus stream (RFC 7845), written as the RTP packets arrive. The device
// (package node) decides who may talk; this package does not look at
// sessions or secrets.
package talkback
