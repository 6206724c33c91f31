package mesh

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Per-peer stream limits. libp2p's defaults (about 75 inbound streams per
// protocol per peer, 32 MiB of stream buffers per connection, which yamux
// spends at 256 KiB a stream) suit a public DHT where every peer is a
// stranger. In ersmesh one bridge opens one signalling stream per viewer to
// the same device over one connection, so the defaults refused the 76th
// viewer of a device behind a bridge (measured by `ersmesh-bench bridge`,
// see docs/benchmarks.md). These limits let one peer hold a few thousand
// streams; the system-wide limits, which libp2p scales to the machine's
// memory and file descriptors, still bound the total.
const (
	streamsPerPeer   = 4096
	memoryPerPeer    = 1 << 30 // yamux reserves 256 KiB a stream; it only allocates what is sent
	streamsPerSystem = 4 * streamsPerPeer
)

// resourceManager returns libp2p's scaled default limits with the per-peer
// stream limits above.
func resourceManager() (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	defaults := scaling.AutoScale()
	perPeer := rcmgr.ResourceLimits{
		Streams:         streamsPerPeer,
		StreamsInbound:  streamsPerPeer,
		StreamsOutbound: streamsPerPeer,
		Memory:          memoryPerPeer,
	}
	// Zero fields keep the scaled defaults.
	system := defaults.ToPartialLimitConfig().System
	limits := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Streams:         max(system.Streams, streamsPerSystem),
			StreamsInbound:  max(system.StreamsInbound, streamsPerSystem),
			StreamsOutbound: max(system.StreamsOutbound, streamsPerSystem),
		},
		PeerDefault:         perPeer,
		ProtocolPeerDefault: perPeer,
		ServicePeerDefault:  perPeer,
		Conn:                rcmgr.ResourceLimits{Memory: memoryPerPeer},
	}.Build(defaults)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
	if err != nil {
		return nil, fmt.Errorf("libp2p resource manager: %w", err)
	}
	return rm, nil
}
