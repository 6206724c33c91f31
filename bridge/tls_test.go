package bridge_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/internal/sioclient"
	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/tlscert"
)

// TestServeTLS: with a certificate, the bridge's one port speaks HTTPS:
// the page over HTTP/2 with HSTS, and the ERS protocol's handshake and
// WebSocket over https:// and wss://, which is what EvoStream's player
// does with ersOverSsl: a join there gets the device's offer.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	c, err := tlscert.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	certs, err := tlscert.New(tlscert.Config{CertFile: certFile, KeyFile: keyFile, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer certs.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startDemo(t, demo.Config{TuneBridge: func(c *bridge.Config) {
		c.TLS = certs.TLSConfig()
		c.HSTS = 24 * time.Hour
	}})
	if !strings.HasPrefix(d.Bridge, "https://") {
		t.Fatalf("bridge origin %q, want https://", d.Bridge)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Leaf)
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	resp, err := h2.Get(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<video") {
		t.Errorf("page over HTTPS: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("page served over %s, want HTTP/2.0", resp.Proto)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=86400" {
		t.Errorf("Strict-Transport-Security %q, want max-age=86400", got)
	}

	// The ERS protocol as EvoStream's player speaks it with ersOverSsl.
	h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	sc, err := sioclient.Dial(ctx, d.Bridge, &sioclient.Options{HTTPClient: h1})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := sc.EmitAck(ctx, ersproto.EventJoin, ersproto.JoinArgs("demo", ersproto.Join{StreamName: "sample", Transport: ersproto.TransportSRTP})...); err != nil {
		t.Fatal(err)
	}
	offer, err := sc.NextEvent(ctx, "message")
	if err != nil {
		t.Fatal(err)
	}
	var msg struct{ Type string }
	if len(offer.Args) != 1 || json.Unmarshal(offer.Args[0], &msg) != nil || msg.Type != "offer" {
		t.Errorf("over wss:// got %s %s, want the device's offer", offer.Name, offer.Args)
	}

	// A client that does not trust the certificate gets nowhere.
	if _, err := http.Get(d.URL); err == nil {
		t.Error("an untrusting client fetched the page")
	}
}
