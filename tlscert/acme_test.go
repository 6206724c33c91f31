package tlscert_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ersmesh/ersmesh/internal/pebbletest"
	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/tlscert"
)

const testDomain = "bridge.ersmesh.test"

// server is a minimal stand-in for the bridge: the Manager's TLS config on
// one listener, its HTTP handler on the other.
type server struct {
	httpL, tlsL net.Listener
	httpPort    int
	tlsPort     int
}

func listen(t *testing.T) (net.Listener, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l, l.Addr().(*net.TCPAddr).Port
}

func newServer(t *testing.T) *server {
	s := &server{}
	s.httpL, s.httpPort = listen(t)
	s.tlsL, s.tlsPort = listen(t)
	return s
}

func (s *server) serve(t *testing.T, m *tlscert.Manager) {
	t.Helper()
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			// Echo, for the redirected POST.
			io.Copy(w, io.LimitReader(r.Body, 1<<10))
			return
		}
		io.WriteString(w, "hello over "+r.Proto)
	})
	https := &http.Server{Handler: hello, TLSConfig: m.TLSConfig()}
	plain := &http.Server{Handler: m.HTTPHandler(s.tlsPort)}
	var wg sync.WaitGroup
	wg.Go(func() { https.ServeTLS(s.tlsL, "", "") })
	wg.Go(func() { plain.Serve(s.httpL) })
	t.Cleanup(func() {
		https.Close()
		plain.Close()
		wg.Wait()
	})
}

// client dials every name at 127.0.0.1 and trusts roots only.
func client(roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func testLogger(t *testing.T) (*slog.Logger, *testutil.Buffer) {
	var b testutil.Buffer
	return slog.New(slog.NewTextHandler(io.MultiWriter(&b, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo})), &b
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func status(m *tlscert.Manager, domain string) tlscert.Status {
	for _, s := range m.Status() {
		if s.Domain == domain {
			return s
		}
	}
	return tlscert.Status{}
}

// fetch GETs url and returns the body and the certificate served.
func fetch(t *testing.T, c *http.Client, url string) (string, *x509.Certificate) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var leaf *x509.Certificate
	if resp.TLS != nil {
		leaf = resp.TLS.PeerCertificates[0]
	}
	return string(body), leaf
}

func testACME(t *testing.T, challenge string) {
	s := newServer(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: s.httpPort, TLSPort: s.tlsPort})
	log, logs := testLogger(t)
	dir := t.TempDir()
	a := &tlscert.ACME{
		Domains: []string{testDomain}, Email: "ops@ersmesh.test", CA: ca.Directory, CARootFile: ca.ServerRootFile,
		Dir: dir, HTTPPort: s.httpPort, TLSPort: s.tlsPort, ListenHost: "127.0.0.1",
	}
	// Each run allows one challenge type only, so that the other cannot
	// be what made it pass.
	switch challenge {
	case "http-01":
		a.TLSPort = tlscert.Off
	case "tls-alpn-01":
		a.HTTPPort = tlscert.Off
	}
	m, err := tlscert.New(tlscert.Config{ACME: a, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s.serve(t, m)
	waitFor(t, 60*time.Second, "a certificate from Pebble", func() bool { return !status(m, testDomain).NotAfter.IsZero() })
	if err := m.Ready(); err != nil {
		t.Fatalf("Ready after issuance: %v", err)
	}

	c := client(ca.RootPool())
	body, leaf := fetch(t, c, "https://"+testDomain+":"+strconv.Itoa(s.tlsPort)+"/")
	if body != "hello over HTTP/2.0" {
		t.Errorf("HTTPS answered %q, want hello over HTTP/2.0", body)
	}
	if err := leaf.VerifyHostname(testDomain); err != nil {
		t.Errorf("served certificate: %v", err)
	}
	// The certificate chains to Pebble's root (the client checked that
	// already; this says which CA it was).
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.RootPool(), DNSName: testDomain, Intermediates: intermediates(t, c, s.tlsPort)}); err != nil {
		t.Errorf("certificate does not chain to Pebble's root: %v", err)
	}
	if !strings.Contains(logs.String(), "certificate obtained") {
		t.Errorf("no 'certificate obtained' in the log")
	}
	// The account key and the certificate are kept under the directory.
	var keys, certs int
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		switch {
		case strings.HasSuffix(p, ".key"):
			keys++
		case strings.HasSuffix(p, ".crt"):
			certs++
		}
		return nil
	})
	if keys < 2 || certs < 1 {
		t.Errorf("directory holds %d keys and %d certificates, want the account key, the certificate's key and the certificate", keys, certs)
	}

	// Port 80: everything but challenges goes to HTTPS, path and query kept.
	resp, err := c.Get("http://" + testDomain + ":" + strconv.Itoa(s.httpPort) + "/whep/room?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "https://" + testDomain + ":" + strconv.Itoa(s.tlsPort) + "/whep/room?x=1"
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP answered %d %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// A POST to port 80 (a device registering with ersport=80) is
	// redirected with its body to HTTPS.
	follow := client(ca.RootPool())
	follow.CheckRedirect = nil
	resp, err = follow.Post("http://"+testDomain+":"+strconv.Itoa(s.httpPort)+"/ersmesh/register", "application/octet-stream", strings.NewReader("signed record"))
	if err != nil {
		t.Fatal(err)
	}
	echoed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Request.URL.Scheme != "https" || string(echoed) != "signed record" {
		t.Errorf("POST to port 80 ended at %s with %q, want HTTPS with the body", resp.Request.URL, echoed)
	}

	// A restart takes the certificate from the directory instead of asking
	// the CA again.
	m.Close()
	m2, err := tlscert.New(tlscert.Config{ACME: a, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	waitFor(t, 10*time.Second, "the stored certificate", func() bool { return status(m2, testDomain).NotAfter.Equal(leaf.NotAfter) })
}

func intermediates(t *testing.T, c *http.Client, port int) *x509.CertPool {
	resp, err := c.Get("https://" + testDomain + ":" + strconv.Itoa(port) + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	p := x509.NewCertPool()
	for _, c := range resp.TLS.PeerCertificates[1:] {
		p.AddCert(c)
	}
	return p
}

func TestACMEHTTP01(t *testing.T)    { testACME(t, "http-01") }
func TestACMETLSALPN01(t *testing.T) { testACME(t, "tls-alpn-01") }

// TestACMERenewal: with certificates that live 30 s, the Manager renews
// one before it expires, without a restart, and serves the new one.
func TestACMERenewal(t *testing.T) {
	s := newServer(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: s.httpPort, TLSPort: s.tlsPort, Validity: 30 * time.Second})
	log, logs := testLogger(t)
	m, err := tlscert.New(tlscert.Config{Logger: log, ACME: &tlscert.ACME{
		Domains: []string{testDomain}, CA: ca.Directory, CARootFile: ca.ServerRootFile, Dir: t.TempDir(),
		HTTPPort: s.httpPort, TLSPort: s.tlsPort, ListenHost: "127.0.0.1", RenewCheckInterval: time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s.serve(t, m)
	waitFor(t, 60*time.Second, "the first certificate", func() bool { return !status(m, testDomain).NotAfter.IsZero() })
	c := client(ca.RootPool())
	url := "https://" + testDomain + ":" + strconv.Itoa(s.tlsPort) + "/"
	_, first := fetch(t, c, url)
	var second *x509.Certificate
	waitFor(t, 40*time.Second, "a renewed certificate served", func() bool {
		c.CloseIdleConnections()
		_, second = fetch(t, c, url)
		return second.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	// Pebble dates a certificate from its issuance.
	if !second.NotBefore.Before(first.NotAfter) {
		t.Errorf("renewed only after the first certificate expired (%v, renewed %v)", first.NotAfter, second.NotBefore)
	}
	if !second.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %v, not after the first's %v", second.NotAfter, first.NotAfter)
	}
	if !strings.Contains(logs.String(), "renewal=true") {
		t.Errorf("the log does not tell of a renewal")
	}
}

// TestACMERefused: the CA refuses one of two names. The error names the
// domain and quotes the CA; the other name is issued and served, and the
// refused one fails its handshakes without bringing anything down.
func TestACMERefused(t *testing.T) {
	const refused = "refused.ersmesh.test"
	s := newServer(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: s.httpPort, TLSPort: s.tlsPort, Blocked: []string{refused}})
	log, logs := testLogger(t)
	m, err := tlscert.New(tlscert.Config{Logger: log, ACME: &tlscert.ACME{
		Domains: []string{testDomain, refused}, CA: ca.Directory, CARootFile: ca.ServerRootFile, Dir: t.TempDir(),
		HTTPPort: s.httpPort, TLSPort: s.tlsPort, ListenHost: "127.0.0.1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s.serve(t, m)
	waitFor(t, 60*time.Second, "the refusal", func() bool { return status(m, refused).Err != nil })
	err = status(m, refused).Err
	if !strings.Contains(err.Error(), refused) || !strings.Contains(err.Error(), "rejectedIdentifier") {
		t.Errorf("error %q does not name the domain and the CA's answer (rejectedIdentifier)", err)
	}
	if !strings.Contains(logs.String(), "domain="+refused) {
		t.Errorf("the refusal is not logged with its domain")
	}
	waitFor(t, 60*time.Second, "the other name's certificate", func() bool { return !status(m, testDomain).NotAfter.IsZero() })
	c := client(ca.RootPool())
	if body, _ := fetch(t, c, "https://"+testDomain+":"+strconv.Itoa(s.tlsPort)+"/"); !strings.HasPrefix(body, "hello") {
		t.Errorf("HTTPS for the issued name answered %q", body)
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready with one certificate held: %v", err)
	}
	// The refused name: the handshake fails, the server stays.
	if _, err := c.Get("https://" + refused + ":" + strconv.Itoa(s.tlsPort) + "/"); err == nil {
		t.Errorf("HTTPS for the refused name succeeded")
	}
	if body, _ := fetch(t, c, "https://"+testDomain+":"+strconv.Itoa(s.tlsPort)+"/"); !strings.HasPrefix(body, "hello") {
		t.Errorf("after a failed handshake, HTTPS answered %q", body)
	}

	// Monitoring sees the same: one name failing, the other's expiry.
	got := gatherTLS(t, m)
	if got["ersmesh_tls_acme_failing/"+refused] != 1 || got["ersmesh_tls_acme_failing/"+testDomain] != 0 {
		t.Errorf("failing gauges %v, want 1 for %s and 0 for %s", got, refused, testDomain)
	}
	if exp := got["ersmesh_tls_certificate_expiry_timestamp_seconds/"+testDomain]; exp != float64(status(m, testDomain).NotAfter.Unix()) {
		t.Errorf("expiry gauge %v, want %v", exp, status(m, testDomain).NotAfter.Unix())
	}
	if _, ok := got["ersmesh_tls_certificate_expiry_timestamp_seconds/"+refused]; ok {
		t.Errorf("an expiry for the refused name, which has no certificate")
	}
}

// gatherTLS returns the Manager's metrics as name/domain → value.
func gatherTLS(t *testing.T, m *tlscert.Manager) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := m.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			out[mf.GetName()+"/"+metric.GetLabel()[0].GetValue()] = metric.GetGauge().GetValue()
		}
	}
	return out
}
