package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Limits of one socket's queue and of one GSO send.
const (
	// maxQueue is how many datagrams a socket queues before it sends
	// them without waiting for Flush: a 60 KB keyframe is 50 packets.
	maxQueue = 64
	// bufSize is the largest datagram queued; a larger one (none of
	// pion's: it keeps to 1,200-byte packets) is sent at once.
	bufSize = 1500
	// maxSegments and maxGSOBytes bound one GSO send: the kernel refuses
	// more than 64 segments (UDP_MAX_SEGMENTS) and a UDP datagram carries
	// at most 65,507 bytes.
	maxSegments = 64
	maxGSOBytes = 65000
)

// Net is a transport.Net whose UDP sockets send in batches while the Net
// is held. Holds may overlap (an srtp viewer's writer's and its NACK
// responder's), each ended by one Flush; the sockets themselves are used
// by pion's goroutines as any others.
type Net struct {
	transport.Net
	held atomic.Int32 // holds not yet flushed

	// linger, when above zero, is how long a send made without a hold
	// may wait for others (Linger); armed: the flush timer is running.
	linger atomic.Int64
	armed  atomic.Bool
	timer  *time.Timer

	mu    sync.Mutex // guards conns
	conns []*Conn

	own   Counters
	total *Counters // the device's, or nil
}

// Counters count datagrams sent in batches and the system calls that sent
// them: their ratio is what batching saved.
type Counters struct{ datagrams, calls atomic.Uint64 }

// Load reads the counters.
func (c *Counters) Load() (datagrams, syscalls uint64) { return c.datagrams.Load(), c.calls.Load() }

func (c *Counters) add(datagrams, calls uint64) {
	c.datagrams.Add(datagrams)
	c.calls.Add(calls)
}

// Stats counts the datagrams the Net's sockets sent from a queue and the
// system calls that took them.
func (n *Net) Stats() (datagrams, syscalls uint64) { return n.own.Load() }

// New wraps base (nil: the operating system's network). A non-nil total
// counts the Net's batches too (a device's, over all its PeerConnections).
func New(base transport.Net, total *Counters) (*Net, error) {
	if base == nil {
		var err error
		if base, err = stdnet.NewNet(); err != nil {
			return nil, err
		}
	}
	n := &Net{Net: base, total: total}
	n.timer = time.AfterFunc(time.Hour, n.lingerFlush)
	n.timer.Stop()
	return n, nil
}

// Linger makes the Net's sockets queue what they are asked to send while
// no hold is taken, for up to d, so that a burst another goroutine writes
// packet by packet goes out in a batch all the same: pion's SCTP sends a
// data channel message from its association's own goroutine, one DTLS
// record and one socket write per packet, with nothing that marks the end
// of a burst. d bounds the latency this adds to every packet, the first
// of a burst; a queue that fills goes out at once. Zero turns it off and
// sends what waits.
func (n *Net) Linger(d time.Duration) {
	n.linger.Store(int64(d))
	if d <= 0 {
		n.flushAll()
	}
}

// queueing tells whether a send now should wait in the queue.
func (n *Net) queueing() bool { return n.held.Load() > 0 || n.linger.Load() > 0 }

// queued is told by a socket that queued a datagram: without a hold, the
// linger timer must be running for it.
func (n *Net) queued() {
	if n.held.Load() > 0 {
		return
	}
	d := n.linger.Load()
	if d <= 0 {
		// Linger was turned off since the datagram checked.
		n.flushAll()
		return
	}
	if n.armed.CompareAndSwap(false, true) {
		n.timer.Reset(time.Duration(d))
	}
}

// lingerFlush sends what lingered. It disarms first: a datagram queued
// after that arms the timer again, one queued before is in the queues the
// flush takes.
func (n *Net) lingerFlush() {
	n.armed.Store(false)
	n.flushAll()
}

// Hold queues what the Net's sockets send from now until Flush.
func (n *Net) Hold() { n.held.Add(1) }

// Flush ends one hold and sends what was queued: one system call per
// socket for up to maxQueue datagrams. What is sent under another hold
// still open goes with that hold's Flush.
func (n *Net) Flush() {
	n.held.Add(-1)
	n.flushAll()
}

// flushAll sends what the Net's sockets queued.
func (n *Net) flushAll() {
	// A PeerConnection has a few sockets (one per interface and family,
	// a server reflexive one, a TURN client's): a copy on the stack.
	var buf [8]*Conn
	n.mu.Lock()
	conns := append(buf[:0], n.conns...)
	n.mu.Unlock()
	// A send that saw a hold before the last one ended has queued its
	// datagram under the socket's lock before flush takes that lock, or
	// sees no hold and sends at once: nothing stays queued.
	for _, c := range conns {
		c.flush()
	}
}

// ListenUDP opens a socket of the Net. A multicast one (pion's mDNS
// resolver, which takes it for an x/net ipv4/ipv6 PacketConn that only
// works on the operating system's own socket type) is left as it is: it
// carries no media.
func (n *Net) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil || laddr != nil && laddr.IP.IsMulticast() {
		return c, err
	}
	return n.wrap(c), nil
}

// ListenPacket opens a packet socket of the Net: a UDP one (pion's TURN
// client's) batches as ListenUDP's do.
func (n *Net) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	if uc, ok := c.(*net.UDPConn); ok {
		return n.wrap(uc), nil
	}
	return c, nil
}

// wrap makes a Conn of a real UDP socket; anything else (a virtual
// network's) passes through unbatched. pion's ICE reads the ECN bits only
// of a bare *net.UDPConn: behind a Conn it does not, which nothing of the
// device uses (no congestion control feedback is sent).
func (n *Net) wrap(c transport.UDPConn) transport.UDPConn {
	udp, ok := c.(*net.UDPConn)
	if !ok {
		return c
	}
	bc := &Conn{UDPConn: udp, udp: udp, n: n}
	if la, ok := udp.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil && !la.IP.IsUnspecified() {
		bc.batch = ipv6.NewPacketConn(udp)
	} else {
		bc.batch = ipv4.NewPacketConn(udp)
	}
	bc.gso.Store(gsoSupported(udp))
	n.mu.Lock()
	n.conns = append(n.conns, bc)
	n.mu.Unlock()
	return bc
}

func (n *Net) remove(c *Conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, x := range n.conns {
		if x == c {
			n.conns = append(n.conns[:i], n.conns[i+1:]...)
			return
		}
	}
}

// batchWriter is ipv4's or ipv6's PacketConn: sendmmsg on Linux.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// Conn is one UDP socket of a Net.
type Conn struct {
	transport.UDPConn
	udp   *net.UDPConn
	batch batchWriter
	n     *Net
	gso   atomic.Bool // the kernel takes UDP_SEGMENT on this socket

	mu     sync.Mutex // guards below; never held across a send
	q      *queue     // being filled; nil when empty
	spare  *queue
	closed bool
}

// queue is a socket's queued datagrams and the scratch space to send
// them, owned by whoever took it from the Conn.
type queue struct {
	pkts  []pkt
	msgs  []ipv4.Message
	iov   [][]byte
	oob   []byte
	addrs [4]cachedAddr // the last destinations, so that no address is allocated per send
	next  int
}

type pkt struct {
	b  *[bufSize]byte
	n  int
	ap netip.AddrPort
}

type cachedAddr struct {
	ap   netip.AddrPort
	addr *net.UDPAddr
}

var bufs = sync.Pool{New: func() any { return new([bufSize]byte) }}

// WriteTo sends b to addr, or queues it while the Net is held or lingers.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok && c.n.queueing() {
		if n, queued, err := c.enqueue(b, ua.AddrPort()); queued {
			return n, err
		}
	}
	return c.udp.WriteTo(b, addr)
}

// WriteToUDP is WriteTo.
func (c *Conn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) { return c.WriteTo(b, addr) }

// WriteToAddrPort sends b to ap, or queues it while the Net is held or
// lingers (pion's ICE candidates send with it: ice.AddrPortReaderWriter).
func (c *Conn) WriteToAddrPort(b []byte, ap netip.AddrPort) (int, error) {
	if c.n.queueing() {
		if n, queued, err := c.enqueue(b, ap); queued {
			return n, err
		}
	}
	return c.udp.WriteToUDPAddrPort(b, ap)
}

// ReadFromAddrPort reads a datagram (ice.AddrPortReaderWriter).
func (c *Conn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.udp.ReadFromUDPAddrPort(b)
}

// enqueue queues a copy of b for ap if the Net is still held or
// lingering; queued false: send it now.
func (c *Conn) enqueue(b []byte, ap netip.AddrPort) (n int, queued bool, err error) {
	if len(b) > bufSize || !ap.IsValid() {
		return 0, false, nil
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, true, net.ErrClosed
	}
	if !c.n.queueing() {
		c.mu.Unlock()
		return 0, false, nil
	}
	q := c.q
	if q == nil {
		if q, c.spare = c.spare, nil; q == nil {
			q = &queue{pkts: make([]pkt, 0, maxQueue)}
		}
		c.q = q
	}
	buf := bufs.Get().(*[bufSize]byte)
	copy(buf[:], b)
	q.pkts = append(q.pkts, pkt{b: buf, n: len(b), ap: ap})
	full := len(q.pkts) == maxQueue
	if full {
		c.q = nil
	}
	c.mu.Unlock()
	if full {
		c.send(q)
	} else {
		c.n.queued()
	}
	return len(b), true, nil
}

// flush sends what is queued.
func (c *Conn) flush() {
	c.mu.Lock()
	q := c.q
	c.q = nil
	c.mu.Unlock()
	if q != nil {
		c.send(q)
	}
}

// send writes q's datagrams with as few system calls as the kernel allows
// and gives q back. Datagrams that the kernel refuses are lost, as a
// plain send's would be: the caller was told they went.
func (c *Conn) send(q *queue) {
	gso := c.gso.Load()
	q.build(gso)
	var calls uint64
	for k, tries := 0, 0; k < len(q.msgs) && tries <= 2*len(q.msgs); tries++ {
		n, err := c.batch.WriteBatch(q.msgs[k:], 0)
		calls++
		k += n
		if err == nil || k >= len(q.msgs) {
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			break
		}
		if len(q.msgs[k].OOB) > 0 && c.gso.CompareAndSwap(true, false) {
			// The first refused GSO send (a device without checksum
			// offload, a path MTU below the segment): this socket
			// sends datagrams one by one from now on.
			q.rebuildPlain(k)
			continue
		}
		k++ // this datagram is lost
	}
	c.n.own.add(uint64(len(q.pkts)), calls)
	if c.n.total != nil {
		c.n.total.add(uint64(len(q.pkts)), calls)
	}
	for i := range q.pkts {
		bufs.Put(q.pkts[i].b)
		q.pkts[i] = pkt{}
	}
	q.pkts = q.pkts[:0]
	clear(q.msgs)
	q.msgs = q.msgs[:0]
	c.mu.Lock()
	if c.spare == nil && !c.closed {
		c.spare = q
	}
	c.mu.Unlock()
}

// build makes q's messages: a run of datagrams to one address, all of one
// size but the last, is one GSO message when gso is on.
func (q *queue) build(gso bool) {
	if cap(q.iov) < len(q.pkts) {
		q.iov = make([][]byte, 0, maxQueue)
		q.oob = make([]byte, 0, maxQueue*gsoSpace)
	}
	q.iov, q.oob, q.msgs = q.iov[:0], q.oob[:0], q.msgs[:0]
	for i := 0; i < len(q.pkts); {
		j := i + 1
		if size := q.pkts[i].n; gso {
			for j < len(q.pkts) && j-i < maxSegments && (j-i+1)*size <= maxGSOBytes &&
				q.pkts[j].ap == q.pkts[i].ap && q.pkts[j].n <= size {
				j++
				if q.pkts[j-1].n < size {
					break // a shorter datagram ends a GSO run
				}
			}
		}
		q.appendMsg(i, j)
		i = j
	}
}

// appendMsg adds the message of datagrams i to j (excluded), one address.
func (q *queue) appendMsg(i, j int) {
	start := len(q.iov)
	for k := i; k < j; k++ {
		q.iov = append(q.iov, q.pkts[k].b[:q.pkts[k].n])
	}
	m := ipv4.Message{Buffers: q.iov[start:len(q.iov):len(q.iov)], Addr: q.addr(q.pkts[i].ap)}
	if j-i > 1 {
		o := len(q.oob)
		q.oob = appendGSO(q.oob, q.pkts[i].n)
		m.OOB = q.oob[o:len(q.oob):len(q.oob)]
	}
	q.msgs = append(q.msgs, m)
}

// rebuildPlain turns messages from k on into one message per datagram,
// without GSO.
func (q *queue) rebuildPlain(k int) {
	first := 0
	for _, m := range q.msgs[:k] {
		first += len(m.Buffers)
	}
	q.msgs = q.msgs[:k]
	q.iov = q.iov[:first]
	for i := first; i < len(q.pkts); i++ {
		q.appendMsg(i, i+1)
	}
}

// addr is ap as the *net.UDPAddr a message wants, from a small cache.
func (q *queue) addr(ap netip.AddrPort) *net.UDPAddr {
	for _, a := range q.addrs {
		if a.addr != nil && a.ap == ap {
			return a.addr
		}
	}
	a := net.UDPAddrFromAddrPort(ap)
	q.addrs[q.next] = cachedAddr{ap, a}
	q.next = (q.next + 1) % len(q.addrs)
	return a
}

// Close closes the socket; what is queued is dropped.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closed = true
	q := c.q
	c.q, c.spare = nil, nil
	c.mu.Unlock()
	if q != nil {
		for _, p := range q.pkts {
			bufs.Put(p.b)
		}
	}
	c.n.remove(c)
	return c.udp.Close()
}
