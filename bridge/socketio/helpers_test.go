package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wait bounds every blocking step of a test.
const wait = 5 * time.Second

// quietConfig has heartbeats rare enough not to show up in a test.
func quietConfig() Config {
	return Config{HeartbeatInterval: time.Minute, HeartbeatTimeout: 2 * time.Minute}
}

type eventRec struct {
	sid    string
	name   string
	args   string // the arguments as one JSON array
	hasAck bool
}

type disconnectRec struct {
	sid string
	err error
}

// recorder is a Handler that records what it sees and plays a few events:
//
//	join   acks (null, args...), and acks again to check AckFunc's once
//	fail   returns an error holding '+'
//	echo   emits "echo" with the same arguments
//	close  emits "bye" and closes the socket
type recorder struct {
	onConnect    func(s *Socket)
	onDisconnect func(s *Socket, err error)

	connected    chan *Socket
	events       chan eventRec
	disconnected chan disconnectRec
	secondAck    chan error

	mu    sync.Mutex
	conns map[string]int // sid → Connect calls
	discs map[string]int // sid → Disconnect calls
}

func newRecorder() *recorder {
	return &recorder{
		connected:    make(chan *Socket, 100),
		events:       make(chan eventRec, 1000),
		disconnected: make(chan disconnectRec, 100),
		secondAck:    make(chan error, 100),
		conns:        make(map[string]int),
		discs:        make(map[string]int),
	}
}

func (r *recorder) Connect(s *Socket) {
	r.mu.Lock()
	r.conns[s.ID()]++
	r.mu.Unlock()
	if r.onConnect != nil {
		r.onConnect(s)
	}
	r.connected <- s
}

func (r *recorder) Event(s *Socket, name string, args []json.RawMessage, ack AckFunc) error {
	select {
	case r.events <- eventRec{sid: s.ID(), name: name, args: joinRaw(args), hasAck: ack != nil}:
	default:
	}
	switch name {
	case "join":
		if ack != nil {
			a := []any{nil}
			for _, arg := range args {
				a = append(a, arg)
			}
			ack(a...)
			r.secondAck <- ack("again")
		}
	case "fail":
		return errors.New("no room+0 here")
	case "echo":
		a := make([]any, len(args))
		for i := range args {
			a[i] = args[i]
		}
		s.Emit("echo", a...)
	case "close":
		s.Emit("bye")
		s.Close()
	}
	return nil
}

func (r *recorder) Disconnect(s *Socket, err error) {
	r.mu.Lock()
	r.discs[s.ID()]++
	r.mu.Unlock()
	if r.onDisconnect != nil {
		r.onDisconnect(s, err)
	}
	r.disconnected <- disconnectRec{sid: s.ID(), err: err}
}

// check verifies that every connected socket was disconnected exactly once.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for sid, n := range r.conns {
		if n != 1 || r.discs[sid] != 1 {
			t.Errorf("sid %s: %d Connect and %d Disconnect calls, want 1 and 1", sid, n, r.discs[sid])
		}
	}
	for sid := range r.discs {
		if r.conns[sid] == 0 {
			t.Errorf("sid %s: Disconnect without Connect", sid)
		}
	}
}

func (r *recorder) nextSocket(t *testing.T) *Socket {
	t.Helper()
	select {
	case s := <-r.connected:
		return s
	case <-time.After(wait):
		t.Fatal("no Connect")
		return nil
	}
}

func (r *recorder) nextEvent(t *testing.T) eventRec {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(wait):
		t.Fatal("no Event")
		return eventRec{}
	}
}

func (r *recorder) nextDisconnect(t *testing.T) disconnectRec {
	t.Helper()
	select {
	case d := <-r.disconnected:
		return d
	case <-time.After(wait):
		t.Fatal("no Disconnect")
		return disconnectRec{}
	}
}

// env is a Server behind a real HTTP server.
type env struct {
	t   *testing.T
	srv *Server
	ts  *httptest.Server
	rec *recorder
}

func newEnv(t *testing.T, cfg Config) *env {
	return newEnvWith(t, cfg, newRecorder())
}

func newEnvWith(t *testing.T, cfg Config, rec *recorder) *env {
	srv := NewServer(cfg, rec)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
		rec.check(t)
	})
	return &env{t: t, srv: srv, ts: ts, rec: rec}
}

func (e *env) get(path string, header http.Header) (*http.Response, string) {
	e.t.Helper()
	return e.do(http.MethodGet, path, header)
}

func (e *env) do(method, path string, header http.Header) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(body)
}

var handshakeRE = regexp.MustCompile(`^([A-Za-z0-9_-]{20}):(\d+):(\d+):websocket$`)

// handshake returns a fresh sid.
func (e *env) handshake() string {
	e.t.Helper()
	resp, body := e.get("/socket.io/1/?t=1", nil)
	m := handshakeRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		e.t.Fatalf("handshake: %s %q", resp.Status, body)
	}
	return m[1]
}

// dial opens the WebSocket for sid without reading anything.
func (e *env) dial(sid string) *websocket.Conn {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	u := "ws" + strings.TrimPrefix(e.ts.URL, "http") + "/socket.io/1/websocket/" + sid
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: e.ts.Client()})
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(-1)
	e.t.Cleanup(func() { c.CloseNow() })
	return c
}

// connect handshakes, dials and reads "1::".
func (e *env) connect() (*websocket.Conn, *Socket) {
	e.t.Helper()
	c := e.dial(e.handshake())
	expect(e.t, c, "1::")
	return c, e.rec.nextSocket(e.t)
}

func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("read a %v message", typ)
	}
	return string(b)
}

func expect(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	if got := read(t, c); got != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

func send(t *testing.T, c *websocket.Conn, packet string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(packet)); err != nil {
		t.Fatalf("write %q: %v", packet, err)
	}
}

// expectClosed reads until the server closes, and returns the close status.
func expectClosed(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("the server did not close the socket")
			}
			return websocket.CloseStatus(err)
		}
		if string(b) != "2::" {
			t.Fatalf("read %q while waiting for the close", b)
		}
	}
}

// roundTrip checks the socket still works: a join is acked.
func roundTrip(t *testing.T, c *websocket.Conn, id string) {
	t.Helper()
	send(t, c, "5:"+id+`+::{"name":"join","args":["ok"]}`)
	expect(t, c, "6:::"+id+`+[null,"ok"]`)
}
