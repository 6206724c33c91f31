package mesh

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// observe counts a finished DHT query and its time.
func (r *Resolver) observe(d time.Duration, err error) {
	result := "found"
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		result = "not_found"
	default:
		result = "error"
	}
	r.mu.Lock()
	switch result {
	case "found":
		r.stats.Found++
	case "not_found":
		r.stats.NotFound++
	default:
		r.stats.Failed++
	}
	h := r.latency
	r.mu.Unlock()
	if h != nil {
		h.WithLabelValues(result).Observe(d.Seconds())
	}
}

// RegisterMetrics exposes the resolver's lookups: calls answered from the
// cache, shared with a running query, or sent to the DHT, and the DHT
// queries' latency by result.
func (r *Resolver) RegisterMetrics(reg prometheus.Registerer) error {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ersmesh_room_lookup_seconds",
		Help:    "Time of DHT lookups of rooms, by result (found, not_found, error).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"result"})
	counter := func(name, help string, get func(ResolverStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(get(r.Stats())) })
	}
	for _, c := range []prometheus.Collector{
		h,
		counter("ersmesh_room_lookups_cache_hits_total", "Room lookups answered from the cache.", func(s ResolverStats) uint64 { return s.Hits }),
		counter("ersmesh_room_lookups_shared_total", "Room lookups that joined a DHT query already running.", func(s ResolverStats) uint64 { return s.Shared }),
		counter("ersmesh_room_lookups_dht_total", "Room lookups sent to the DHT.", func(s ResolverStats) uint64 { return s.Queries }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.latency = h
	r.mu.Unlock()
	return nil
}

// RegisterMetrics exposes how many rooms p keeps published.
func (p *Publisher) RegisterMetrics(reg prometheus.Registerer) error {
	return reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ersmesh_rooms_published", Help: "Rooms this device keeps published in the DHT.",
	}, func() float64 { return float64(len(p.Rooms())) }))
}

// RegisterMetrics exposes the size of the node's DHT routing table and its
// connected peers, the first things to look at when lookups fail.
func (n *Host) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ersmesh_dht_routing_table_peers", Help: "Peers in the DHT routing table."},
			func() float64 { return float64(n.dht.RoutingTable().Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ersmesh_libp2p_connected_peers", Help: "Peers with an open libp2p connection."},
			func() float64 { return float64(len(n.host.Network().Peers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ersmesh_dht_room_records", Help: "Room records this node stores for the mesh."},
			func() float64 { return float64(n.RecordStats().Records) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ersmesh_dht_room_records_refused_total",
			Help: "Room records refused because their publisher, or this node, held its maximum of them."},
			func() float64 { s := n.RecordStats(); return float64(s.RefusedPerPeer + s.RefusedFull) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ersmesh_libp2p_private_dials_refused_total",
			Help: "Dials refused because they went to a loopback or private address of a peer that is not a bootstrap peer or relay."},
			func() float64 { return float64(n.PrivateDialsRefused()) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Ready reports an error while the node knows no other DHT peer: lookups
// and publishing cannot work yet.
func (n *Host) Ready() error {
	if n.dht.RoutingTable().Size() == 0 {
		return errors.New("no peer in the DHT routing table yet")
	}
	return nil
}
