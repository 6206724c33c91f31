package mesh

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// Relay keeping. A node behind NAT holds circuit relay v2 reservations
// (https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md) on a
// few of its relays and advertises "<relay addr>/p2p/<relay>/p2p-circuit"
// addresses, which bridges dial when its direct addresses fail.
//
// libp2p's autorelay does this too, but advertises a relay only through
// the relay's public addresses: in a private deployment (a company
// network, a lab, our namespace tests) relays have none, and autorelay
// would hold reservations nobody can use. The keeper advertises every
// address of the relays we are configured with.
const (
	reservationTimeout = 15 * time.Second
	// keeperTick is how often the keeper checks its reservations; a lost
	// relay is noticed at once through connection events.
	keeperTick = 10 * time.Second
	// refreshBefore renews a reservation this long before it expires
	// (relays grant an hour).
	refreshBefore = 5 * time.Minute
	relayTag      = "ersmesh-relay"
)

type heldRelay struct {
	info    peer.AddrInfo
	expires time.Time
}

// relayKeeper keeps up to want reservations among relays. Its run
// goroutine owns held and backoff; mu lets the address factory read held.
type relayKeeper struct {
	log    *slog.Logger
	relays []peer.AddrInfo
	want   int

	mu      sync.Mutex
	held    map[peer.ID]heldRelay
	backoff map[peer.ID]time.Time
}

func newRelayKeeper(log *slog.Logger, relays []peer.AddrInfo) *relayKeeper {
	return &relayKeeper{
		log: log, relays: relays, want: min(2, len(relays)),
		held:    make(map[peer.ID]heldRelay),
		backoff: make(map[peer.ID]time.Time),
	}
}

// addrs is the host's address factory: its own addresses and a circuit
// address through every address of every relay it holds a reservation on.
func (k *relayKeeper) addrs(own []ma.Multiaddr) []ma.Multiaddr {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := slices.Clone(own)
	for id, r := range k.held {
		circuit := ma.StringCast("/p2p/" + id.String() + "/p2p-circuit")
		for _, a := range r.info.Addrs {
			out = append(out, a.Encapsulate(circuit))
		}
	}
	return out
}

// heldRelays returns the relays the node holds reservations on.
func (k *relayKeeper) heldRelays() []peer.ID {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []peer.ID
	for id := range k.held {
		out = append(out, id)
	}
	return out
}

// run keeps reservations until ctx ends. It holds none while the node
// knows itself publicly reachable.
func (k *relayKeeper) run(ctx context.Context, h host.Host) {
	sub, err := h.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtPeerConnectednessChanged)})
	if err != nil {
		k.log.Error("relay keeper cannot watch the host; no relay reservations", "err", err)
		return
	}
	defer sub.Close()
	reach := network.ReachabilityUnknown
	t := time.NewTicker(keeperTick)
	defer t.Stop()
	for due := true; ; {
		if due {
			k.keep(ctx, h, reach)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			due = true
		case ev := <-sub.Out():
			switch ev := ev.(type) {
			case event.EvtLocalReachabilityChanged:
				if ev.Reachability != reach {
					k.log.Info("reachability changed", "reachability", ev.Reachability.String())
				}
				due = ev.Reachability != reach
				reach = ev.Reachability
			case event.EvtPeerConnectednessChanged:
				// Only the loss of one of our relays needs action now.
				k.mu.Lock()
				_, ours := k.held[ev.Peer]
				k.mu.Unlock()
				due = ours && ev.Connectedness != network.Connected
			}
		}
	}
}

func (k *relayKeeper) keep(ctx context.Context, h host.Host, reach network.Reachability) {
	now := time.Now()
	if reach == network.ReachabilityPublic {
		k.mu.Lock()
		if len(k.held) > 0 {
			k.log.Info("publicly reachable: dropping relay reservations")
			for id := range k.held {
				h.ConnManager().Unprotect(id, relayTag)
			}
			clear(k.held)
		}
		k.mu.Unlock()
		return
	}
	// Renew what is about to expire, and notice relays we lost.
	for _, r := range k.snapshot() {
		lost := h.Network().Connectedness(r.info.ID) != network.Connected
		if !lost && time.Until(r.expires) > refreshBefore {
			continue
		}
		if exp, err := k.reserve(ctx, h, r.info); err == nil {
			k.set(r.info, exp)
			continue
		} else if ctx.Err() != nil {
			return
		} else {
			k.log.Info("lost a relay; looking for another", "relay", r.info.ID, "err", err)
		}
		k.drop(h, r.info.ID, now)
	}
	// Fill up from the relays we do not hold and have not failed lately.
	for _, ai := range k.relays {
		if len(k.snapshot()) >= k.want || ctx.Err() != nil {
			return
		}
		k.mu.Lock()
		_, held := k.held[ai.ID]
		until, backoff := k.backoff[ai.ID]
		k.mu.Unlock()
		if held || (backoff && now.Before(until)) {
			continue
		}
		exp, err := k.reserve(ctx, h, ai)
		if err != nil {
			if ctx.Err() == nil {
				k.log.Info("relay refused or unreachable", "relay", ai.ID, "err", err)
				k.drop(h, ai.ID, now)
			}
			continue
		}
		k.log.Info("relay reservation", "relay", ai.ID, "expires", exp.Format(time.RFC3339))
		k.set(ai, exp)
	}
}

func (k *relayKeeper) reserve(ctx context.Context, h host.Host, ai peer.AddrInfo) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, reservationTimeout)
	defer cancel()
	if err := h.Connect(ctx, ai); err != nil {
		return time.Time{}, err
	}
	rsvp, err := client.Reserve(ctx, h, ai)
	if err != nil {
		return time.Time{}, err
	}
	h.ConnManager().Protect(ai.ID, relayTag)
	return rsvp.Expiration, nil
}

func (k *relayKeeper) snapshot() []heldRelay {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]heldRelay, 0, len(k.held))
	for _, r := range k.held {
		out = append(out, r)
	}
	return out
}

func (k *relayKeeper) set(ai peer.AddrInfo, exp time.Time) {
	k.mu.Lock()
	k.held[ai.ID] = heldRelay{info: ai, expires: exp}
	delete(k.backoff, ai.ID)
	k.mu.Unlock()
}

func (k *relayKeeper) drop(h host.Host, id peer.ID, now time.Time) {
	h.ConnManager().Unprotect(id, relayTag)
	k.mu.Lock()
	delete(k.held, id)
	k.backoff[id] = now.Add(relayBackoff)
	k.mu.Unlock()
}
