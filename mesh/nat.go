package mesh

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// Reachability overrides what AutoNAT finds out about a node.
type Reachability string

// The values of Config.Reachability.
const (
	// ReachabilityAuto lets AutoNAT decide from dial-backs by other peers.
	ReachabilityAuto Reachability = ""
	// ReachabilityPublic: the node is reachable; it never takes relays.
	ReachabilityPublic Reachability = "public"
	// ReachabilityPrivate: the node is behind NAT; it takes relay
	// reservations at once instead of waiting for AutoNAT.
	ReachabilityPrivate Reachability = "private"
)

// relayLimit is what a relayed connection may carry before the relay
// resets it. libp2p's default (2 minutes, 128 KiB) suits a hole-punching
// rendezvous, but a signalling stream to a device behind a NAT that
// defeats hole punching lives as long as its viewer watches; signalling is
// a few KiB per session plus pings, so a generous cap costs a relay
// little.
var relayLimit = relay.RelayLimit{Duration: 12 * time.Hour, Data: 8 << 20}

// relayBackoff is how long a node waits before it asks a relay that
// failed it again: libp2p's default hour is far too long when the relays
// are our few bootstrap nodes and one just restarted.
const relayBackoff = 30 * time.Second

// natOptions are the libp2p options for cfg's NAT settings, and the relay
// keeper when the node traverses NATs through relays.
func natOptions(cfg *Config, relays []peer.AddrInfo) ([]libp2p.Option, *relayKeeper, error) {
	// Every node can take part in hole punching (DCUtR): the side behind
	// NAT starts it, the other must answer.
	opts := []libp2p.Option{libp2p.EnableHolePunching()}
	switch cfg.Reachability {
	case ReachabilityAuto:
	case ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	default:
		return nil, nil, fmt.Errorf("reachability %q: want public, private or empty", cfg.Reachability)
	}
	if cfg.RelayService {
		// Relays tell others whether they are reachable (AutoNAT
		// dial-backs): that is how a device learns it is behind NAT.
		opts = append(opts, libp2p.EnableNATService())
	}
	if !cfg.NATTraversal {
		return opts, nil, nil
	}
	if len(relays) == 0 {
		return nil, nil, fmt.Errorf("NAT traversal needs relays: give bootstrap peers or Config.Relays")
	}
	k := newRelayKeeper(cfg.Logger, relays)
	return append(opts, libp2p.AddrsFactory(k.addrs)), k, nil
}

// startRelay runs a circuit relay v2 service (libp2p's own would only start
// once AutoNAT calls the node public, which a bootstrap node on a private
// lab network never hears).
func startRelay(h host.Host) (*relay.Relay, error) {
	res := relay.DefaultResources()
	limit := relayLimit
	res.Limit = &limit
	r, err := relay.New(h, relay.WithResources(res))
	if err != nil {
		return nil, fmt.Errorf("start relay service: %w", err)
	}
	return r, nil
}
