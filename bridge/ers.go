package bridge

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/bridge/socketio"
	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/signalwire"
)

// ersHandler turns Socket.IO events into ERS behaviour. It is the Bridge
// seen through the socketio.Handler interface.
type ersHandler Bridge

func (h *ersHandler) Connect(s *socketio.Socket) {
	b := (*Bridge)(h)
	stun := b.stunServers()
	v := &viewer{
		b: b, sock: s,
		joins:      limit.NewRate(b.cfg.Rates.Joins, 5),
		messages:   limit.NewRate(b.cfg.Rates.Messages, 5),
		candidates: limit.NewRate(b.cfg.Rates.Candidates, 40),
	}
	b.mu.Lock()
	b.views[s.ID()] = v
	b.mu.Unlock()
	// Both lists must reach the player before any offer: it builds its
	// RTCPeerConnection from them. TURN credentials are not handed to a
	// mere socket: they come with a join the device accepted (a second
	// turnservers, see deviceSession.connect), so a TURN server is no
	// open relay for anyone who opens a socket.
	s.Emit(ersproto.EventSTUNServers, iceServersJSON(stun))
	s.Emit(ersproto.EventTURNServers, iceServersJSON(nil))
	b.log.Debug("viewer connected", "sid", s.ID(), "addr", s.RemoteAddr())
}

// iceServersJSON lists servers for the stunservers/turnservers events,
// with "url" for legacy ERS players.
func iceServersJSON(servers []signalwire.ICEServer) []ersproto.ICEServer {
	out := []ersproto.ICEServer{}
	for _, is := range servers {
		out = append(out, ersproto.ICEServer{URL: is.URLs[0], URLs: is.URLs, Username: is.Username, Credential: is.Credential})
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
	switch {
	case name == ersproto.EventJoin:
		return b.counted("join", v.join(args, ack))
	case name == ersproto.EventResume:
		return b.counted("resume", v.resume(args, ack))
	case name == ersproto.EventMessage:
		return b.counted("message", v.message(args))
	case name == ersproto.EventLeave:
		v.leave("viewer left")
		return nil
	case ersproto.Quiet(name):
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
