package node

import (
	"time"
)

// Device event types, named as EMS names them, so that operators' scripts
// that watch an EMS find the same words.
const (
	EventStarted               = "webRTCStarted"               // a room is served (published)
	EventStopped               = "webRTCStopped"               // a room is no longer served
	EventPeerConnectionCreated = "webRTCPeerConnectionCreated" // a viewer was admitted and got a PeerConnection
	EventPeerConnectionClosed  = "webRTCPeerConnectionClosed"  // that PeerConnection is closed
	EventPeerStreamStarted     = "webRTCPeerStreamStarted"     // the viewer connected: media flows
	EventPeerStreamClosed      = "webRTCPeerStreamClosed"      // media to that viewer stopped
	EventTalkbackStarted       = "talkbackStarted"             // the viewer took the talkback floor: its voice goes to the sink
	EventTalkbackStopped       = "talkbackStopped"             // the viewer's talk spurt ended
)

// Event is something that happened on the device, for logs and webhooks.
// The JSON form is what the webhook posts (docs/protocol.md).
type Event struct {
	Type string    `json:"type"`
	Time time.Time `json:"timestamp"`
	Room string    `json:"roomid"`
	// Viewer events only: the viewer's id at its bridge, the bridge's
	// peer ID, the stream and the transport (fmp4 or srtp).
	Session   string `json:"session,omitempty"`
	Bridge    string `json:"bridge,omitempty"`
	Stream    string `json:"streamName,omitempty"`
	Transport string `json:"transport,omitempty"`
	// Reason says why a room stopped.
	Reason string `json:"reason,omitempty"`
}

// emit logs ev and hands it to the OnEvent hook. It runs on whichever
// goroutine saw the event (pion's among them), so the hook must not block.
func (d *Device) emit(ev Event) {
	ev.Time = time.Now().UTC()
	attrs := []any{"event", ev.Type, "room", ev.Room}
	if ev.Session != "" {
		attrs = append(attrs, "session", ev.Session, "bridge", ev.Bridge, "stream", ev.Stream, "transport", ev.Transport)
	}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	d.log.Info("device event", attrs...)
	if d.cfg.OnEvent != nil {
		d.cfg.OnEvent(ev)
	}
}

// viewerEvent is an event of session s; the caller holds s.mu.
func (s *session) viewerEvent(typ string) {
	s.dev.emit(Event{Type: typ, Room: s.stat.Room, Session: s.stat.Session, Bridge: s.currentBridge().String(), Stream: s.stat.Stream, Transport: s.stat.Transport})
}

// streamStarted emits EventPeerStreamStarted the first time the viewer
// connects. Events of one session are emitted under s.mu, so a webhook
// sees them in order even though pion reports states on its own goroutine.
func (s *session) streamStarted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streaming || s.ended {
		return
	}
	s.streaming = true
	s.viewerEvent(EventPeerStreamStarted)
}

// peerClosed emits the closing events of a session whose PeerConnection is
// closed: the stream's, if it ever started, then the PeerConnection's.
func (s *session) peerClosed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	if s.streaming {
		s.viewerEvent(EventPeerStreamClosed)
	}
	s.viewerEvent(EventPeerConnectionClosed)
}

func (s *session) peerCreated() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.viewerEvent(EventPeerConnectionCreated)
}
