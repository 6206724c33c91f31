// Package media turns a device's sources into streams: it reads H.264 video
// and AAC, Opus or G.711 audio from the built-in clip, files, a pipe, MP4
// files, RTSP cameras and RTP pushes, and prepares every frame once for all
// viewers: RTP packets for the srtp transport, an fMP4 segment in the EMS
// record framing (package ems) for the fmp4 transport. Each Stream keeps the
// current GOP so that a new viewer starts on a keyframe at once, and bounds
// what a slow viewer can hold.
//
// It owns the sources' parsers, the per-stream reader goroutine, the GOP
// cache and the viewers' queues. It knows nothing of rooms, bridges,
// signalling or data channels: the device (package node) attaches a
// stream's viewers to PeerConnections.
package media
