package role

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/tlscert"
	"github.com/ersmesh/ersmesh/turnserver"
)

// TestTURNCertReloaded: `ersmesh turn --turn-cert` serves TURN over TLS
// with the files' certificate and takes a replaced pair without a
// restart, as the bridge's HTTPS does.
func TestTURNCertReloaded(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(name string) *x509.Certificate {
		c, err := tlscert.SelfSigned([]string{name}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		os.WriteFile(keyFile+".new", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
		os.WriteFile(certFile+".new", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600)
		os.Rename(keyFile+".new", keyFile)
		os.Rename(certFile+".new", certFile)
		return c.Leaf
	}
	first := write("turn-one.ersmesh.test")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := NewTURN(ctx, TURNConfig{TURNServerConfig: TURNServerConfig{
		Secret: "s", Listen: "127.0.0.1", Port: turnserver.Ephemeral, TLSPort: turnserver.Ephemeral,
		Cert: certFile, Key: keyFile, CertReload: 50 * time.Millisecond,
	}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	served := func() *x509.Certificate {
		c, err := tls.Dial("tcp", tr.Server().TLSAddr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // comparing the certificate served
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	if !served().Equal(first) {
		t.Fatal("TURN over TLS does not serve the --turn-cert certificate")
	}
	second := write("turn-two.ersmesh.test")
	deadline := time.Now().Add(10 * time.Second)
	for !served().Equal(second) {
		if time.Now().After(deadline) {
			t.Fatal("the replaced certificate was not served within 10 s")
		}
		time.Sleep(250 * time.Millisecond)
	}
}
