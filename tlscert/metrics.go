package tlscert

import (
	"crypto/x509"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	expiryDesc = prometheus.NewDesc("ersmesh_tls_certificate_expiry_timestamp_seconds",
		"When the certificate served for a name expires (Unix time): alert well before it.", []string{"domain"}, nil)
	failingDesc = prometheus.NewDesc("ersmesh_tls_acme_failing",
		"1 while the last attempt to obtain or renew a name's certificate failed.", []string{"domain"}, nil)
)

// RegisterMetrics registers the certificates' expiry and, with ACME,
// whether each name's last issuance failed.
func (m *Manager) RegisterMetrics(r prometheus.Registerer) error { return r.Register(collector{m}) }

type collector struct{ m *Manager }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- expiryDesc
	ch <- failingDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	if m.cache == nil {
		// Files or self-signed: one certificate, whatever its names.
		cert, err := m.get(nil)
		if err != nil || cert == nil || len(cert.Certificate) == 0 {
			return
		}
		leaf := cert.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return
			}
		}
		name := leaf.Subject.CommonName
		if len(leaf.DNSNames) > 0 {
			name = leaf.DNSNames[0]
		}
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()), name)
		return
	}
	for _, s := range m.Status() {
		if !s.NotAfter.IsZero() {
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(s.NotAfter.Unix()), s.Domain)
		}
		failing := 0.0
		if s.Err != nil {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, failing, s.Domain)
	}
}
