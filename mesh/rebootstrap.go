package mesh

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// BootstrapRedial is how often a node checks that it is connected to its
// bootstrap peers and dials those it is not. kad-dht itself dials them
// only when its routing table is empty; a bootstrap node that restarted
// (with an empty routing table) would otherwise stay out of the mesh it
// is meant to introduce newcomers to, until some other node happened to
// dial it.
var BootstrapRedial = 10 * time.Second

// keepBootstrap re-dials bootstrap peers that are gone, every
// BootstrapRedial, until the node closes.
func (n *Host) keepBootstrap(bootstrap []peer.AddrInfo) {
	t := time.NewTicker(BootstrapRedial)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		for _, ai := range bootstrap {
			if n.host.Network().Connectedness(ai.ID) == network.Connected {
				continue
			}
			// A peer that was down is in the swarm's dial backoff, which
			// grows to minutes; this dial is deliberate and paced by the
			// ticker.
			if sw, ok := n.host.Network().(*swarm.Swarm); ok {
				sw.Backoff().Clear(ai.ID)
			}
			ctx, cancel := context.WithTimeout(n.ctx, bootstrapDialTimeout)
			err := n.host.Connect(ctx, ai)
			cancel()
			if err != nil {
				n.log.Debug("bootstrap peer still unreachable", "peer", ai.ID, "error", err)
				continue
			}
			n.log.Info("reconnected to a bootstrap peer", "peer", ai.ID)
		}
	}
}
