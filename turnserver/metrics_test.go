package turnserver

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	s, _ := startServer(t, Config{Policy: Policy{AllowPrivate: true}, MaxUserAllocations: 1})
	reg := prometheus.NewRegistry()
	if err := s.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	peer := echoPeer(t)
	cr := creds(t, "metered", time.Hour)
	relay, err := dial(t, s, "udp", cr.Username, cr.Password).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if err := roundTrip(relay, peer.LocalAddr(), "count me"); err != nil {
		t.Fatal(err)
	}
	if r, err := dial(t, s, "udp", cr.Username, cr.Password).Allocate(); err == nil {
		r.Close()
		t.Fatal("second allocation beyond a quota of 1")
	}
	for name, min := range map[string]float64{
		"ersmesh_turn_allocations":                    1,
		"ersmesh_turn_allocations_total":              1,
		"ersmesh_turn_allocations_refused_total":      1,
		"ersmesh_turn_relayed_to_peers_bytes_total":   float64(len("count me")),
		"ersmesh_turn_relayed_from_peers_bytes_total": float64(len("count me")),
	} {
		if got, err := testutil.GatherAndCount(reg, name); err != nil || got != 1 {
			t.Errorf("%s: %d series (%v)", name, got, err)
			continue
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			m := mf.GetMetric()[0]
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if v < min {
				t.Errorf("%s = %v, want at least %v", name, v, min)
			}
		}
	}
}
