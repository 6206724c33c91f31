package tlscert_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/tlscert"
)

func writePair(t *testing.T, dir, name string) (certFile, keyFile string, c *tls.Certificate) {
	t.Helper()
	c, err := tlscert.SelfSigned([]string{name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Written beside and renamed, as renewers do, so that a look never
	// sees half a file.
	for _, f := range []struct {
		path string
		data []byte
	}{
		{certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})},
		{keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})},
	} {
		if err := os.WriteFile(f.path+".new", f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".new", f.path); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile, c
}

// served handshakes with the server at addr and returns its certificate.
func served(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "one.ersmesh.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// TestFilesReloaded: replacing the certificate files makes new handshakes
// get the new certificate, without a restart; a broken replacement is
// refused and the previous certificate kept.
func TestFilesReloaded(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, first := writePair(t, dir, "one.ersmesh.test")
	log, logs := testLogger(t)
	m, err := tlscert.New(tlscert.Config{CertFile: certFile, KeyFile: keyFile, ReloadInterval: 50 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	addr := l.Addr().String()
	if got := served(t, addr); !got.Equal(first.Leaf) {
		t.Fatalf("served %v, want the first certificate", got.Subject)
	}

	_, _, second := writePair(t, dir, "two.ersmesh.test")
	waitFor(t, 5*time.Second, "the replaced certificate", func() bool { return served(t, addr).Equal(second.Leaf) })
	if got := gatherTLS(t, m)["ersmesh_tls_certificate_expiry_timestamp_seconds/two.ersmesh.test"]; got != float64(second.Leaf.NotAfter.Unix()) {
		t.Errorf("expiry gauge after the replacement %v, want %v", got, second.Leaf.NotAfter.Unix())
	}

	// A key that does not belong to the certificate: refused, logged,
	// the second certificate still served.
	other, _ := tlscert.SelfSigned([]string{"three.ersmesh.test"}, time.Hour)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the broken pair to be logged", func() bool { return strings.Contains(logs.String(), "do not load") })
	if got := served(t, addr); !got.Equal(second.Leaf) {
		t.Errorf("after a broken replacement, served %v, want the second certificate", got.Subject)
	}
}

func TestFilesMissing(t *testing.T) {
	_, err := tlscert.New(tlscert.Config{CertFile: filepath.Join(t.TempDir(), "none.pem"), KeyFile: "none.key"})
	if err == nil || !strings.Contains(err.Error(), "none.pem") {
		t.Errorf("missing files: err %v, want one naming the file", err)
	}
}

func TestSelfSigned(t *testing.T) {
	m, err := tlscert.New(tlscert.Config{SelfSigned: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if _, err := net.ResolveTCPAddr("tcp", l.Addr().String()); err != nil {
		t.Error(err)
	}
}

func TestOneSource(t *testing.T) {
	if _, err := tlscert.New(tlscert.Config{}); err == nil {
		t.Error("no source: no error")
	}
	if _, err := tlscert.New(tlscert.Config{SelfSigned: []string{"x"}, ACME: &tlscert.ACME{Domains: []string{"x"}}}); err == nil {
		t.Error("two sources: no error")
	}
}
