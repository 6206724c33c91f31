package udpbatch

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// countingBatch counts the system calls a Conn makes and the messages in
// them; fail, when set, refuses a message that carries GSO as a device
// without checksum offload does.
type countingBatch struct {
	w        batchWriter
	calls    atomic.Int64
	messages atomic.Int64
	failGSO  bool
}

func (c *countingBatch) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	c.calls.Add(1)
	if c.failGSO && len(ms[0].OOB) > 0 {
		return 0, errors.New("sendmmsg: input/output error")
	}
	n, err := c.w.WriteBatch(ms, flags)
	c.messages.Add(int64(n))
	return n, err
}

// testConn is a Conn of a new Net on IPv4 loopback, its sends counted.
func testConn(t *testing.T) (*Net, *Conn, *countingBatch) {
	return testConnOn(t, "udp4", net.IPv4(127, 0, 0, 1))
}

func testConnOn(t *testing.T, network string, ip net.IP) (*Net, *Conn, *countingBatch) {
	t.Helper()
	n, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := n.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	c, ok := uc.(*Conn)
	if !ok {
		t.Fatalf("ListenUDP gave a %T, not a batching Conn", uc)
	}
	cb := &countingBatch{w: c.batch}
	c.batch = cb
	return n, c, cb
}

// receiver is a loopback socket that collects what it gets.
type receiver struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	done chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	return newReceiverOn(t, "udp4", net.IPv4(127, 0, 0, 1))
}

func newReceiverOn(t *testing.T, network string, ip net.IP) *receiver {
	t.Helper()
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(4 << 20)
	r := &receiver{conn: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 70000)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.got = append(r.got, bytes.Clone(buf[:n]))
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-r.done })
	return r
}

func (r *receiver) addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// wait returns the datagrams once want have come, failing after 10 s.
func (r *receiver) wait(t *testing.T, want int) [][]byte {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if r.count() >= want {
			break
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) != want {
		t.Fatalf("received %d datagrams, want %d", len(r.got), want)
	}
	return r.got
}

// datagram is the i-th test datagram of size bytes: its index, then a
// pattern, so that a reordered or truncated one shows.
func datagram(i, size int) []byte {
	b := make([]byte, size)
	for k := range b {
		b[k] = byte(i + k)
	}
	return b
}

// TestHeldSendsGoInOneBatch: what is sent while the Net is held reaches
// nobody until Flush, which sends it with one system call, byte for byte
// and in order; a GSO kernel gets one message per destination's run of
// datagrams.
func TestHeldSendsGoInOneBatch(t *testing.T) {
	n, c, cb := testConn(t)
	a, b := newReceiver(t), newReceiver(t)
	n.Hold()
	var want [][]byte
	for i := range 51 {
		size := 1200
		if i == 50 {
			size = 300 // a frame's last packet is shorter
		}
		d := datagram(i, size)
		want = append(want, d)
		if k, err := c.WriteToAddrPort(d, a.addr()); err != nil || k != len(d) {
			t.Fatalf("held send: %d, %v", k, err)
		}
	}
	for i := range 3 {
		if _, err := c.WriteTo(datagram(100+i, 200), net.UDPAddrFromAddrPort(b.addr())); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if a.count()+b.count() != 0 || cb.calls.Load() != 0 {
		t.Fatalf("held datagrams went out before Flush: %d and %d received, %d system calls", a.count(), b.count(), cb.calls.Load())
	}
	n.Flush()
	if got := cb.calls.Load(); got != 1 {
		t.Fatalf("Flush made %d system calls, want 1", got)
	}
	wantMsgs := int64(54)
	if c.gso.Load() {
		wantMsgs = 2
	}
	if got := cb.messages.Load(); got != wantMsgs {
		t.Fatalf("Flush sent %d messages, want %d (GSO %v)", got, wantMsgs, c.gso.Load())
	}
	t.Logf("54 datagrams in 1 system call, %d messages (GSO %v)", wantMsgs, c.gso.Load())
	for i, d := range a.wait(t, 51) {
		if !bytes.Equal(d, want[i]) {
			t.Fatalf("datagram %d: %d bytes, not the %d sent in that place", i, len(d), len(want[i]))
		}
	}
	for i, d := range b.wait(t, 3) {
		if !bytes.Equal(d, datagram(100+i, 200)) {
			t.Fatalf("second destination's datagram %d differs", i)
		}
	}

	// Not held: each send goes at once, without a batch.
	if _, err := c.WriteToAddrPort(datagram(7, 100), a.addr()); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 52)
	if cb.calls.Load() != 1 {
		t.Fatal("a send without a hold went through the batch")
	}
}

// TestFullQueueSendsWithoutFlush: a hold longer than maxQueue datagrams
// sends each full queue at once; nothing is lost.
func TestFullQueueSendsWithoutFlush(t *testing.T) {
	n, c, cb := testConn(t)
	a := newReceiver(t)
	n.Hold()
	const count = 2*maxQueue + 22
	for i := range count {
		if _, err := c.WriteToAddrPort(datagram(i, 500), a.addr()); err != nil {
			t.Fatal(err)
		}
	}
	if got := cb.calls.Load(); got != 2 {
		t.Fatalf("%d datagrams held made %d system calls before Flush, want 2", count, got)
	}
	n.Flush()
	got := a.wait(t, count)
	for i, d := range got {
		if !bytes.Equal(d, datagram(i, 500)) {
			t.Fatalf("datagram %d differs", i)
		}
	}
}

// TestRefusedGSOFallsBack: a socket whose first GSO send is refused (a
// network device without checksum offload) sends the same datagrams one
// by one, and no GSO any more.
func TestRefusedGSOFallsBack(t *testing.T) {
	n, c, cb := testConn(t)
	c.gso.Store(true)
	cb.failGSO = true
	a := newReceiver(t)
	for round := range 2 {
		n.Hold()
		for i := range 10 {
			c.WriteToAddrPort(datagram(i, 1000), a.addr())
		}
		n.Flush()
		a.wait(t, 10*(round+1))
		if c.gso.Load() {
			t.Fatal("GSO still on after the kernel refused it")
		}
	}
	if got := cb.messages.Load(); got != 20 {
		t.Fatalf("%d messages sent, want 20 single datagrams", got)
	}
}

// TestSendsFromOtherGoroutinesDuringHolds: pion's goroutines send on the
// sockets while the owner holds and flushes over and over; every
// datagram arrives, none waits for a Flush that does not come.
func TestSendsFromOtherGoroutinesDuringHolds(t *testing.T) {
	n, c, _ := testConn(t)
	a := newReceiver(t)
	const senders, each = 4, 300
	var wg sync.WaitGroup
	stop := make(chan struct{})
	owner := make(chan struct{})
	go func() {
		defer close(owner)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n.Hold()
			c.WriteToAddrPort(datagram(0, 64), a.addr())
			n.Flush()
		}
	}()
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				if _, err := c.WriteToAddrPort(datagram(s*each+i, 100), a.addr()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-owner
	// The owner's last Flush has run: every sender's datagram is out.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		others := 0
		for _, d := range a.got {
			if len(d) == 100 {
				others++
			}
		}
		a.mu.Unlock()
		if others == senders*each {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("datagrams sent beside the holds did not all arrive")
}

// TestClosedConnRefusesHeldSends: a closed socket drops what was queued
// and refuses more, held or not.
func TestClosedConnRefusesHeldSends(t *testing.T) {
	n, c, cb := testConn(t)
	a := newReceiver(t)
	n.Hold()
	c.WriteToAddrPort(datagram(1, 100), a.addr())
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToAddrPort(datagram(2, 100), a.addr()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("held send on a closed socket: %v, want net.ErrClosed", err)
	}
	n.Flush()
	n.Hold()
	n.Flush()
	if _, err := c.WriteToAddrPort(datagram(3, 100), a.addr()); err == nil {
		t.Fatal("send on a closed socket succeeded")
	}
	if cb.calls.Load() != 0 || a.count() != 0 {
		t.Fatal("a closed socket's queue was sent")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.conns) != 0 {
		t.Fatal(fmt.Sprint("the Net still lists a closed socket: ", len(n.conns)))
	}
}

// TestMulticastSocketsAreLeftAlone: pion's mDNS resolver (which resolves
// browsers' .local candidates) needs the operating system's own socket
// for its multicast group: the Net does not wrap a multicast socket.
func TestMulticastSocketsAreLeftAlone(t *testing.T) {
	n, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*net.UDPConn); !ok {
		t.Fatalf("multicast socket is a %T, want the *net.UDPConn x/net's PacketConn works on", c)
	}
	if err := ipv4.NewPacketConn(c).SetMulticastLoopback(true); err != nil {
		t.Fatalf("multicast option on the socket: %v", err)
	}
}

// TestOverlappingHolds: two holders (a viewer's writer and its NACK
// responder) each end their own hold; the first Flush sends what both
// queued so far, and what is sent after it waits for the second.
func TestOverlappingHolds(t *testing.T) {
	n, c, _ := testConn(t)
	a := newReceiver(t)
	n.Hold()
	n.Hold()
	c.WriteToAddrPort(datagram(1, 100), a.addr())
	n.Flush()
	a.wait(t, 1)
	c.WriteToAddrPort(datagram(2, 100), a.addr())
	time.Sleep(50 * time.Millisecond)
	if a.count() != 1 {
		t.Fatal("a datagram sent under the second hold went out before its Flush")
	}
	n.Flush()
	a.wait(t, 2)
	c.WriteToAddrPort(datagram(3, 100), a.addr())
	a.wait(t, 3) // no hold left: at once
}

// TestIPv6SendsInOneBatch: an IPv6 socket batches as an IPv4 one does
// (pion gathers both families), GSO runs included.
func TestIPv6SendsInOneBatch(t *testing.T) {
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback (::1) on this machine: %v", err)
	}
	probe.Close()
	n, c, cb := testConnOn(t, "udp6", net.IPv6loopback)
	a := newReceiverOn(t, "udp6", net.IPv6loopback)
	n.Hold()
	for i := range 20 {
		c.WriteToAddrPort(datagram(i, 1100), a.addr())
	}
	n.Flush()
	for i, d := range a.wait(t, 20) {
		if !bytes.Equal(d, datagram(i, 1100)) {
			t.Fatalf("datagram %d differs", i)
		}
	}
	if cb.calls.Load() != 1 {
		t.Fatalf("%d system calls for one batch, want 1", cb.calls.Load())
	}
	if c.gso.Load() && cb.messages.Load() != 1 {
		t.Fatalf("%d messages with GSO on, want one run", cb.messages.Load())
	}
}

// TestLingerBatchesUnheldSends: while the Net lingers, what its sockets
// are asked to send without a hold (pion's SCTP writing a burst from its
// own goroutine) waits for the burst's others and leaves in one system
// call, byte for byte and in order; turning the linger off sends what
// waits, and sends go at once again.
func TestLingerBatchesUnheldSends(t *testing.T) {
	n, c, cb := testConn(t)
	a := newReceiver(t)
	n.Linger(time.Hour) // only Linger(0) sends, below
	var want [][]byte
	done := make(chan struct{})
	go func() { // another goroutine's burst, as SCTP's write loop's
		defer close(done)
		for i := range 10 {
			d := datagram(i, 1200)
			want = append(want, d)
			if k, err := c.WriteToAddrPort(d, a.addr()); err != nil || k != len(d) {
				t.Errorf("lingering send: %d, %v", k, err)
			}
		}
	}()
	<-done
	time.Sleep(50 * time.Millisecond)
	if a.count() != 0 || cb.calls.Load() != 0 {
		t.Fatalf("lingering datagrams went out before their time: %d received, %d system calls", a.count(), cb.calls.Load())
	}
	n.Linger(0)
	if got := cb.calls.Load(); got != 1 {
		t.Fatalf("the burst took %d system calls, want 1", got)
	}
	for i, d := range a.wait(t, 10) {
		if !bytes.Equal(d, want[i]) {
			t.Fatalf("datagram %d: %d bytes, not the %d sent in that place", i, len(d), len(want[i]))
		}
	}
	if _, err := c.WriteToAddrPort(datagram(11, 100), a.addr()); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 11)
	if cb.calls.Load() != 1 {
		t.Fatal("a send after the linger ended went through the batch")
	}
}

// TestLingerSendsOnItsOwn: nobody flushes a lingering Net; its timer
// sends each burst, again and again, and a hold's Flush still sends at
// once what it held.
func TestLingerSendsOnItsOwn(t *testing.T) {
	n, c, cb := testConn(t)
	a := newReceiver(t)
	n.Linger(time.Millisecond)
	for burst := range 3 {
		for i := range 5 {
			if _, err := c.WriteToAddrPort(datagram(10*burst+i, 1000), a.addr()); err != nil {
				t.Fatal(err)
			}
		}
		got := a.wait(t, 5*(burst+1))
		if !bytes.Equal(got[len(got)-1], datagram(10*burst+4, 1000)) {
			t.Fatalf("burst %d arrived out of order", burst)
		}
	}
	// Three bursts of five went through the batches (a plain send makes
	// no batched call), one call per burst unless the machine stalled
	// the writer for a millisecond between two sends.
	calls := cb.calls.Load()
	if calls == 0 || calls > 15 {
		t.Fatalf("15 lingering datagrams took %d batched system calls", calls)
	}
	t.Logf("15 datagrams in %d system calls", calls)
	n.Hold()
	c.WriteToAddrPort(datagram(99, 100), a.addr())
	n.Flush()
	a.wait(t, 16)
}
