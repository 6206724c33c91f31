package mesh

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// departureCheckTimeout bounds the redial that tells a dropped connection
// from a departed peer.
const departureCheckTimeout = 10 * time.Second

// watchDepartures evicts DHT servers that left the mesh from the routing
// table as soon as their connection drops and a redial fails.
//
// kad-dht keeps a disconnected peer in its routing table until a query fails
// to dial it, and every query that needs it waits for that dial: the full
// dial timeout (5 s on a LAN, 15 s beyond) when the peer is simply gone. In a
// mesh of a few nodes a departed device is always among the closest peers,
// so every lookup of a missing room and every publication would pay that
// wait, and the Resolver's early return would keep cancelling the very dial
// that would evict the peer. One redial per lost connection, right away,
// settles it.
func (n *Host) watchDepartures(sub event.Subscription) {
	defer sub.Close()
	var (
		mu       sync.Mutex
		checking = make(map[peer.ID]bool)
		wg       sync.WaitGroup
	)
	defer wg.Wait()
	for {
		select {
		case <-n.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtPeerConnectednessChanged)
			if ev.Connectedness != network.NotConnected || n.dht.RoutingTable().Find(ev.Peer) == "" {
				continue
			}
			mu.Lock()
			if checking[ev.Peer] {
				mu.Unlock()
				continue
			}
			checking[ev.Peer] = true
			mu.Unlock()
			wg.Go(func() {
				n.checkDeparted(ev.Peer)
				mu.Lock()
				delete(checking, ev.Peer)
				mu.Unlock()
			})
		}
	}
}

// checkDeparted redials p and drops it from the routing table if that fails.
func (n *Host) checkDeparted(p peer.ID) {
	ctx, cancel := context.WithTimeout(n.ctx, departureCheckTimeout)
	defer cancel()
	err := n.host.Connect(ctx, peer.AddrInfo{ID: p})
	if err == nil || n.ctx.Err() != nil {
		return
	}
	n.dht.RoutingTable().RemovePeer(p)
	n.log.Debug("peer left the mesh", "peer", p, "error", err)
}
