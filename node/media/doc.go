// Package media turns video sources into timed H.264 access units and feeds
// them, once per frame, to every viewer of a stream.
//
// It owns the Annex-B stream parser, the built-in sample clip and the
// per-stream pacing loop. It knows nothing of rooms, bridges or signalling:
// the device (package node) attaches a Stream's track to each viewer's
// PeerConnection.
package media
