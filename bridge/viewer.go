package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/bridge/socketio"
	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/signalwire"
)

// maxJoinDelay bounds how long a join over the rate is held back.
const maxJoinDelay = 3 * time.Second

// joinTimeout bounds finding the room, reaching its device and hearing its
// accept, so a viewer never waits on a dead device for long.
const joinTimeout = 15 * time.Second

// viewer is one browser socket. Its current device session is replaced on
// every join and ended on leave or disconnect.
type viewer struct {
	b    *Bridge
	sock *socketio.Socket

	// Event rates; each is used only from the socket's read goroutine.
	joins, messages, candidates *limit.Rate

	mu  sync.Mutex
	cur *deviceSession
}

func (v *viewer) join(args []json.RawMessage, ack socketio.AckFunc) error {
	return v.start(args, ack, false)
}

// resume is our players' event resume(room, {sid, token}, ack): re-attach
// the session sid, which came through another bridge (or an earlier socket),
// instead of starting one. The device challenges the viewer to prove its
// resume key; this bridge only relays.
func (v *viewer) resume(args []json.RawMessage, ack socketio.AckFunc) error {
	return v.start(args, ack, true)
}

func (v *viewer) start(args []json.RawMessage, ack socketio.AckFunc, resume bool) error {
	room, data, err := ersproto.ParseJoin(args)
	if err == nil && resume && data.SID == "" {
		err = errors.New("resume: no session id")
	}
	if err != nil {
		if ack != nil {
			ack(err.Error())
			return nil
		}
		// No callback to tell: an error packet is the only way to say it.
		return err
	}
	if ack == nil {
		// Without an ack the player could not learn who serves the room.
		ack = func(...any) error { return nil }
	}
	// A player rejoining faster than the rate is answered late, not with
	// an error: ERS players loop on an empty room and must keep looping,
	// just slower. Far beyond the rate it gets the empty room at once and
	// costs no lookup.
	delay, ok := v.joins.Delay(maxJoinDelay)
	if !ok {
		ack(nil, ersproto.DeviceRoom(""))
		return nil
	}
	// A join the device would refuse as malformed (a nonce over 64 bytes,
	// say) is refused here with the reason, not reported as an
	// unreachable device after a wasted lookup.
	joinMsg := &signalwire.Message{
		Kind: signalwire.KindJoin, Session: v.sock.ID(), Room: room,
		Stream: data.StreamName, Transport: data.Transport, Token: data.Token, Nonce: data.Nonce,
		ResumeKey: data.ResumeKey, Relay: data.Relay,
	}
	if err := joinMsg.Validate(); err != nil {
		ack("join: " + strings.TrimPrefix(err.Error(), signalwire.ErrInvalid.Error()+": "))
		return nil
	}
	// Tokens bind to the client's address, not its socket: ERS players
	// open a new socket for every rejoin.
	if err := v.b.access.Check(room, data.Token, clientKey(v.sock.RemoteAddr())); err != nil {
		v.b.log.Info("join refused", "sid", v.sock.ID(), "room", room, "reason", err)
		ack(err.Error())
		return nil
	}
	ds := &deviceSession{v: v, room: room, data: data, join: joinMsg, ack: ack, delay: delay, resume: resume, done: make(chan struct{})}
	ds.log = v.b.log.With("sid", v.sock.ID(), "room", room)
	ds.ctx, ds.cancel = context.WithCancel(v.b.ctx)

	b := v.b
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		ds.cancel()
		return errors.New("bridge is shutting down")
	}
	b.wg.Add(1)
	b.mu.Unlock()

	v.mu.Lock()
	prev := v.cur
	v.cur = ds
	v.mu.Unlock()
	if prev != nil {
		prev.end("viewer joined again")
	}
	go ds.run()
	return nil
}

func (v *viewer) message(args []json.RawMessage) error {
	if len(args) == 0 {
		return errors.New("message needs an argument")
	}
	m, err := ersproto.ParseMessage(args[0])
	if err != nil {
		return err
	}
	// A relaying viewer negotiates a link per child, candidates included:
	// its relaySignal messages count as candidates do.
	if m.Type == ersproto.TypeCandidate || m.Type == ersproto.TypeRelaySignal {
		if !v.candidates.Allow() {
			return fmt.Errorf("message: rate limited: more than %g candidates a second; this one was dropped", v.b.cfg.Rates.Candidates)
		}
	} else if !v.messages.Allow() {
		return fmt.Errorf("message: rate limited: more than %g messages a second; this one was dropped", v.b.cfg.Rates.Messages)
	}
	v.mu.Lock()
	ds := v.cur
	v.mu.Unlock()
	if ds == nil {
		return errors.New("message: join a room first")
	}
	return ds.forward(&m)
}

func (v *viewer) leave(reason string) {
	v.mu.Lock()
	ds := v.cur
	v.cur = nil
	v.mu.Unlock()
	if ds != nil {
		ds.end(reason)
	}
}

// detach ends the relay of the viewer's session but not the session: the
// device keeps it for a resume (signalwire.CodeDetach).
func (v *viewer) detach(reason string) {
	v.mu.Lock()
	ds := v.cur
	v.cur = nil
	v.mu.Unlock()
	if ds != nil {
		ds.mu.Lock()
		ds.detach = true
		ds.mu.Unlock()
		ds.end(reason)
	}
}

// deviceSession is one join: the stream to the room's device and the
// goroutine that relays the device's messages to the browser.
type deviceSession struct {
	v     *viewer
	room  string
	data  ersproto.Join
	join  *signalwire.Message // validated; ICEServers are added when sent
	ack   socketio.AckFunc
	delay time.Duration // held back this long first: the join rate
	log   *slog.Logger
	// resume: re-attach session data.SID instead of joining.
	resume bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex // guards conn and device, set once the device accepted
	conn   *signalwire.Conn
	device string
	reason string // why the viewer side ended the session
	// detach: the relay ends but the session may go on through another
	// bridge (the socket dropped, or this bridge shuts down).
	detach bool
}

// end stops the session from the viewer's side without waiting: the run
// goroutine says goodbye to the device and exits.
func (ds *deviceSession) end(reason string) {
	ds.mu.Lock()
	if ds.reason == "" {
		ds.reason = reason
	}
	conn := ds.conn
	ds.mu.Unlock()
	ds.cancel()
	if conn != nil {
		conn.Interrupt()
	}
}

// forward relays a browser message to the device.
func (ds *deviceSession) forward(m *ersproto.Message) error {
	ds.mu.Lock()
	conn, device := ds.conn, ds.device
	ds.mu.Unlock()
	if conn == nil {
		return errors.New("message: no device has accepted this viewer yet")
	}
	if m.To != "" && m.To != device {
		return fmt.Errorf("message: unknown recipient %q", truncate(m.To, 64))
	}
	sm := &signalwire.Message{Kind: signalwire.KindSignal, Type: m.Type, SID: m.SID, Payload: m.Payload}
	if err := sm.Validate(); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	ds.v.b.metrics.relayed.WithLabelValues("to_device").Inc()
	if err := conn.Send(sm); err != nil {
		ds.log.Info("device stream broke while forwarding", "err", err)
		ds.end("device stream broke")
	}
	return nil
}

func (ds *deviceSession) run() {
	defer ds.v.b.wg.Done()
	defer close(ds.done)
	defer ds.cancel()
	if ds.delay > 0 {
		t := time.NewTimer(ds.delay)
		select {
		case <-t.C:
		case <-ds.ctx.Done():
			t.Stop()
			return
		}
	}
	conn, device, ok := ds.connect()
	if !ok {
		return
	}
	defer conn.Close()
	ds.v.b.metrics.sessions.Inc()
	defer ds.v.b.metrics.sessions.Dec()
	stopPings := conn.KeepAlive(signalwire.PingInterval)
	defer stopPings()
	ds.relay(conn, device)
}

// connect finds the device, opens the stream, sends the join and acks the
// browser with the device's answer.
func (ds *deviceSession) connect() (*signalwire.Conn, string, bool) {
	b := ds.v.b
	ctx, cancel := context.WithTimeout(ds.ctx, joinTimeout)
	defer cancel()
	conn, id, err := b.dialDevice(ctx, ds.room)
	switch {
	case errors.Is(err, mesh.ErrNotFound):
		ds.log.Debug("no device in room")
		ds.v.b.metrics.joins.WithLabelValues("empty").Inc()
		ds.ack(nil, ersproto.DeviceRoom(""))
		return nil, "", false
	case errors.Is(err, errUnreachable):
		return ds.unreachable(err)
	case err != nil:
		if ds.ctx.Err() == nil {
			ds.log.Info("room lookup failed", "err", err)
			ds.v.b.metrics.joins.WithLabelValues("error").Inc()
			ds.ack(fmt.Sprintf("cannot join room %q: %v", truncate(ds.room, 140), err))
		}
		return nil, "", false
	}
	ds.mu.Lock()
	ds.conn = conn
	ds.mu.Unlock()
	if ds.ctx.Err() != nil { // ended while we connected; end() may have missed conn
		conn.Reset()
		return nil, "", false
	}
	if ds.resume {
		return ds.resumeSession(conn, id.String())
	}
	// Credentials are minted for a join that passed the bridge's rules;
	// the device gets them now, the browser once the device accepted.
	stun, turn := b.iceServers(ds.v.sock.ID())
	join := *ds.join
	join.ICEServers = append(stun, turn...)
	err = conn.Send(&join)
	if err != nil {
		conn.Reset()
		return ds.unreachable(err)
	}
	reply, err := conn.Recv(signalwire.JoinTimeout)
	if err != nil {
		conn.Reset()
		return ds.unreachable(err)
	}
	switch reply.Kind {
	case signalwire.KindAccept:
	case signalwire.KindReject:
		ds.log.Info("device refused viewer", "reason", reply.Reason)
		ds.v.b.metrics.joins.WithLabelValues("refused").Inc()
		ds.ack(reply.Reason)
		conn.Close()
		return nil, "", false
	default:
		conn.Reset()
		return ds.unreachable(fmt.Errorf("device answered the join with %q", reply.Kind))
	}
	device := id.String()
	ds.mu.Lock()
	ds.device = device
	ds.mu.Unlock()
	ds.log.Info("viewer joined device", "device", device, "stream", ds.data.StreamName)
	ds.v.b.metrics.joins.WithLabelValues("joined").Inc()
	if len(turn) > 0 {
		// Before the ack, so before the device's offer: the player
		// builds its RTCPeerConnection with them.
		ds.v.sock.Emit(ersproto.EventTURNServers, iceServersJSON(turn))
	}
	ds.ack(nil, ersproto.DeviceRoom(device))
	return conn, device, true
}

// unreachable answers a join whose device could not be reached as an empty
// room, as ERS did: the player retries, and by then the record may be fresh.
func (ds *deviceSession) unreachable(err error) (*signalwire.Conn, string, bool) {
	if ds.ctx.Err() != nil {
		return nil, "", false
	}
	ds.log.Info("device unreachable", "err", err)
	ds.v.b.cfg.Resolver.Forget(ds.room)
	ds.v.b.metrics.joins.WithLabelValues("empty").Inc()
	// Our player tells the viewer a dead device from an empty room by
	// this key; ERS players read only "clients".
	desc := ersproto.DeviceRoom("")
	desc.Unreachable = true
	ds.ack(nil, desc)
	return nil, "", false
}

// relay forwards the device's messages to the browser until either side ends.
func (ds *deviceSession) relay(conn *signalwire.Conn, device string) {
	sock := ds.v.sock
	for {
		m, err := conn.Recv(signalwire.IdleTimeout)
		if err != nil {
			if errors.Is(err, signalwire.ErrInterrupted) || ds.ctx.Err() != nil {
				ds.mu.Lock()
				reason := ds.reason
				detach := ds.detach
				ds.mu.Unlock()
				if reason == "" {
					reason = "bridge shutting down"
					detach = true
					sock.Emit(ersproto.EventRemove, ersproto.Remove{ID: device, Type: ersproto.RoomTypeVideo})
				}
				leave := &signalwire.Message{Kind: signalwire.KindLeave, Reason: reason}
				if detach {
					leave.Code = signalwire.CodeDetach
				}
				conn.Send(leave)
				return
			}
			ds.log.Info("device stream ended", "err", err)
			sock.Emit(ersproto.EventRemove, ersproto.Remove{ID: device, Type: ersproto.RoomTypeVideo})
			return
		}
		switch m.Kind {
		case signalwire.KindSignal:
			if err := ds.toBrowser(device, m); err != nil { // the browser is gone; Disconnect ends this session
				return
			}
		case signalwire.KindLeave:
			if m.Code == signalwire.CodeDetach {
				// The viewer re-attached its session elsewhere: nothing
				// ended that this socket should hear of.
				ds.log.Info("session moved to another bridge")
				return
			}
			ds.log.Info("device ended the session", "reason", m.Reason)
			// The reason is extra to ERS: our player shows it (a refused
			// room secret, say); ERS players ignore it.
			sock.Emit(ersproto.EventRemove, ersproto.Remove{ID: device, Type: ersproto.RoomTypeVideo, Reason: m.Reason})
			return
		case signalwire.KindPing:
		default:
			ds.log.Debug("unexpected message from device", "kind", m.Kind)
		}
	}
}

// toBrowser relays a device's signal to the browser as an ERS message.
func (ds *deviceSession) toBrowser(device string, m *signalwire.Message) error {
	ds.v.b.metrics.relayed.WithLabelValues("to_browser").Inc()
	return ds.v.sock.Emit(ersproto.EventMessage, ersproto.Message{
		From: device, To: ds.v.sock.ID(), SID: m.SID, Broadcaster: device,
		RoomType: ersproto.RoomTypeVideo, Type: m.Type, Payload: m.Payload, Prefix: ersproto.PrefixWebkit,
	})
}

// resumeSession asks the device to re-attach session ds.data.SID here and
// relays its challenge and the viewer's proof until the device accepts or
// refuses. The refusal's code leads the ack's error ("not-found: …"), so
// that the player knows when to start a fresh session instead.
func (ds *deviceSession) resumeSession(conn *signalwire.Conn, device string) (*signalwire.Conn, string, bool) {
	ds.mu.Lock()
	ds.device = device
	ds.mu.Unlock()
	err := conn.Send(&signalwire.Message{Kind: signalwire.KindResume, Session: ds.v.sock.ID(), Room: ds.room, SID: ds.data.SID})
	if err != nil {
		conn.Reset()
		return ds.unreachable(err)
	}
	deadline := time.Now().Add(joinTimeout)
	for {
		m, err := conn.Recv(time.Until(deadline))
		if err != nil {
			conn.Reset()
			if ds.ctx.Err() != nil {
				return nil, "", false
			}
			ds.log.Info("resume failed", "err", err)
			ds.v.b.metrics.joins.WithLabelValues("error").Inc()
			ds.ack(fmt.Sprintf("unreachable: the device did not complete the resume (%v)", err))
			return nil, "", false
		}
		switch m.Kind {
		case signalwire.KindSignal:
			ds.toBrowser(device, m)
		case signalwire.KindAccept:
			ds.log.Info("viewer re-attached its session", "device", device)
			ds.v.b.metrics.joins.WithLabelValues("resumed").Inc()
			ds.ack(nil, ersproto.DeviceRoom(device))
			return conn, device, true
		case signalwire.KindReject, signalwire.KindLeave:
			ds.log.Info("device refused the resume", "reason", m.Reason)
			ds.v.b.metrics.joins.WithLabelValues("refused").Inc()
			code := m.Code
			if code == "" {
				code = "refused"
			}
			ds.ack(code + ": " + m.Reason)
			conn.Close()
			return nil, "", false
		case signalwire.KindPing:
		}
	}
}
