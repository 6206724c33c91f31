package mesh

import (
	"net"
	"sync"

	"github.com/libp2p/go-libp2p-kbucket/peerdiversity"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Routing table diversity (Config.DiversityPerBucket, DiversityPerTable):
// how many DHT servers from one IP group (an IPv4 /16 or legacy /8, an
// IPv6 ASN; see peerdiversity.IPGroupKey) the routing table takes per
// bucket and in all. Peer IDs cost nothing, addresses do: without a cap, a
// stranger with one rented subnet could fill our buckets with its own IDs,
// then answer every lookup of a room (an eclipse). libp2p's public DHT uses
// 2 and 3; community meshes often run several bridges at one hosting
// provider, so ours are looser.
const (
	DefaultDiversityPerBucket = 3
	DefaultDiversityPerTable  = 12
)

// exemptGroup stands for every address the filter does not count:
// loopback, private and link-local addresses (a LAN or a test on one
// machine, where all peers share a group by nature) and the bootstrap peers
// the operator chose. No public address masks to 0.0.0.0, so no real group
// collides with it.
var exemptAddr = ma.StringCast("/ip4/0.0.0.0")

var exemptGroup = peerdiversity.IPGroupKey(net.IPv4zero)

// diversityFilter implements peerdiversity.PeerIPGroupFilter: kad-dht asks
// it before a peer enters the routing table and tells it when one leaves.
type diversityFilter struct {
	h                   host.Host
	exempt              map[peer.ID]bool
	perBucket, perTable int

	mu    sync.Mutex // guards the counts
	cpl   map[int]map[peerdiversity.PeerIPGroupKey]int
	table map[peerdiversity.PeerIPGroupKey]int
}

var _ peerdiversity.PeerIPGroupFilter = (*diversityFilter)(nil)

func newDiversityFilter(h host.Host, perBucket, perTable int, exempt []peer.AddrInfo) *diversityFilter {
	if perBucket <= 0 {
		perBucket = DefaultDiversityPerBucket
	}
	if perTable <= 0 {
		perTable = DefaultDiversityPerTable
	}
	f := &diversityFilter{h: h, perBucket: perBucket, perTable: perTable, exempt: make(map[peer.ID]bool),
		cpl: make(map[int]map[peerdiversity.PeerIPGroupKey]int), table: make(map[peerdiversity.PeerIPGroupKey]int)}
	for _, ai := range exempt {
		f.exempt[ai.ID] = true
	}
	return f
}

func (f *diversityFilter) Allow(g peerdiversity.PeerGroupInfo) bool {
	if g.IPGroupKey == exemptGroup {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.table[g.IPGroupKey] < f.perTable && f.cpl[g.Cpl][g.IPGroupKey] < f.perBucket
}

func (f *diversityFilter) Increment(g peerdiversity.PeerGroupInfo) {
	if g.IPGroupKey == exemptGroup {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.table[g.IPGroupKey]++
	if f.cpl[g.Cpl] == nil {
		f.cpl[g.Cpl] = make(map[peerdiversity.PeerIPGroupKey]int)
	}
	f.cpl[g.Cpl][g.IPGroupKey]++
}

func (f *diversityFilter) Decrement(g peerdiversity.PeerGroupInfo) {
	if g.IPGroupKey == exemptGroup {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.table[g.IPGroupKey]--; f.table[g.IPGroupKey] <= 0 {
		delete(f.table, g.IPGroupKey)
	}
	if f.cpl[g.Cpl][g.IPGroupKey]--; f.cpl[g.Cpl][g.IPGroupKey] <= 0 {
		delete(f.cpl[g.Cpl], g.IPGroupKey)
		if len(f.cpl[g.Cpl]) == 0 {
			delete(f.cpl, g.Cpl)
		}
	}
}

// PeerAddresses returns the addresses p is connected from, one per IP
// group (a peer with two connections from one subnet counts once), with
// uncounted addresses replaced by exemptAddr.
func (f *diversityFilter) PeerAddresses(p peer.ID) []ma.Multiaddr {
	if f.exempt[p] {
		return []ma.Multiaddr{exemptAddr}
	}
	seen := make(map[peerdiversity.PeerIPGroupKey]bool)
	var out []ma.Multiaddr
	for _, c := range f.h.Network().ConnsToPeer(p) {
		a := c.RemoteMultiaddr()
		ip, err := manet.ToIP(a)
		if err != nil {
			continue
		}
		if !manet.IsPublicAddr(a) || ip.IsLoopback() {
			a, ip = exemptAddr, net.IPv4zero
		}
		if g := peerdiversity.IPGroupKey(ip); !seen[g] {
			seen[g] = true
			out = append(out, a)
		}
	}
	return out
}
