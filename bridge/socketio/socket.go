package socketio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// maxMalformed is how many malformed packets a socket may send before it is
// dropped: a few are a buggy client worth telling, many are noise.
const maxMalformed = 20

// Socket is one connected client. Its methods are safe for concurrent use.
type Socket struct {
	srv    *Server
	id     string
	remote string
	conn   *websocket.Conn
	log    *slog.Logger

	queue chan []byte // encoded packets for the writer

	// ctx bounds every read and write on conn; cancelling it cuts the
	// connection. The writer cancels it when it is done.
	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
	done      chan struct{}        // closed when the socket starts to close
	reason    error                // why; set before done is closed
	farewell  []byte               // packet sent before the close frame, or nil
	status    websocket.StatusCode // close frame status; 0 cuts without a close handshake

	writerDone chan struct{}

	malformed int // read goroutine only
}

func newSocket(srv *Server, id, remote string, conn *websocket.Conn) *Socket {
	ctx, cancel := context.WithCancel(srv.ctx)
	return &Socket{
		srv:        srv,
		id:         id,
		remote:     remote,
		conn:       conn,
		log:        srv.log.With("sid", id),
		queue:      make(chan []byte, srv.cfg.SendQueue),
		ctx:        ctx,
		cancel:     cancel,
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// ID returns the session id from the handshake.
func (s *Socket) ID() string { return s.id }

// RemoteAddr returns the address of the HTTP request that opened the
// WebSocket (a proxy's, behind one).
func (s *Socket) RemoteAddr() string { return s.remote }

// Emit queues the event "5:::{"name":..,"args":[..]}" for the client. It
// never blocks. It returns ErrClosed once the socket is closing, and
// ErrSlowClient, closing the socket, when the send queue is full. A nil
// error means queued, not delivered.
func (s *Socket) Emit(name string, args ...any) error {
	if name == "" {
		return errors.New("socketio: emit: empty event name")
	}
	b, err := encodeEvent(name, args)
	if err != nil {
		return fmt.Errorf("socketio: emit %q: %w", name, err)
	}
	return s.send(b)
}

// Close starts closing the socket: what is queued is sent, then "0::"
// (which tells a 0.9 client it was booted, so it does not reconnect) and a
// WebSocket close. It does not wait, so a Handler may call it; Disconnect
// follows with ErrClosed. Close is idempotent and returns nil.
func (s *Socket) Close() error {
	s.end(ErrClosed, disconnectPacket, websocket.StatusNormalClosure)
	return nil
}

// end starts closing the socket once; later calls change nothing and
// return false. A zero status cuts the connection at once, aborting a
// write stuck on a slow peer; otherwise the writer closes politely.
func (s *Socket) end(reason error, farewell []byte, status websocket.StatusCode) bool {
	first := false
	s.closeOnce.Do(func() {
		s.reason, s.farewell, s.status = reason, farewell, status
		close(s.done)
		if status == 0 {
			s.cancel()
		}
		first = true
	})
	return first
}

func (s *Socket) closing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// send queues an encoded packet without blocking.
func (s *Socket) send(b []byte) error {
	if s.closing() {
		return ErrClosed
	}
	select {
	case s.queue <- b:
		return nil
	default:
		if s.end(ErrSlowClient, nil, 0) {
			s.log.Warn("socketio: dropping slow client: send queue full", "queue", cap(s.queue), "addr", s.remote)
		}
		return ErrSlowClient
	}
}

// sendError queues an error packet with a text for people: the 0.9 client
// reads "<reason>+<advice>" and maps known codes, so a free text reaches
// it as an empty reason, but shows in the browser's WebSocket inspector. A
// '+' in the text would make the client read what follows as advice (and
// "0" as "reconnect"), so none is sent.
func (s *Socket) sendError(text string) {
	text = strings.TrimPrefix(text, "socketio: ")
	text = strings.ReplaceAll(text, "+", "＋")
	if len(text) > 256 {
		cut := 256
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "…"
	}
	s.send(Packet{Type: PacketError, Data: text}.Encode())
}

// ackFunc returns the AckFunc for the client's packet id.
func (s *Socket) ackFunc(id string) AckFunc {
	var used atomic.Bool
	return func(args ...any) error {
		a, err := marshalArgs(args)
		if err != nil {
			return fmt.Errorf("socketio: ack %s: %w", id, err)
		}
		if used.Swap(true) {
			return ErrAckUsed
		}
		return s.send(Packet{Type: PacketAck, Data: id + "+" + string(a)}.Encode())
	}
}

// write sends one packet, bounded by writeTimeout.
func (s *Socket) write(ctx context.Context, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, b)
}

// writeLoop owns the connection's writes: queued packets and heartbeats.
func (s *Socket) writeLoop(interval time.Duration) {
	defer close(s.writerDone)
	defer s.cancel()
	heartbeat := time.NewTicker(interval)
	defer heartbeat.Stop()
	for {
		var err error
		select {
		case <-s.done:
			s.finish()
			return
		case b := <-s.queue:
			err = s.write(s.ctx, b)
		case <-heartbeat.C:
			err = s.write(s.ctx, heartbeatPacket)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				// Closed under the write, by the reader's side (idle
				// deadline, client gone): the reader names the reason.
				<-s.done
			} else {
				s.end(fmt.Errorf("socketio: write: %w", err), nil, 0)
			}
			s.finish()
			return
		}
	}
}

// finish closes the connection the way end asked.
func (s *Socket) finish() {
	if s.status == 0 {
		s.conn.CloseNow()
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.srv.closeGrace)
	defer cancel()
	var err error
flush: // what the handler queued before the socket closed
	for err == nil {
		select {
		case b := <-s.queue:
			err = s.conn.Write(ctx, websocket.MessageText, b)
		default:
			break flush
		}
	}
	if err == nil && s.farewell != nil {
		err = s.conn.Write(ctx, websocket.MessageText, s.farewell)
	}
	if err != nil {
		s.conn.CloseNow()
		return
	}
	s.conn.Close(s.status, closeReason(s.reason))
}

// closeReason fits an error into a WebSocket close reason (123 bytes).
func closeReason(err error) string {
	text := strings.TrimPrefix(err.Error(), "socketio: ")
	if len(text) <= 123 {
		return text
	}
	cut := 123
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut]
}

// readLoop reads frames until the connection ends. Once the socket is
// closing it still reads, so the close handshake completes, but delivers
// nothing.
func (s *Socket) readLoop(h Handler, idle time.Duration) {
	for {
		ctx, cancel := context.WithTimeout(s.ctx, idle)
		typ, b, err := s.conn.Read(ctx)
		cancel()
		if err != nil {
			s.end(s.readError(err), nil, 0)
			return
		}
		if !s.closing() {
			s.handleFrame(h, typ, b)
		}
	}
}

// readError names why reading ended.
func (s *Socket) readError(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded) && s.ctx.Err() == nil:
		return ErrIdleTimeout
	case errors.Is(err, websocket.ErrMessageTooBig):
		s.log.Info("socketio: dropping client: WebSocket message too big", "limit", s.srv.cfg.MaxFrame, "addr", s.remote)
		return fmt.Errorf("%w: more than %d bytes", ErrFrameTooBig, s.srv.cfg.MaxFrame)
	case websocket.CloseStatus(err) != -1:
		return fmt.Errorf("%w: WebSocket closed with status %d", ErrClientDisconnect, websocket.CloseStatus(err))
	}
	return fmt.Errorf("socketio: read: %w", err)
}

// handleFrame handles one WebSocket message: a packet or a payload.
func (s *Socket) handleFrame(h Handler, typ websocket.MessageType, b []byte) {
	if typ != websocket.MessageText {
		s.badPacket(fmt.Errorf("%w: binary WebSocket message; Socket.IO 0.9 sends text", ErrMalformed))
		return
	}
	packets, err := SplitPayload(b)
	if err != nil {
		s.badPacket(err)
		return
	}
	for _, raw := range packets {
		if s.closing() {
			return
		}
		p, err := ParsePacket(raw)
		if err == nil {
			err = s.handlePacket(h, p)
		}
		if err != nil {
			s.badPacket(err)
		}
	}
}

// badPacket tells the client what was wrong, and drops it after
// maxMalformed such packets.
func (s *Socket) badPacket(err error) {
	s.malformed++
	if s.malformed < maxMalformed {
		s.log.Debug("socketio: malformed packet", "err", err)
		s.sendError(err.Error())
		return
	}
	s.log.Info("socketio: dropping client: too many malformed packets", "last", err, "addr", s.remote)
	s.sendError("too many malformed packets")
	s.end(fmt.Errorf("socketio: %d malformed packets, the last: %w", s.malformed, err),
		disconnectPacket, websocket.StatusPolicyViolation)
}

// handlePacket acts on one packet; an error means the packet was malformed.
func (s *Socket) handlePacket(h Handler, p Packet) error {
	switch p.Type {
	case PacketDisconnect:
		if p.Endpoint == "" {
			s.end(ErrClientDisconnect, nil, websocket.StatusNormalClosure)
		}
		return nil
	case PacketConnect:
		// 0.9 servers create namespaces on demand and confirm the
		// connect; this one has no handlers on them (see below).
		if p.Endpoint != "" {
			s.send(Packet{Type: PacketConnect, Endpoint: p.Endpoint}.Encode())
		}
		return nil
	case PacketHeartbeat, PacketNoop, PacketAck:
		// Any frame already reset the idle deadline; the server asks
		// for no acks.
		return nil
	case PacketError:
		s.log.Debug("socketio: client sent an error packet", "data", excerpt([]byte(p.Data), 64))
		return nil
	}
	if p.Endpoint != "" {
		s.send(Packet{Type: PacketError, Endpoint: p.Endpoint, Data: "no handlers on this endpoint"}.Encode())
		return nil
	}
	name, args, err := decodeEvent(p)
	if err != nil {
		return err
	}
	var ack AckFunc
	switch {
	case p.AckData:
		ack = s.ackFunc(p.ID)
	case p.ID != "":
		// A plain id is acked by the transport at once, as 0.9 does.
		s.send(Packet{Type: PacketAck, Data: p.ID}.Encode())
	}
	if err := h.Event(s, name, args, ack); err != nil {
		s.sendError(err.Error())
	}
	return nil
}
