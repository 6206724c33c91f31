package node

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var viewersDesc = prometheus.NewDesc("ersmesh_device_viewers",
	"Viewer sessions now, by transport (fmp4, srtp) and whether the viewer offered (whep) or the device did (ers).",
	[]string{"transport", "flow"}, nil)

var sentDesc = prometheus.NewDesc("ersmesh_device_stream_sent_bytes_total",
	"Media bytes sent to each stream's viewers (RTP packets, fmp4 records).",
	[]string{"stream"}, nil)

var framesDesc = prometheus.NewDesc("ersmesh_device_stream_frames_total",
	"Video frames read from each stream's source (and fanned out to its viewers).",
	[]string{"stream"}, nil)

var (
	batchedDesc = prometheus.NewDesc("ersmesh_device_udp_batched_datagrams_total",
		"UDP datagrams the viewers' PeerConnections sent in batches (an srtp viewer's frame, the packets one NACK asks for).", nil, nil)
	batchSendsDesc = prometheus.NewDesc("ersmesh_device_udp_batch_sends_total",
		"System calls (sendmmsg, each message possibly a UDP GSO run) that sent the batched datagrams.", nil, nil)
)

var (
	streamsDesc = prometheus.NewDesc("ersmesh_device_signalling_streams",
		"Signalling streams from bridges open now, joining or serving.", nil, nil)
	refusedDesc = prometheus.NewDesc("ersmesh_device_signalling_streams_refused_total",
		"New signalling streams reset over a limit: per_peer (streams open from that bridge), total (on this device), rate (that bridge's token bucket).",
		[]string{"limit"}, nil)
	trustRefusedDesc = prometheus.NewDesc("ersmesh_device_trust_refused_total",
		"Viewers or bridge inputs refused on grounds of trust: wrong_proof (room secret), backoff (proofs refused while a room or bridge backs off after wrong ones), answer (an answer unlike the offer, or with a fingerprint other than the proven one), dtls_certificate (the negotiated certificate is not the proven one), ice_server and ice_candidate (a bridge named a loopback, private or link-local address).",
		[]string{"reason"}, nil)
	unconnectedDesc = prometheus.NewDesc("ersmesh_device_sessions_unconnected_ended_total",
		"Viewer sessions ended because the viewer had not connected within the unconnected timeout.", nil, nil)
	talkbackDesc = prometheus.NewDesc("ersmesh_device_talkback_spurts_total",
		"Talk spurts from viewers: started (the sink heard it), refused (no room secret proven), busy (another viewer held the floor).",
		[]string{"result"}, nil)
	relayViewersDesc = prometheus.NewDesc("ersmesh_device_relay_viewers",
		"Relay-capable viewers now, by depth in the relay tree (1: served by the device).",
		[]string{"depth"}, nil)
	relayDirectDesc = prometheus.NewDesc("ersmesh_device_direct_viewers",
		"Viewer sessions the device serves itself, counted against --max-viewers and --uplink-budget.", nil, nil)
	relayReportsDesc = prometheus.NewDesc("ersmesh_device_relay_reports_total",
		"Children's reports about their relaying parent (docs/relay.md); banned: parents that altered, dropped or replayed units.",
		[]string{"kind"}, nil)
)

// collector reads the device's state when Prometheus asks, so counting
// costs nothing on the media path.
type collector struct{ d *Device }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- viewersDesc
	ch <- framesDesc
	ch <- sentDesc
	ch <- streamsDesc
	ch <- refusedDesc
	ch <- unconnectedDesc
	ch <- trustRefusedDesc
	ch <- talkbackDesc
	ch <- batchedDesc
	ch <- batchSendsDesc
	ch <- relayViewersDesc
	ch <- relayDirectDesc
	ch <- relayReportsDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counts := map[[2]string]int{}
	for _, v := range c.d.Viewers() {
		flow := "ers"
		if v.Answering {
			flow = "whep"
		}
		counts[[2]string{v.Transport, flow}]++
	}
	for _, t := range []string{"fmp4", "srtp"} {
		for _, f := range []string{"ers", "whep"} {
			ch <- prometheus.MustNewConstMetric(viewersDesc, prometheus.GaugeValue, float64(counts[[2]string{t, f}]), t, f)
		}
	}
	for name, s := range c.d.cfg.Streams {
		ch <- prometheus.MustNewConstMetric(framesDesc, prometheus.CounterValue, float64(s.Frames()), name)
		ch <- prometheus.MustNewConstMetric(sentDesc, prometheus.CounterValue, float64(s.Sent()), name)
	}
	ls := c.d.LimitStats()
	ch <- prometheus.MustNewConstMetric(streamsDesc, prometheus.GaugeValue, float64(ls.Streams))
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(ls.RefusedPeerStreams), "per_peer")
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(ls.RefusedStreams), "total")
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(ls.RefusedRate), "rate")
	ch <- prometheus.MustNewConstMetric(unconnectedDesc, prometheus.CounterValue, float64(ls.UnconnectedEnded))
	for reason, n := range c.d.TrustRefusals() {
		ch <- prometheus.MustNewConstMetric(trustRefusedDesc, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(talkbackDesc, prometheus.CounterValue, float64(c.d.talk.spurts.Load()), "started")
	ch <- prometheus.MustNewConstMetric(talkbackDesc, prometheus.CounterValue, float64(c.d.talk.refused.Load()), "refused")
	ch <- prometheus.MustNewConstMetric(talkbackDesc, prometheus.CounterValue, float64(c.d.talk.busy.Load()), "busy")
	datagrams, sends := c.d.batches.Load()
	ch <- prometheus.MustNewConstMetric(batchedDesc, prometheus.CounterValue, float64(datagrams))
	ch <- prometheus.MustNewConstMetric(batchSendsDesc, prometheus.CounterValue, float64(sends))
	depths := map[int]int{}
	for _, r := range c.d.RelayTree() {
		depths[r.Depth]++
	}
	for d, n := range depths {
		ch <- prometheus.MustNewConstMetric(relayViewersDesc, prometheus.GaugeValue, float64(n), strconv.Itoa(d))
	}
	ch <- prometheus.MustNewConstMetric(relayDirectDesc, prometheus.GaugeValue, float64(c.d.DirectViewers()))
	ch <- prometheus.MustNewConstMetric(relayReportsDesc, prometheus.CounterValue, float64(c.d.relayReports.Load()), "reported")
	ch <- prometheus.MustNewConstMetric(relayReportsDesc, prometheus.CounterValue, float64(c.d.relayBans.Load()), "banned")
}

// RegisterMetrics exposes the device's viewers, its streams and its
// published rooms.
func (d *Device) RegisterMetrics(reg prometheus.Registerer) error {
	if err := reg.Register(collector{d}); err != nil {
		return err
	}
	return d.publisher.RegisterMetrics(reg)
}
