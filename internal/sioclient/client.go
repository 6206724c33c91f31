package sioclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/ersmesh/ersmesh/bridge/socketio"
)

// MaxFrame bounds one frame from the server.
const MaxFrame = 1 << 20

// ErrClosed is returned once the connection is gone.
var ErrClosed = errors.New("sioclient: connection closed")

// Options may be nil.
type Options struct {
	// Header is sent with the handshake and the WebSocket upgrade (Origin,
	// for instance).
	Header http.Header
	// HTTPClient makes the handshake and the upgrade; default http.DefaultClient.
	HTTPClient *http.Client
}

// Handshake is what the server answered to the handshake request.
type Handshake struct {
	SID                string
	Heartbeat, Timeout int // seconds
	Transports         []string
	Header             http.Header // of the HTTP response, for CORS checks
}

// Event is a decoded event packet.
type Event struct {
	Name string            `json:"name"`
	Args []json.RawMessage `json:"args"`
}

// Client is one Socket.IO 0.9 connection. Its methods may be called from
// several goroutines.
type Client struct {
	Handshake Handshake

	conn *websocket.Conn
	in   chan socketio.Packet
	done chan struct{} // closed when the read loop ends

	mu     sync.Mutex
	nextID int
	acks   map[string]chan []json.RawMessage
	err    error // why the read loop ended
}

// DoHandshake performs only the HTTP handshake against base
// ("http://host:port").
func DoHandshake(ctx context.Context, base string, opts *Options) (Handshake, error) {
	if opts == nil {
		opts = &Options{}
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/socket.io/1/?t=1", nil)
	if err != nil {
		return Handshake{}, err
	}
	for k, v := range opts.Header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Handshake{}, fmt.Errorf("socket.io handshake: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return Handshake{}, fmt.Errorf("socket.io handshake: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Handshake{}, fmt.Errorf("socket.io handshake: %s: %s", resp.Status, body)
	}
	f := strings.Split(string(body), ":")
	if len(f) != 4 || f[0] == "" {
		return Handshake{}, fmt.Errorf("socket.io handshake: unexpected answer %q", body)
	}
	hb, err1 := strconv.Atoi(f[1])
	to, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return Handshake{}, fmt.Errorf("socket.io handshake: bad timeouts in %q", body)
	}
	return Handshake{SID: f[0], Heartbeat: hb, Timeout: to, Transports: strings.Split(f[3], ","), Header: resp.Header}, nil
}

// Dial handshakes, opens the WebSocket and waits for the connect packet.
func Dial(ctx context.Context, base string, opts *Options) (*Client, error) {
	hs, err := DoHandshake(ctx, base, opts)
	if err != nil {
		return nil, err
	}
	return DialSID(ctx, base, hs, opts)
}

// DialSID opens the WebSocket for a handshake already made (or a made-up
// one, to test how a server treats an unknown sid).
func DialSID(ctx context.Context, base string, hs Handshake, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	u, err := url.Parse(strings.TrimRight(base, "/") + "/socket.io/1/websocket/" + url.PathEscape(hs.SID))
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	conn, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPHeader: opts.Header, HTTPClient: opts.HTTPClient})
	if err != nil {
		return nil, fmt.Errorf("socket.io websocket: %w", err)
	}
	conn.SetReadLimit(MaxFrame)
	c := &Client{
		Handshake: hs,
		conn:      conn,
		in:        make(chan socketio.Packet, 256),
		done:      make(chan struct{}),
		acks:      make(map[string]chan []json.RawMessage),
	}
	_, b, err := conn.Read(ctx)
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("socket.io: waiting for the connect packet: %w", err)
	}
	p, err := socketio.ParsePacket(b)
	if err != nil || p.Type != socketio.PacketConnect {
		conn.CloseNow()
		return nil, fmt.Errorf("socket.io: expected the connect packet, got %q", truncate(b))
	}
	go c.readLoop()
	return c, nil
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

func (c *Client) readLoop() {
	defer close(c.done)
	defer close(c.in)
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		for id, ch := range c.acks {
			close(ch)
			delete(c.acks, id)
		}
		c.mu.Unlock()
	}()
	ctx := context.Background()
	for {
		var b []byte
		_, b, err = c.conn.Read(ctx)
		if err != nil {
			return
		}
		var frames [][]byte
		frames, err = socketio.SplitPayload(b)
		if err != nil {
			return
		}
		for _, f := range frames {
			var p socketio.Packet
			p, err = socketio.ParsePacket(f)
			if err != nil {
				return
			}
			switch p.Type {
			case socketio.PacketHeartbeat:
				c.conn.Write(ctx, websocket.MessageText, []byte("2::"))
				continue
			case socketio.PacketAck:
				if c.deliverAck(p.Data) {
					continue
				}
			}
			// The consumer reads at its own pace; if it stops reading, the
			// connection stalls rather than buffering without bound.
			c.in <- p
		}
	}
}

// deliverAck routes "<id>+[args]" to the EmitAck waiting for it.
func (c *Client) deliverAck(data string) bool {
	id, rest, _ := strings.Cut(data, "+")
	c.mu.Lock()
	ch := c.acks[id]
	delete(c.acks, id)
	c.mu.Unlock()
	if ch == nil {
		return false
	}
	var args []json.RawMessage
	if rest != "" {
		if json.Unmarshal([]byte(rest), &args) != nil {
			args = []json.RawMessage{json.RawMessage(strconv.Quote(rest))}
		}
	}
	ch <- args
	return true
}

// Send writes one raw frame, valid or not.
func (c *Client) Send(ctx context.Context, frame []byte) error {
	return c.conn.Write(ctx, websocket.MessageText, frame)
}

// Emit sends an event without asking for an ack.
func (c *Client) Emit(ctx context.Context, name string, args ...any) error {
	b, err := encodeEvent("", name, args)
	if err != nil {
		return err
	}
	return c.Send(ctx, b)
}

// EmitAck sends an event and waits for its ack's arguments.
func (c *Client) EmitAck(ctx context.Context, name string, args ...any) ([]json.RawMessage, error) {
	ch := make(chan []json.RawMessage, 1)
	c.mu.Lock()
	if c.err != nil || c.isDone() {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.nextID++
	id := strconv.Itoa(c.nextID)
	c.acks[id] = ch
	c.mu.Unlock()
	b, err := encodeEvent(id, name, args)
	if err == nil {
		err = c.Send(ctx, b)
	}
	if err != nil {
		c.mu.Lock()
		delete(c.acks, id)
		c.mu.Unlock()
		return nil, err
	}
	select {
	case a, ok := <-ch:
		if !ok {
			return nil, ErrClosed
		}
		return a, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.acks, id)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (c *Client) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func encodeEvent(id, name string, args []any) ([]byte, error) {
	if args == nil {
		args = []any{}
	}
	data, err := json.Marshal(struct {
		Name string `json:"name"`
		Args []any  `json:"args"`
	}{name, args})
	if err != nil {
		return nil, fmt.Errorf("encode event %q: %w", name, err)
	}
	return socketio.Packet{Type: socketio.PacketEvent, ID: id, AckData: id != "", Data: string(data)}.Encode(), nil
}

// Next returns the next packet that is not a heartbeat or an awaited ack:
// events, error packets, messages, disconnects. After the connection ends
// it returns ErrClosed (wrapping the reason).
func (c *Client) Next(ctx context.Context) (socketio.Packet, error) {
	select {
	case p, ok := <-c.in:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return socketio.Packet{}, fmt.Errorf("%w: %v", ErrClosed, err)
		}
		return p, nil
	case <-ctx.Done():
		return socketio.Packet{}, ctx.Err()
	}
}

// NextEvent returns the next event called name, skipping other events.
// An error packet from the server ends the wait with an error.
func (c *Client) NextEvent(ctx context.Context, name string) (Event, error) {
	for {
		p, err := c.Next(ctx)
		if err != nil {
			return Event{}, err
		}
		switch p.Type {
		case socketio.PacketError:
			return Event{}, fmt.Errorf("socket.io error packet: %s", p.Data)
		case socketio.PacketEvent:
			e, err := DecodeEvent(p)
			if err != nil {
				return Event{}, err
			}
			if e.Name == name {
				return e, nil
			}
		}
	}
}

// DecodeEvent reads an event packet's name and arguments.
func DecodeEvent(p socketio.Packet) (Event, error) {
	var e Event
	if p.Type != socketio.PacketEvent {
		return e, fmt.Errorf("not an event packet: %s", p.Type)
	}
	if err := json.Unmarshal([]byte(p.Data), &e); err != nil {
		return e, fmt.Errorf("bad event packet: %w", err)
	}
	return e, nil
}

// Close says goodbye and closes the connection, waiting for the read loop.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Errors here mean the server went first, which is no failure of ours.
	c.conn.Write(ctx, websocket.MessageText, []byte("0::"))
	c.conn.CloseNow()
	// Drain so the read loop is never stuck on a full channel.
	go func() {
		for range c.in {
		}
	}()
	<-c.done
	return nil
}
