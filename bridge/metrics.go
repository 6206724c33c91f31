package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bridge's counters. They exist whether or not anything
// registered them, so the code counts unconditionally.
type metrics struct {
	joins    *prometheus.CounterVec // by result
	relayed  *prometheus.CounterVec // signalling messages by direction
	errors   *prometheus.CounterVec // bad browser input by event
	sessions prometheus.Gauge       // device sessions running
}

func newMetrics() *metrics {
	return &metrics{
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ersmesh_bridge_joins_total",
			Help: "Joins from browsers by result: joined, empty (no device), unreachable, refused (by the device or the bridge), error.",
		}, []string{"result"}),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ersmesh_bridge_signal_messages_total",
			Help: "Signalling messages relayed, by direction (to_device, to_browser).",
		}, []string{"direction"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ersmesh_bridge_signal_errors_total",
			Help: "Browser events refused with an error packet, by event (join, message, unknown).",
		}, []string{"event"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ersmesh_bridge_device_sessions",
			Help: "Viewer sessions with a device open now.",
		}),
	}
}

// RegisterMetrics exposes the bridge's metrics, including connected viewer
// sockets and refusals by its limits.
func (b *Bridge) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		b.metrics.joins, b.metrics.relayed, b.metrics.errors, b.metrics.sessions,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ersmesh_bridge_viewers", Help: "Browser sockets connected now.",
		}, func() float64 {
			b.mu.Lock()
			defer b.mu.Unlock()
			return float64(len(b.views))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ersmesh_bridge_open_connections", Help: "Browser WebSockets counted against the per-address caps.",
		}, func() float64 { return float64(b.gate.Open()) }),
		b.refused,
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
