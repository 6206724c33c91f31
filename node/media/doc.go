// Package media turns a device's sources into streams: it reads H.264 or
// H.265 video (passed through, never transcoded) and AAC, Opus or G.711
// audio from the built-in clip, files, a pipe, MP4 files, RTSP cameras and
// RTP pushes, and prepares every frame once for all
// viewers: RTP packets for the srtp transport, an fMP4 segment in the EMS
// record framing (package ems) for the fmp4 transport. Each Stream keeps the
// current GOP so that a new viewer starts on a keyframe at once, and bounds
// what a slow viewer can hold.
//
// It owns the sources' parsers, the per-stream reader goroutine, the GOP
// cache, the viewers' queues and the srtp viewers' writer goroutines (one
// per viewer: a viewer whose sends block stalls no one, and one stream's
// fan-out runs on every core). Files by concept: stream.go (the reader and
// the per-frame work), gop.go, fmp4view.go and rtpview.go (the two fan-outs),
// track.go (an srtp viewer's track). It knows nothing of rooms, bridges,
// signalling or data channels: the device (package node) attaches a
// stream's viewers to PeerConnections.
package media
