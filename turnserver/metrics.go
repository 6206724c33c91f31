package turnserver

import "github.com/prometheus/client_golang/prometheus"

// RegisterMetrics exposes the server's allocations and relayed bytes.
func (s *Server) RegisterMetrics(reg prometheus.Registerer) error {
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ersmesh_turn_allocations", Help: "TURN allocations open now."},
			func() float64 { return float64(s.Allocations()) }),
		counter("ersmesh_turn_allocations_total", "TURN allocations made.", s.q.allocated.Load),
		counter("ersmesh_turn_allocations_refused_total", "TURN allocations refused by the per-user quota.", s.q.refused.Load),
		counter("ersmesh_turn_allocations_refused_address_total", "TURN allocations refused because the client address (IPv6: /64) held its cap.", s.caps.refusedIP.Load),
		counter("ersmesh_turn_allocations_refused_server_total", "TURN allocations refused because the server held its cap.", s.caps.refusedAll.Load),
		counter("ersmesh_turn_relayed_to_peers_bytes_total", "Bytes relayed from clients to peers.", s.q.toPeers.Load),
		counter("ersmesh_turn_relayed_from_peers_bytes_total", "Bytes relayed from peers to clients.", s.q.fromPeers.Load),
		counter("ersmesh_turn_dropped_bytes_total", "Relayed bytes dropped over a user's bandwidth quota.", s.q.drop.Load),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
