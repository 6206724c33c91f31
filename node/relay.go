package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"golang.org/x/time/rate"

	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/relay"
	"github.com/ersmesh/ersmesh/signalwire"
	"github.com/ersmesh/ersmesh/trust"
)

// Relaying (docs/relay.md): beyond its uplink, the device has viewers of
// an fmp4 stream serve further viewers, in a tree it shapes. It signs
// every unit of each stream once (relaySigner), counts its direct
// sessions against --max-viewers and --uplink-budget, assigns parents and
// routes the viewers' link negotiation between their sessions.

// Defaults of RelayConfig.
const (
	DefaultRelayDepth  = 4
	DefaultRelayFanout = 3
)

// Timings of the tree.
const (
	// relayStall is how long a child waits for a unit before it reports
	// its parent stalled; a report while the device's own stream has been
	// as silent is the camera's doing, not the parent's.
	relayStall = 600 * time.Millisecond
	// relayRest is how long a parent that failed a child gets no new
	// children (unless no other parent has room); relayStallRest, one that
	// stalled (a busy machine stalls now and then).
	relayRest      = 5 * time.Second
	relayStallRest = 2 * time.Second
	// maxReportsPerMinute bounds one child's reports: beyond, its session
	// ends (a viewer could otherwise have honest relays banned at will).
	maxReportsPerMinute = 10
	// budgetHeadroom is added to a stream's measured rate per direct
	// viewer: bursts (a new viewer's GOP) and framing.
	budgetHeadroom = 1.2
	// pauseMemory is how long after the stream's own pause a child's
	// stall report is taken for the pause's echo: the child's 600 ms of
	// silence and the report's way to the device.
	pauseMemory = time.Second
	// rateWindow is how far back a stream's rate is measured.
	rateWindow = 5 * time.Second
)

// RelayConfig bounds the device's direct viewers and shapes the relay tree.
type RelayConfig struct {
	// MaxViewers caps the sessions the device serves itself; 0: no cap.
	MaxViewers int
	// UplinkBudget is the bit rate the device may send to its direct
	// viewers, each counted at its stream's measured rate; 0: none.
	UplinkBudget float64
	// Depth bounds a viewer's depth (direct viewers have depth 1);
	// default DefaultRelayDepth.
	Depth int
	// Fanout bounds the children of one relay; default DefaultRelayFanout.
	Fanout int
}

func (c RelayConfig) withDefaults() RelayConfig {
	if c.Depth <= 0 {
		c.Depth = DefaultRelayDepth
	}
	if c.Fanout <= 0 {
		c.Fanout = DefaultRelayFanout
	}
	return c
}

// relayStream is what the device knows of one stream for relaying: its
// signer and how fast and how recently it produced units.
type relayStream struct {
	name   string
	st     *media.Stream
	signer *relay.Signer
	sign   media.UnitSigner
	// wanted counts the signed viewers (each until signLinger after it
	// left): units are signed only while there is one (the stream still
	// calls sign for every unit, for the meter).
	// activate orders the first viewer's SetSigner before any other
	// signed viewer subscribes; it is taken before the stream's lock,
	// never inside it.
	activate sync.Mutex
	wanted   atomic.Int64
	seq      atomic.Uint64 // the last unit's seq
	last     atomic.Int64  // unix ns of the last unit
	// pause is when the stream itself last resumed after a pause of half
	// relayStall or more (unix ns): a busy machine or a camera hiccup,
	// which children see as their parent stalling.
	pause atomic.Int64
	meter rateMeter
}

// newRelayStream signs st's units with key from now on.
func newRelayStream(key crypto.PrivKey, name string, st *media.Stream, log func(error)) *relayStream {
	var epoch relay.Epoch
	rand.Read(epoch[:])
	rs := &relayStream{name: name, st: st, signer: relay.NewSigner(key, name, epoch)}
	rs.sign = func(key, moov bool, seq, moovSeq uint64, covered []byte) []byte {
		now := time.Now().UnixNano()
		if prev := rs.last.Swap(now); prev != 0 && now-prev >= int64(relayStall/2) {
			rs.pause.Store(now)
		}
		rs.seq.Store(seq)
		if !moov {
			rs.meter.add(len(covered) + relay.SigRecordSize)
		}
		if rs.wanted.Load() <= 0 {
			return nil
		}
		var flags byte
		if moov {
			flags = relay.FlagMoov
		} else if key {
			flags = relay.FlagKey
		}
		rec, err := rs.signer.Sign(flags, seq, moovSeq, covered)
		if err != nil {
			log(err)
			return nil
		}
		return rec
	}
	st.SetSigner(rs.sign)
	return rs
}

// signLinger is how long the stream goes on signing after its last signed
// viewer left: a viewer that comes back meanwhile (a reload, another tab)
// finds the cached GOP signed and starts on it, instead of waiting for the
// next keyframe. Signing a frame costs one Ed25519 signature.
const signLinger = 5 * time.Second

// want makes the stream sign from now on, until signLinger after release:
// the first signed viewer has the stream sign its current MOOV (SetSigner)
// unless it is signed already, and starts with it.
func (rs *relayStream) want() (release func()) {
	rs.activate.Lock()
	if rs.wanted.Add(1) == 1 {
		rs.st.SetSigner(rs.sign)
	}
	rs.activate.Unlock()
	var once sync.Once
	return func() { once.Do(func() { time.AfterFunc(signLinger, func() { rs.wanted.Add(-1) }) }) }
}

// signing is attachFMP4's hook: a signed viewer of stream arrived.
func (t *relayTree) signing(stream string) (release func()) {
	rs := t.streams[stream]
	if rs == nil {
		return func() {}
	}
	return rs.want()
}

// paused reports whether the stream itself is silent, or was lately: a
// child's stall is then the source's, not its parent's.
func (rs *relayStream) paused() bool {
	now := time.Now().UnixNano()
	return now-rs.last.Load() >= int64(relayStall/2) || now-rs.pause.Load() < int64(pauseMemory)
}

// rateMeter measures a byte rate over rateWindow in one-second buckets.
type rateMeter struct {
	mu      sync.Mutex
	buckets [5]int64
	sec     int64 // the unix second of the newest bucket
	first   int64 // unix ns of the first byte counted
	// peak is the highest rate measured within peakMemory, and when: a
	// stream measured while its source lagged (a busy machine, a camera
	// catching up) must not let in viewers its full rate cannot serve.
	peak   float64
	peakAt int64
}

// peakMemory is how long a stream's peak rate counts for the budget.
const peakMemory = time.Minute

// budgetRate is the rate the uplink budget counts a viewer of the stream
// at: the current one, or the peak of the last minute if higher.
func (m *rateMeter) budgetRate() float64 {
	r := m.bitsPerSecond()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now().UnixNano()
	if r >= m.peak || now-m.peakAt > int64(peakMemory) {
		m.peak, m.peakAt = r, now
	}
	return m.peak
}

func (m *rateMeter) add(n int) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roll(now.Unix())
	if m.first == 0 {
		m.first = now.UnixNano()
	}
	m.buckets[m.sec%int64(len(m.buckets))] += int64(n)
}

func (m *rateMeter) roll(sec int64) {
	for m.sec < sec {
		m.sec++
		m.buckets[m.sec%int64(len(m.buckets))] = 0
		if sec-m.sec > int64(len(m.buckets)) {
			m.sec = sec - int64(len(m.buckets))
		}
	}
}

// bitsPerSecond is the rate over the window's complete seconds, or since
// the first byte when that is shorter (at least a second).
func (m *rateMeter) bitsPerSecond() float64 {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.first == 0 {
		return 0
	}
	m.roll(now.Unix())
	n := int64(len(m.buckets))
	var total int64
	for i := int64(1); i < n; i++ {
		total += m.buckets[(m.sec-i)%n]
	}
	// The window's complete seconds, those before the first byte excepted
	// (the first byte's own second counts from that byte).
	from := max(m.first, time.Unix(m.sec-(n-1), 0).UnixNano())
	span := time.Duration(time.Unix(m.sec, 0).UnixNano() - from)
	if span < time.Second {
		// Not a whole second yet: the rate so far.
		span = max(time.Duration(now.UnixNano()-m.first), time.Second)
		total = m.buckets[m.sec%n]
		if m.sec > time.Unix(0, m.first).Unix() {
			total += m.buckets[(m.sec-1)%n]
		}
	}
	return float64(total) * 8 / span.Seconds()
}

// member is a relay-capable session in the tree: a direct viewer (depth
// 1) or a relayed one.
type member struct {
	s         *session
	stream    string
	fp        string // its certificate's fingerprint, from its join
	label     string // for stats: never its session id
	depth     int
	max       int // children it takes (relayReady)
	children  map[string]*relayLink
	parent    *relayLink // nil for direct viewers
	banned    bool
	restUntil time.Time
	reports   []time.Time
}

// relayLink is one parent ⇄ child link.
type relayLink struct {
	id            string
	parent, child *member
}

// relayTree is the device's relay state. mu guards every map and member
// and is never held across a send: decisions collect their messages in an
// outbox that is sent after unlocking.
type relayTree struct {
	cfg     RelayConfig
	dev     *Device
	streams map[string]*relayStream // read-only after New

	mu      sync.Mutex
	direct  map[*session]string // direct sessions and their stream
	members map[*session]*member
	links   map[string]*relayLink
	labels  int
}

func newRelayTree(d *Device) *relayTree {
	t := &relayTree{cfg: d.cfg.Relay.withDefaults(), dev: d, streams: map[string]*relayStream{},
		direct: map[*session]string{}, members: map[*session]*member{}, links: map[string]*relayLink{}}
	for name, st := range d.cfg.Streams {
		t.streams[name] = newRelayStream(d.key, name, st, func(err error) {
			d.log.Error("cannot sign the stream for relaying", "stream", name, "err", err)
		})
	}
	return t
}

// outbox holds messages decided under the tree's lock.
type outbox []struct {
	s *session
	m *signalwire.Message
}

func (o *outbox) add(s *session, typ string, payload any) {
	b, err := json.Marshal(payload)
	if err != nil {
		return
	}
	*o = append(*o, struct {
		s *session
		m *signalwire.Message
	}{s, &signalwire.Message{Kind: signalwire.KindSignal, Type: typ, SID: s.sid, Payload: b}})
}

func (o *outbox) end(s *session, reason, code string) {
	*o = append(*o, struct {
		s *session
		m *signalwire.Message
	}{s, &signalwire.Message{Kind: signalwire.KindLeave, Reason: reason, Code: code}})
}

// flush sends what was decided, in order; a leave ends its session.
func (o outbox) flush() {
	for _, e := range o {
		if e.m.Kind == signalwire.KindLeave {
			e.s.end(e.m)
			continue
		}
		if err := e.s.send(e.m); err != nil {
			e.s.log.Debug("relay: send", "type", e.m.Type, "err", err)
		}
	}
}

// placement is how a join is served.
type placement int

const (
	placeDirect placement = iota
	placeRelayed
	placeFull
)

// hasDirectRoom reports whether one more direct session of stream fits
// the viewer cap and the uplink budget. Under t.mu.
func (t *relayTree) hasDirectRoom(stream string) bool {
	if t.cfg.MaxViewers > 0 && len(t.direct) >= t.cfg.MaxViewers {
		return false
	}
	if t.cfg.UplinkBudget <= 0 {
		return true
	}
	need := 0.0
	for _, name := range t.direct {
		if rs := t.streams[name]; rs != nil {
			need += rs.meter.budgetRate() * budgetHeadroom
		}
	}
	if rs := t.streams[stream]; rs != nil {
		need += rs.meter.budgetRate() * budgetHeadroom
	}
	return need <= t.cfg.UplinkBudget
}

// fullReason is what a refused viewer reads.
func (t *relayTree) fullReason() string {
	return fmt.Sprintf("room is full: the camera's uplink serves %d viewers and no viewer can relay more", len(t.direct))
}

// place decides how s, which joined for stream with the relay fingerprint
// fp ("" : it cannot be relayed) over transport, is served. A direct
// placement takes a direct slot at once; a relayed one adds s to the tree
// and returns the assignment to send once the session has accepted.
func (t *relayTree) place(s *session, stream, fp, transport string) (placement, outbox, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.hasDirectRoom(stream) {
		t.direct[s] = stream
		if fp != "" && transport == "fmp4" {
			t.members[s] = t.newMember(s, stream, fp, 1)
		}
		return placeDirect, nil, ""
	}
	if fp == "" || transport != "fmp4" || t.streams[stream] == nil {
		return placeFull, nil, t.fullReason()
	}
	m := t.newMember(s, stream, fp, 0)
	var out outbox
	if !t.attach(m, &out) {
		return placeFull, nil, t.fullReason()
	}
	t.members[s] = m
	return placeRelayed, out, ""
}

func (t *relayTree) newMember(s *session, stream, fp string, depth int) *member {
	t.labels++
	return &member{s: s, stream: stream, fp: fp, depth: depth, label: fmt.Sprintf("v%d", t.labels), children: map[string]*relayLink{}}
}

// height is how many levels hang below m (0: no children).
func height(m *member) int {
	h := 0
	for _, l := range m.children {
		h = max(h, 1+height(l.child))
	}
	return h
}

// below reports whether a is m or one of its descendants.
func below(a, m *member) bool {
	for a != nil {
		if a == m {
			return true
		}
		if a.parent == nil {
			return false
		}
		a = a.parent.parent
	}
	return false
}

// pickParent returns the best parent for m, or nil: a member of its
// stream that offered room, is neither banned nor resting, and under
// which m's subtree stays within the depth bound; the shallowest, then
// the one with fewest children.
func (t *relayTree) pickParent(m *member) *member {
	if p := t.pickParentResting(m, false); p != nil {
		return p
	}
	// A resting parent is better than none.
	return t.pickParentResting(m, true)
}

func (t *relayTree) pickParentResting(m *member, resting bool) *member {
	now := time.Now()
	h := height(m)
	var cands []*member
	for _, p := range t.members {
		// A relayed member without a parent (re-attaching itself) has
		// nothing to give.
		orphan := p.depth > 1 && p.parent == nil
		if p.stream != m.stream || p.banned || p.depth == 0 || orphan || !resting && now.Before(p.restUntil) || below(p, m) {
			continue
		}
		if len(p.children) >= min(p.max, t.cfg.Fanout) || p.depth+1+h > t.cfg.Depth {
			continue
		}
		cands = append(cands, p)
	}
	if len(cands) == 0 {
		return nil
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.depth != b.depth {
			return a.depth < b.depth
		}
		if len(a.children) != len(b.children) {
			return len(a.children) < len(b.children)
		}
		return a.label < b.label
	})
	return cands[0]
}

// attach finds m a parent and queues the assignment; false when no member
// can take it. Under t.mu.
func (t *relayTree) attach(m *member, out *outbox) bool {
	p := t.pickParent(m)
	if p == nil {
		return false
	}
	rs := t.streams[m.stream]
	idb := make([]byte, 9)
	rand.Read(idb)
	l := &relayLink{id: hex.EncodeToString(idb), parent: p, child: m}
	t.links[l.id] = l
	p.children[l.id] = l
	m.parent = l
	m.setDepth(p.depth + 1)
	a := &relay.Assign{Link: l.id, Parent: p.label, Depth: m.depth, Stream: m.stream, Epoch: rs.signer.Epoch().String(),
		Seq: rs.seq.Load(), Fingerprint: p.fp, Self: m.fp}
	if err := relay.SignAssign(t.dev.key, m.s.room, m.s.nonce, a); err != nil {
		t.dev.log.Error("relay: sign assignment", "err", err)
	}
	c := &relay.Child{Link: l.id, Depth: m.depth, Fingerprint: m.fp}
	if err := relay.SignChild(t.dev.key, p.s.room, p.s.stream, p.s.nonce, c); err != nil {
		t.dev.log.Error("relay: sign child", "err", err)
	}
	out.add(m.s, relay.TypeAssign, a)
	out.add(p.s, relay.TypeChild, c)
	m.s.markConnected()
	return true
}

// setDepth sets m's depth and its descendants'.
func (m *member) setDepth(d int) {
	m.depth = d
	for _, l := range m.children {
		l.child.setDepth(d + 1)
	}
}

// unlink removes l; the end the link is over for is told. Under t.mu.
func (t *relayTree) unlink(l *relayLink, out *outbox, tellParent, tellChild bool, reason string) {
	delete(t.links, l.id)
	delete(l.parent.children, l.id)
	if l.child.parent == l {
		l.child.parent = nil
	}
	if tellParent {
		out.add(l.parent.s, relay.TypeEnd, relay.End{Link: l.id, Reason: reason})
	}
	if tellChild {
		out.add(l.child.s, relay.TypeEnd, relay.End{Link: l.id, Reason: reason})
	}
}

// reattach gives an orphaned relayed member a new parent, or ends its
// session with the room full. Under t.mu.
func (t *relayTree) reattach(m *member, out *outbox) {
	if t.attach(m, out) {
		return
	}
	out.end(m.s, t.fullReason(), signalwire.CodeFull)
}

// leave removes s from the tree when its session ends: its children are
// re-attached elsewhere.
func (t *relayTree) leave(s *session) {
	var out outbox
	t.mu.Lock()
	delete(t.direct, s)
	if m := t.members[s]; m != nil {
		delete(t.members, s)
		if m.parent != nil {
			t.unlink(m.parent, &out, true, false, "the child left")
		}
		for _, l := range m.children {
			t.unlink(l, &out, false, true, "your parent left")
			t.reattach(l.child, &out)
		}
	}
	t.mu.Unlock()
	out.flush()
}

// onMessage handles a relay message from s's viewer.
func (t *relayTree) onMessage(s *session, m *signalwire.Message) error {
	switch m.Type {
	case relay.TypeReady:
		r, err := relay.Parse[relay.Ready](m.Payload)
		if err != nil {
			return err
		}
		t.mu.Lock()
		if mb := t.members[s]; mb != nil && !mb.banned {
			mb.max = r.MaxChildren
		}
		t.mu.Unlock()
	case relay.TypeSignal:
		sig, err := relay.Parse[relay.Signal](m.Payload)
		if err != nil {
			return err
		}
		t.mu.Lock()
		l := t.links[sig.Link]
		var to *session
		switch {
		case l == nil:
		case l.parent.s == s:
			to = l.child.s
		case l.child.s == s:
			to = l.parent.s
		}
		t.mu.Unlock()
		if to == nil {
			return nil // a link that just ended; nothing to route
		}
		if err := to.send(&signalwire.Message{Kind: signalwire.KindSignal, Type: relay.TypeSignal, SID: to.sid, Payload: m.Payload}); err != nil {
			s.log.Debug("relay: route relaySignal", "err", err)
		}
	case relay.TypeReport:
		r, err := relay.Parse[relay.Report](m.Payload)
		if err != nil {
			return err
		}
		t.report(s, r)
	}
	return nil
}

// report handles a child's report on its parent.
func (t *relayTree) report(s *session, r *relay.Report) {
	var out outbox
	t.mu.Lock()
	defer func() {
		t.mu.Unlock()
		out.flush()
	}()
	m := t.members[s]
	if m == nil {
		return
	}
	l := t.links[r.Link]
	if l == nil || l.child != m {
		return // an old link: the child has moved on already
	}
	rs := t.streams[m.stream]
	if r.Problem == relay.ProblemStall && rs != nil && rs.paused() {
		s.log.Info("relay: a child reports a stall while the stream itself paused; keeping its parent")
		return
	}
	now := time.Now()
	m.reports = append(m.reports, now)
	for len(m.reports) > 0 && now.Sub(m.reports[0]) > time.Minute {
		m.reports = m.reports[1:]
	}
	if len(m.reports) > maxReportsPerMinute {
		out.end(s, "too many relay reports", "")
		return
	}
	p := l.parent
	s.log.Warn("relay: a child reports its parent", "problem", r.Problem, "detail", r.Detail, "parent", p.label)
	t.dev.relayReports.Add(1)
	t.unlink(l, &out, true, false, "your child reported "+r.Problem)
	if relay.Integrity(r.Problem) {
		// The parent altered, dropped or replayed the stream: it serves
		// nobody any more.
		p.banned, p.max = true, 0
		t.dev.relayBans.Add(1)
		for _, cl := range p.children {
			t.unlink(cl, &out, true, true, "your parent was reported")
			t.reattach(cl.child, &out)
		}
	} else if r.Problem == relay.ProblemStall {
		p.restUntil = now.Add(relayStallRest)
	} else {
		p.restUntil = now.Add(relayRest)
	}
	t.reattach(m, &out)
}

// RelayInfo describes a viewer in the relay tree, for operators and tests.
type RelayInfo struct {
	Session  string // the viewer's id at its bridge
	Label    string
	Depth    int    // 1: served by the device
	Parent   string // the parent's label; "" for direct viewers
	Children int
	Banned   bool
}

// RelayTree returns a snapshot of the relay-capable viewers, by label.
func (d *Device) RelayTree() []RelayInfo {
	t := d.relay
	t.mu.Lock()
	out := make([]RelayInfo, 0, len(t.members))
	for s, m := range t.members {
		ri := RelayInfo{Label: m.label, Depth: m.depth, Children: len(m.children), Banned: m.banned}
		if m.parent != nil {
			ri.Parent = m.parent.parent.label
		}
		s.mu.Lock()
		ri.Session = s.stat.Session
		s.mu.Unlock()
		out = append(out, ri)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out
}

// DirectViewers is how many sessions the device serves itself.
func (d *Device) DirectViewers() int {
	d.relay.mu.Lock()
	defer d.relay.mu.Unlock()
	return len(d.relay.direct)
}

// relayFingerprint is the fingerprint a relayed session is known by: its
// join's, which must be the one it proved a room secret for.
func (s *session) relayFingerprint(join *signalwire.Message) (string, error) {
	if join.Relay == "" {
		return "", nil
	}
	fp := trust.NormalizeFingerprint(join.Relay)
	if s.fingerprint != "" && fp != s.fingerprint {
		return "", fmt.Errorf("%w: the relay certificate is not the one the room secret was proven for", errUnauthorized)
	}
	return fp, nil
}

// markConnected counts a relayed session as connected: it has no
// PeerConnection with the device, and must not be ended as one that never
// connected.
func (s *session) markConnected() {
	s.mu.Lock()
	s.stat.everConnected = true
	s.mu.Unlock()
}

// place asks the tree how to serve the viewer of join.
func (s *session) place(join *signalwire.Message) (placement, outbox, string) {
	fp, err := s.relayFingerprint(join)
	if err != nil {
		return placeFull, nil, err.Error()
	}
	return s.dev.relay.place(s, s.stream, fp, transportOf(join))
}

// serveRelayed runs a relayed session: no PeerConnection with the device,
// only the relay signalling, until the viewer leaves or the session ends.
func (s *session) serveRelayed() {
	defer signalwire.KeepAlive(signalwire.PingInterval, func(m *signalwire.Message) error {
		s.send(m)
		return nil
	})()
	msgs := rate.NewLimiter(sessionMsgRate, sessionMsgBurst)
	for {
		m, err := s.conn.Recv(signalwire.IdleTimeout)
		if err != nil {
			s.log.Info("relayed viewer session ended", "err", err)
			if s.ending() {
				s.conn.Close() // we said goodbye: let the leave reach the bridge
			} else {
				s.conn.Reset()
			}
			return
		}
		if m.Kind == signalwire.KindLeave {
			s.log.Info("relayed viewer left", "reason", m.Reason)
			s.conn.Close()
			return
		}
		if m.Kind != signalwire.KindSignal {
			continue
		}
		if !msgs.Allow() {
			err = fmt.Errorf("too many signalling messages")
		} else {
			err = s.dev.relay.onMessage(s, m)
		}
		if err != nil {
			s.log.Warn("bad relay message from viewer", "type", m.Type, "err", err)
			s.conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: err.Error()})
			s.conn.Close()
			return
		}
	}
}

// RelayStats are a stream's relaying figures.
type RelayStats struct {
	// Sent is the media bytes the device sent to its direct viewers of
	// the stream; Rate the stream's own measured rate in bit/s.
	Sent uint64
	Rate float64
	// Reports counts children's reports about parents (all streams), and
	// Bans the parents banned for altering, dropping or replaying units.
	Reports, Bans uint64
}

// RelayStats returns stream's figures.
func (d *Device) RelayStats(stream string) RelayStats {
	st := RelayStats{Reports: d.relayReports.Load(), Bans: d.relayBans.Load()}
	if s := d.cfg.Streams[stream]; s != nil {
		st.Sent = s.Sent()
	}
	if rs := d.relay.streams[stream]; rs != nil {
		st.Rate = rs.meter.bitsPerSecond()
	}
	return st
}
