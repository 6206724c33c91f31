package node

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/ersmesh/ersmesh/signalwire"
)

// Defaults of Limits. A bridge carries one signalling stream per viewer, so
// a busy bridge legitimately holds thousands to one device; the per-peer
// cap is there so that one bridge, honest and overloaded or hostile, cannot
// take every slot. The rate lets a bridge that restarts bring a few
// thousand viewers back within tens of seconds.
const (
	DefaultMaxStreamsPerPeer  = 2000
	DefaultMaxStreams         = 10000
	DefaultStreamRate         = 100 // new streams per second per peer
	DefaultStreamBurst        = 500
	DefaultUnconnectedTimeout = 60 * time.Second
)

// Limits bound what bridges can make a device hold (docs/hardening.md).
// Zero values mean the defaults. They sit above libp2p's resource manager,
// which bounds streams and memory per connection: these know what a
// signalling stream is and when its viewer has connected.
type Limits struct {
	// MaxStreamsPerPeer caps the signalling streams one remote peer has
	// open at once, joining or serving; MaxStreams caps all peers'.
	MaxStreamsPerPeer int
	MaxStreams        int
	// StreamRate and StreamBurst are a token bucket per remote peer on new
	// signalling streams.
	StreamRate  float64
	StreamBurst int
	// UnconnectedTimeout ends a session whose viewer has not connected
	// (its PeerConnection never reached "connected") this long after its
	// stream opened, however busy its signalling is: pings from a bridge
	// keep a stream alive, but not for ever without a viewer.
	UnconnectedTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxStreamsPerPeer <= 0 {
		l.MaxStreamsPerPeer = DefaultMaxStreamsPerPeer
	}
	if l.MaxStreams <= 0 {
		l.MaxStreams = DefaultMaxStreams
	}
	if l.StreamRate <= 0 {
		l.StreamRate = DefaultStreamRate
	}
	if l.StreamBurst <= 0 {
		l.StreamBurst = DefaultStreamBurst
	}
	if l.UnconnectedTimeout <= 0 {
		l.UnconnectedTimeout = DefaultUnconnectedTimeout
	}
	return l
}

// LimitStats counts what the limits did, for operators and tests.
type LimitStats struct {
	Streams int // signalling streams open now
	Peers   int // remote peers tracked (with streams open or a bucket refilling)
	// Refused new streams, by the limit that refused them.
	RefusedPeerStreams, RefusedStreams, RefusedRate uint64
	// UnconnectedEnded counts sessions ended by UnconnectedTimeout.
	UnconnectedEnded uint64
}

// streamGuard admits signalling streams under Limits. One mutex guards it
// all: admission is a few map operations, far cheaper than the stream
// negotiation that precedes it.
type streamGuard struct {
	lim Limits
	log *slog.Logger

	mu      sync.Mutex
	total   int
	peers   map[peer.ID]*peerStreams
	sweepAt int // sweep idle entries when peers grows past this
	stats   LimitStats
	// logs limits refusal logs over all peers, so that many hostile peers
	// cannot flood the log either.
	logs *rate.Limiter
}

type peerStreams struct {
	open       int
	bucket     *rate.Limiter
	logs       *rate.Limiter // one refusal line per peer per interval
	suppressed int           // refusals not logged since the last line
}

// refusalLogInterval is how often one peer's refusals are logged.
const refusalLogInterval = 10 * time.Second

func newStreamGuard(lim Limits, log *slog.Logger) *streamGuard {
	return &streamGuard{lim: lim.withDefaults(), log: log, peers: make(map[peer.ID]*peerStreams), sweepAt: 1024,
		logs: rate.NewLimiter(5, 5)}
}

// admit reserves a stream slot for p, or says why not. release gives the
// slot back; it must be called once for each admitted stream.
func (g *streamGuard) admit(p peer.ID) (release func(), ok bool) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	ps := g.peers[p]
	if ps == nil {
		if len(g.peers) >= g.sweepAt {
			g.sweep(now)
		}
		ps = &peerStreams{
			bucket: rate.NewLimiter(rate.Limit(g.lim.StreamRate), g.lim.StreamBurst),
			logs:   rate.NewLimiter(rate.Every(refusalLogInterval), 1),
		}
		g.peers[p] = ps
	}
	var why string
	var limit any
	switch {
	case ps.open >= g.lim.MaxStreamsPerPeer:
		g.stats.RefusedPeerStreams++
		why, limit = "too many signalling streams from this peer", g.lim.MaxStreamsPerPeer
	case g.total >= g.lim.MaxStreams:
		g.stats.RefusedStreams++
		why, limit = "too many signalling streams on this device", g.lim.MaxStreams
	case !ps.bucket.AllowN(now, 1):
		g.stats.RefusedRate++
		why, limit = "signalling streams opened too fast by this peer", g.lim.StreamRate
	}
	if why != "" {
		g.logRefusal(p, ps, now, why, limit)
		return nil, false
	}
	ps.open++
	g.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			ps.open--
			g.total--
			g.mu.Unlock()
		})
	}, true
}

// logRefusal logs at most one line per peer per refusalLogInterval, and a
// few lines per second over all peers, saying how many went unlogged.
func (g *streamGuard) logRefusal(p peer.ID, ps *peerStreams, now time.Time, why string, limit any) {
	if !ps.logs.AllowN(now, 1) || !g.logs.AllowN(now, 1) {
		ps.suppressed++
		return
	}
	g.log.Warn("refusing a signalling stream: "+why, "bridge", p, "limit", limit, "open", ps.open,
		"refused_since_last_line", ps.suppressed)
	ps.suppressed = 0
}

// sweep forgets peers with no stream open whose bucket has refilled: they
// would start afresh anyway. Peers still refilling stay, so that closing
// every stream does not reset a peer's rate.
func (g *streamGuard) sweep(now time.Time) {
	for p, ps := range g.peers {
		if ps.open == 0 && ps.bucket.TokensAt(now) >= float64(g.lim.StreamBurst) {
			delete(g.peers, p)
		}
	}
	g.sweepAt = max(1024, 2*len(g.peers))
}

func (g *streamGuard) unconnectedEnded() {
	g.mu.Lock()
	g.stats.UnconnectedEnded++
	g.mu.Unlock()
}

func (g *streamGuard) snapshot() LimitStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Streams, s.Peers = g.total, len(g.peers)
	return s
}

// LimitStats reports the device's signalling streams and what its Limits
// refused.
func (d *Device) LimitStats() LimitStats { return d.guard.snapshot() }

// Per session bounds on what a viewer (through its bridge) sends. An ERS
// player trickles a few dozen candidates and the odd mute event; a flood of
// messages costs JSON decoding and ICE work per message. Honest bridges
// bound their viewers more tightly (20 candidates per second per socket, 256
// per WHEP session, in package bridge): these are for bridges that do not.
const (
	sessionMsgRate      = 50 // messages per second, after the burst
	sessionMsgBurst     = 400
	maxRemoteCandidates = 300 // candidates added to one PeerConnection
)

// limitLifetime ends the session if its viewer has not connected within d
// of now. stop cancels the timer and waits for it if it already fired.
func (s *session) limitLifetime(d time.Duration) (stop func()) {
	var fired sync.WaitGroup
	fired.Add(1)
	t := time.AfterFunc(d, func() {
		defer fired.Done()
		s.endUnconnected(d)
	})
	return func() {
		if t.Stop() {
			fired.Done()
		}
		fired.Wait()
	}
}

func (s *session) endUnconnected(d time.Duration) {
	s.mu.Lock()
	connected, info := s.stat.everConnected, s.stat
	s.mu.Unlock()
	if connected {
		return
	}
	g := s.dev.guard
	g.unconnectedEnded()
	if g.logs.Allow() {
		s.dev.log.Info("ending a signalling session whose viewer never connected", "bridge", s.bridge,
			"session", info.Session, "room", info.Room, "after", d)
	}
	s.end(&signalwire.Message{Kind: signalwire.KindLeave, Reason: fmt.Sprintf("the viewer did not connect within %v", d)})
}

// viewerProtectTag marks, on the connection manager, bridges that relay a
// viewer of this device.
const viewerProtectTag = "ersmesh-viewers"
