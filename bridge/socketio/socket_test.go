package socketio

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestConnectPacketFirst(t *testing.T) {
	rec := newRecorder()
	rec.onConnect = func(s *Socket) {
		if err := s.Emit("stunservers", []map[string]string{{"urls": "stun:a:3478"}}); err != nil {
			t.Errorf("Emit in Connect: %v", err)
		}
	}
	e := newEnvWith(t, quietConfig(), rec)
	sid := e.handshake()
	c := e.dial(sid)
	expect(t, c, "1::")
	expect(t, c, `5:::{"name":"stunservers","args":[[{"urls":"stun:a:3478"}]]}`)
	s := rec.nextSocket(t)
	if s.ID() != sid || s.RemoteAddr() == "" {
		t.Errorf("socket ID %q RemoteAddr %q, want %q and an address", s.ID(), s.RemoteAddr(), sid)
	}
	if n := e.srv.Len(); n != 1 {
		t.Errorf("Len() = %d, want 1", n)
	}
}

func TestEventAck(t *testing.T) {
	e := newEnv(t, quietConfig())
	c, _ := e.connect()

	send(t, c, `5:1+::{"name":"join","args":["x",{"token":"t"}]}`)
	expect(t, c, `6:::1+[null,"x",{"token":"t"}]`)
	if ev := e.rec.nextEvent(t); ev.name != "join" || ev.args != `["x",{"token":"t"}]` || !ev.hasAck {
		t.Errorf("event %+v", ev)
	}
	if err := <-e.rec.secondAck; !errors.Is(err, ErrAckUsed) {
		t.Errorf("second ack: %v, want ErrAckUsed", err)
	}

	// An id without '+' is acked by the transport; the handler gets no AckFunc.
	send(t, c, `5:2::{"name":"join","args":["y"]}`)
	expect(t, c, "6:::2")
	if ev := e.rec.nextEvent(t); ev.hasAck {
		t.Errorf("event %+v has an AckFunc, want none", ev)
	}

	send(t, c, `5:::{"name":"echo","args":[1,"two"]}`)
	expect(t, c, `5:::{"name":"echo","args":[1,"two"]}`)
	if ev := e.rec.nextEvent(t); ev.name != "echo" || ev.hasAck {
		t.Errorf("event %+v", ev)
	}
}

func TestMessagePackets(t *testing.T) {
	e := newEnv(t, quietConfig())
	c, _ := e.connect()
	send(t, c, "3:::hello: world")
	send(t, c, `4:::{"type":"offer"}`)
	send(t, c, "3:7::x")
	expect(t, c, "6:::7")
	for _, want := range []string{`["hello: world"]`, `[{"type":"offer"}]`, `["x"]`} {
		if ev := e.rec.nextEvent(t); ev.name != "message" || ev.args != want {
			t.Errorf("event %+v, want message %s", ev, want)
		}
	}
}

func TestHandlerError(t *testing.T) {
	e := newEnv(t, quietConfig())
	c, _ := e.connect()
	send(t, c, `5:::{"name":"fail"}`)
	// '+' would make the 0.9 client read "0" as advice "reconnect".
	expect(t, c, "7:::no room＋0 here")
	roundTrip(t, c, "3")
}

func TestMalformedPackets(t *testing.T) {
	e := newEnv(t, quietConfig())
	c, _ := e.connect()
	bad := []string{
		"", "x", "9::", "5", "5:x::", "5:+::", `5:::{bad`, `5:::{"name":""}`, `5:::{"name":5}`,
		`5:::{"name":"` + strings.Repeat("a", 200) + `"}`, `5:::{"name":"a","args":{}}`, "4:::{",
		"\ufffd9\ufffd2::", "\ufffdx\ufffd2::",
	}
	for _, p := range bad {
		send(t, c, p)
		got := read(t, c)
		if !strings.HasPrefix(got, "7:::malformed packet") {
			t.Errorf("after %q got %q, want an error packet", p, got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, []byte("5:::{}")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); !strings.Contains(got, "binary") {
		t.Errorf("after a binary message got %q", got)
	}
	roundTrip(t, c, "1")
	send(t, c, `5:::{"name":"fail"}`) // handler errors are not malformed packets
	read(t, c)
	roundTrip(t, c, "2")
}

func TestTooManyMalformedPackets(t *testing.T) {
	e := newEnv(t, quietConfig())
	c, s := e.connect()
	for range maxMalformed {
		send(t, c, "nonsense")
	}
	for range maxMalformed - 1 {
		if got := read(t, c); !strings.HasPrefix(got, "7:::malformed") {
			t.Fatalf("got %q, want an error packet", got)
		}
	}
	expect(t, c, "7:::too many malformed packets")
	expect(t, c, "0::")
	if st := expectClosed(t, c); st != websocket.StatusPolicyViolation {
		t.Errorf("close status %d, want %d", st, websocket.StatusPolicyViolation)
	}
	if d := e.rec.nextDisconnect(t); d.sid != s.ID() || !errors.Is(d.err, ErrMalformed) {
		t.Errorf("disconnect %+v, want ErrMalformed", d)
	}
}

func TestPayloadFraming(t *testing.T) {
	e := newEnv(t, quietConfig())
	c, _ := e.connect()
	send(t, c, string(encodePayload([][]byte{
		[]byte("2::"),
		[]byte(`5:1+::{"name":"join","args":["é😀"]}`),
		[]byte(`5:2+::{"name":"join","args":["b"]}`),
	})))
	expect(t, c, `6:::1+[null,"é😀"]`)
	expect(t, c, `6:::2+[null,"b"]`)
}

func TestEndpoints(t *testing.T) {
	e := newEnv(t, quietConfig())
	c, _ := e.connect()
	send(t, c, "1::/chat")
	expect(t, c, "1::/chat")
	send(t, c, `5:4+:/chat:{"name":"join"}`)
	expect(t, c, "7::/chat:no handlers on this endpoint")
	send(t, c, "0::/chat") // leaves the endpoint, not the socket
	send(t, c, "8::")
	send(t, c, `6:::9+[]`)
	send(t, c, "7:::1+0")
	roundTrip(t, c, "5")
}

func TestHeartbeat(t *testing.T) {
	e := newEnv(t, Config{HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 400 * time.Millisecond})
	c, s := e.connect()

	// Answering heartbeats keeps the socket open well past the timeout.
	beats := 0
	for end := time.Now().Add(1200 * time.Millisecond); time.Now().Before(end); {
		expect(t, c, "2::")
		send(t, c, "2::")
		beats++
	}
	// At a 50 ms interval 24 are due; a loaded machine may delay some,
	// but a server that stopped beating would give 1 or 2.
	if beats < 5 {
		t.Errorf("%d heartbeats in 1.2 s at a 50 ms interval", beats)
	}
	if n := e.srv.Len(); n != 1 {
		t.Fatalf("Len() = %d while answering heartbeats", n)
	}

	// Silence drops it, though the client still reads.
	start := time.Now()
	expectClosed(t, c)
	if d := e.rec.nextDisconnect(t); d.sid != s.ID() || !errors.Is(d.err, ErrIdleTimeout) {
		t.Errorf("disconnect %s %v, want ErrIdleTimeout", d.sid, d.err)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 10*time.Second {
		t.Errorf("dropped after %v of silence, want about 400 ms", el)
	}
	if err := s.Emit("late"); !errors.Is(err, ErrClosed) {
		t.Errorf("Emit after Disconnect: %v, want ErrClosed", err)
	}
}

func TestOversizedFrame(t *testing.T) {
	cfg := quietConfig()
	cfg.MaxFrame = 1024
	e := newEnv(t, cfg)
	big, bigSock := e.connect()
	small, _ := e.connect()

	send(t, big, `5:::{"name":"join","args":["`+strings.Repeat("x", 2000)+`"]}`)
	if st := expectClosed(t, big); st != websocket.StatusMessageTooBig {
		t.Errorf("close status %d, want %d", st, websocket.StatusMessageTooBig)
	}
	if d := e.rec.nextDisconnect(t); d.sid != bigSock.ID() || !errors.Is(d.err, ErrFrameTooBig) {
		t.Errorf("disconnect %+v, want ErrFrameTooBig", d)
	}
	roundTrip(t, small, "1")
	send(t, small, `5:::{"name":"join","args":["`+strings.Repeat("x", 900)+`"]}`) // under the limit
	roundTrip(t, small, "2")
	if n := e.srv.Len(); n != 1 {
		t.Errorf("Len() = %d, want 1", n)
	}
}

func TestUnknownSID(t *testing.T) {
	e := newEnv(t, quietConfig())
	c := e.dial("AAAAAAAAAAAAAAAAAAAA")
	expect(t, c, "7:::1+0")
	if st := expectClosed(t, c); st != websocket.StatusPolicyViolation {
		t.Errorf("close status %d, want %d", st, websocket.StatusPolicyViolation)
	}
}

func TestSIDReuse(t *testing.T) {
	e := newEnv(t, quietConfig())
	sid := e.handshake()
	first := e.dial(sid)
	expect(t, first, "1::")
	e.rec.nextSocket(t)

	second := e.dial(sid)
	expect(t, second, "7:::1+0")
	expectClosed(t, second)
	roundTrip(t, first, "1") // the first is unharmed

	send(t, first, "0::")
	expectClosed(t, first)
	e.rec.nextDisconnect(t)
	third := e.dial(sid)
	expect(t, third, "7:::1+0")
}

func TestHandshakeExpiry(t *testing.T) {
	cfg := quietConfig()
	cfg.HandshakeTimeout = 100 * time.Millisecond
	e := newEnv(t, cfg)
	sid := e.handshake()
	time.Sleep(250 * time.Millisecond)
	c := e.dial(sid)
	expect(t, c, "7:::1+0")
}

func TestClientDisconnect(t *testing.T) {
	e := newEnv(t, quietConfig())
	c, s := e.connect()
	send(t, c, "0::")
	if st := expectClosed(t, c); st != websocket.StatusNormalClosure {
		t.Errorf("close status %d, want %d", st, websocket.StatusNormalClosure)
	}
	if d := e.rec.nextDisconnect(t); d.sid != s.ID() || !errors.Is(d.err, ErrClientDisconnect) {
		t.Errorf("disconnect %+v, want ErrClientDisconnect", d)
	}
	if n := e.srv.Len(); n != 0 {
		t.Errorf("Len() = %d, want 0", n)
	}

	// Closing the WebSocket without "0::" is a disconnect too.
	c, s = e.connect()
	c.Close(websocket.StatusGoingAway, "page closed")
	if d := e.rec.nextDisconnect(t); d.sid != s.ID() || !errors.Is(d.err, ErrClientDisconnect) {
		t.Errorf("disconnect %+v, want ErrClientDisconnect", d)
	}
}

func TestSocketClose(t *testing.T) {
	e := newEnv(t, quietConfig())
	c, s := e.connect()
	send(t, c, `5:::{"name":"close"}`)
	expect(t, c, `5:::{"name":"bye","args":[]}`) // queued before Close: still delivered
	expect(t, c, "0::")
	if st := expectClosed(t, c); st != websocket.StatusNormalClosure {
		t.Errorf("close status %d, want %d", st, websocket.StatusNormalClosure)
	}
	if d := e.rec.nextDisconnect(t); d.sid != s.ID() || !errors.Is(d.err, ErrClosed) {
		t.Errorf("disconnect %+v, want ErrClosed", d)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSlowClient(t *testing.T) {
	cfg := quietConfig()
	cfg.SendQueue = 8
	e := newEnv(t, cfg)
	_, slowSock := e.connect() // never reads again
	fast, _ := e.connect()

	blob := strings.Repeat("x", 64<<10)
	var err error
	start := time.Now()
	sent := 0
	for ; sent < 10000; sent++ {
		// Were Emit to block on the client, which never reads, this loop
		// would never end and the test would time out: no clock needed,
		// which a loaded machine would make flaky.
		if err = slowSock.Emit("blob", blob); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrSlowClient) {
		t.Fatalf("after %d emits: %v, want ErrSlowClient", sent, err)
	}
	t.Logf("slow client dropped after %d × 64 KiB in %v", sent, time.Since(start))
	if d := e.rec.nextDisconnect(t); d.sid != slowSock.ID() || !errors.Is(d.err, ErrSlowClient) {
		t.Errorf("disconnect %+v, want ErrSlowClient", d)
	}
	if err := slowSock.Emit("more"); !errors.Is(err, ErrClosed) {
		t.Errorf("Emit after the drop: %v, want ErrClosed", err)
	}
	roundTrip(t, fast, "1")
}

func TestServerClose(t *testing.T) {
	rec := newRecorder()
	var slowDisconnects atomic.Int32
	rec.onDisconnect = func(s *Socket, err error) {
		time.Sleep(50 * time.Millisecond) // Close must wait for this
		slowDisconnects.Add(1)
	}
	e := newEnvWith(t, quietConfig(), rec)
	const n = 3
	var conns []*websocket.Conn
	var socks []*Socket
	for range n {
		c, s := e.connect()
		conns = append(conns, c)
		socks = append(socks, s)
	}
	if e.srv.Len() != n {
		t.Fatalf("Len() = %d, want %d", e.srv.Len(), n)
	}

	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			expect(t, c, "0::")
			if st := expectClosed(t, c); st != websocket.StatusGoingAway {
				t.Errorf("close status %d, want %d", st, websocket.StatusGoingAway)
			}
		})
	}
	start := time.Now()
	if err := e.srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Generous: this checks that Close is bounded, not how fast it is.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close took %v", d)
	}
	if got := slowDisconnects.Load(); got != n {
		t.Errorf("Close returned after %d of %d Disconnect calls", got, n)
	}
	wg.Wait()
	for range n {
		if d := rec.nextDisconnect(t); !errors.Is(d.err, ErrServerClosed) {
			t.Errorf("disconnect %+v, want ErrServerClosed", d)
		}
	}
	if e.srv.Len() != 0 {
		t.Errorf("Len() = %d after Close", e.srv.Len())
	}
	for _, s := range socks {
		if err := s.Emit("x"); !errors.Is(err, ErrClosed) {
			t.Errorf("Emit after Close: %v", err)
		}
	}
	if err := e.srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestServerCloseUnresponsive: a client that neither reads nor answers the
// close handshake cannot hold Close for long.
func TestServerCloseUnresponsive(t *testing.T) {
	e := newEnv(t, quietConfig())
	e.srv.closeGrace = 300 * time.Millisecond
	e.connect()
	start := time.Now()
	e.srv.Close()
	if d := time.Since(start); d > e.srv.closeGrace+8*time.Second {
		t.Errorf("Close took %v", d)
	}
	if d := e.rec.nextDisconnect(t); !errors.Is(d.err, ErrServerClosed) {
		t.Errorf("disconnect %+v, want ErrServerClosed", d)
	}
}
