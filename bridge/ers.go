package bridge

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/bridge/socketio"
	"github.com/ersmesh/ersmesh/signalwire"
)

// ersHandler turns Socket.IO events into ERS behaviour. It is the Bridge
// seen through the socketio.Handler interface.
type ersHandler Bridge

// iceServerJSON is an RTCIceServer for the stunservers/turnservers events.
// Legacy ERS players read "url", current ones "urls"; send both.
type iceServerJSON struct {
	URL        string   `json:"url,omitempty"`
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

func (h *ersHandler) Connect(s *socketio.Socket) {
	b := (*Bridge)(h)
	stun, turn := b.iceServers(s.ID())
	v := &viewer{
		b: b, sock: s, ice: append(stun, turn...),
		joins:      limit.NewRate(b.cfg.Rates.Joins, 5),
		messages:   limit.NewRate(b.cfg.Rates.Messages, 5),
		candidates: limit.NewRate(b.cfg.Rates.Candidates, 40),
	}
	b.mu.Lock()
	b.views[s.ID()] = v
	b.mu.Unlock()
	// Both lists must reach the player before any offer: it builds its
	// RTCPeerConnection from them.
	s.Emit("stunservers", iceServersJSON(stun))
	s.Emit("turnservers", iceServersJSON(turn))
	b.log.Debug("viewer connected", "sid", s.ID(), "addr", s.RemoteAddr())
}

func iceServersJSON(servers []signalwire.ICEServer) []iceServerJSON {
	out := []iceServerJSON{}
	for _, is := range servers {
		out = append(out, iceServerJSON{URL: is.URLs[0], URLs: is.URLs, Username: is.Username, Credential: is.Credential})
	}
	return out
}

func (h *ersHandler) Disconnect(s *socketio.Socket, err error) {
	b := (*Bridge)(h)
	b.mu.Lock()
	v := b.views[s.ID()]
	delete(b.views, s.ID())
	b.mu.Unlock()
	if v != nil {
		// The player may re-attach its session through another bridge
		// (or this one, on a new socket): the device keeps it meanwhile.
		v.detach("viewer disconnected")
	}
	b.log.Debug("viewer disconnected", "sid", s.ID(), "err", err)
}

func (h *ersHandler) Event(s *socketio.Socket, name string, args []json.RawMessage, ack socketio.AckFunc) error {
	b := (*Bridge)(h)
	b.mu.Lock()
	v := b.views[s.ID()]
	b.mu.Unlock()
	if v == nil {
		return errors.New("socket is not connected")
	}
	switch name {
	case "join":
		return b.counted("join", v.join(args, ack))
	case "resume":
		return b.counted("resume", v.resume(args, ack))
	case "message":
		return b.counted("message", v.message(args))
	case "leave":
		v.leave("viewer left")
		return nil
	case "create", "shareScreen", "unshareScreen", "trace":
		// signalmaster events a viewer of a device has no use for; ERS
		// players may still send them, so accept them quietly.
		if ack != nil {
			ack(nil)
		}
		return nil
	}
	return b.counted("unknown", fmt.Errorf("unknown event %q", truncate(name, 64)))
}

// counted counts an error answered to the browser.
func (b *Bridge) counted(event string, err error) error {
	if err != nil {
		b.metrics.errors.WithLabelValues(event).Inc()
	}
	return err
}

// joinData is the second argument of join: {token, streamName, transport}.
type joinData struct {
	Token      string `json:"token"`
	StreamName string `json:"streamName"`
	Transport  string `json:"transport"`
	Nonce      string `json:"nonce"` // ersmesh players: what the device signs its offer for
	// ResumeKey (ersmesh players) is the viewer's public key for
	// re-attaching the session through another bridge later.
	ResumeKey string `json:"resumeKey"`
	// SID, in a resume, is the session (the offer's sid) to re-attach.
	SID string `json:"sid"`
}

// parseJoin reads join(roomName, [data]); plain signalmaster clients send
// only the room name.
func parseJoin(args []json.RawMessage) (room string, data joinData, err error) {
	if len(args) == 0 {
		return "", data, errors.New("join needs a room name")
	}
	if err := json.Unmarshal(args[0], &room); err != nil {
		return "", data, errors.New("join: the room name must be a string")
	}
	if len(args) > 1 && len(args[1]) > 0 && args[1][0] == '{' {
		if err := json.Unmarshal(args[1], &data); err != nil {
			return "", data, fmt.Errorf("join: bad data object: %v", err)
		}
	}
	return room, data, nil
}

// ersMessage is the ERS "message" event, both ways.
type ersMessage struct {
	To          string          `json:"to,omitempty"`
	From        string          `json:"from,omitempty"`
	SID         string          `json:"sid,omitempty"`
	Broadcaster string          `json:"broadcaster,omitempty"`
	RoomType    string          `json:"roomType,omitempty"`
	Type        string          `json:"type"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Prefix      string          `json:"prefix,omitempty"`
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// roomDescription is the join ack's second argument.
func roomDescription(deviceID string) map[string]any {
	clients := map[string]any{}
	if deviceID != "" {
		clients[deviceID] = map[string]bool{"video": true, "audio": false, "screen": false}
	}
	return map[string]any{"clients": clients}
}
