package node

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/ersmesh/ersmesh/internal/keylimit"
	"github.com/ersmesh/ersmesh/internal/ratelog"
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

// streamGuard admits signalling streams under Limits: a per-peer cap, a
// cap over all peers and a token bucket per peer, in one keylimit table.
type streamGuard struct {
	lim     Limits
	streams *keylimit.Limiter[peer.ID]
	// refusals logs one line per peer per refusalLogInterval and a few
	// lines a second over all peers, so that many hostile peers cannot
	// flood the log either; notices does the same for other lines caused
	// by bridges.
	refusals *ratelog.Keyed[peer.ID]
	notices  *ratelog.Logger

	mu    sync.Mutex // guards stats
	stats LimitStats
}

// refusalLogInterval is how often one peer's refusals are logged.
const refusalLogInterval = 10 * time.Second

func newStreamGuard(lim Limits, log *slog.Logger) *streamGuard {
	lim = lim.withDefaults()
	return &streamGuard{
		lim: lim,
		streams: keylimit.New(keylimit.Config[peer.ID]{
			PerKey: lim.MaxStreamsPerPeer, Total: lim.MaxStreams,
			Rate: rate.Limit(lim.StreamRate), Burst: lim.StreamBurst,
			// Peers with streams open are at most MaxStreams; the rest
			// are refilling buckets, forgotten first when the table is
			// full (a fresh peer ID gets a fresh bucket anyway).
			MaxKeys: lim.MaxStreams + 16384, WhenFull: keylimit.Forget,
		}),
		refusals: ratelog.NewKeyed[peer.ID](log, refusalLogInterval, time.Second/5, 5, 16384),
		notices:  ratelog.New(log, time.Second/5, 5),
	}
}

// admit reserves a stream slot for p, or says why not. release gives the
// slot back; it must be called once for each admitted stream.
func (g *streamGuard) admit(p peer.ID) (release func(), ok bool) {
	release, err := g.streams.Admit(p)
	if err == nil {
		return release, true
	}
	var why string
	var limit any
	g.mu.Lock()
	switch err {
	case keylimit.ErrPerKey:
		g.stats.RefusedPeerStreams++
		why, limit = "too many signalling streams from this peer", g.lim.MaxStreamsPerPeer
	case keylimit.ErrTotal:
		g.stats.RefusedStreams++
		why, limit = "too many signalling streams on this device", g.lim.MaxStreams
	case keylimit.ErrRate:
		g.stats.RefusedRate++
		why, limit = "signalling streams opened too fast by this peer", g.lim.StreamRate
	default: // ErrFull: every tracked peer holds a stream, so the total is reached
		g.stats.RefusedStreams++
		why, limit = "too many bridges tracked on this device", g.lim.MaxStreams+16384
	}
	g.mu.Unlock()
	g.refusals.Warn(p, "refusing a signalling stream: "+why, "bridge", p, "limit", limit, "open", g.streams.HeldBy(p))
	return nil, false
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
	s.Streams, s.Peers = g.streams.Held(), g.streams.Len()
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
	g.notices.Info("ending a signalling session whose viewer never connected", "bridge", s.bridge,
		"session", info.Session, "room", info.Room, "after", d)
	s.end(&signalwire.Message{Kind: signalwire.KindLeave, Reason: fmt.Sprintf("the viewer did not connect within %v", d)})
}

// viewerProtectTag marks, on the connection manager, bridges that relay a
// viewer of this device.
const viewerProtectTag = "ersmesh-viewers"
