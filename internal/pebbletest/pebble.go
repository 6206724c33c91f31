package pebbletest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// Options configure a CA.
type Options struct {
	// HTTPPort and TLSPort are where the validation authority connects to
	// (on 127.0.0.1) for HTTP-01 and TLS-ALPN-01 challenges.
	HTTPPort, TLSPort int
	// Validity of the certificates issued; default Pebble's (90 days).
	Validity time.Duration
	// Blocked names are refused by the CA (rejectedIdentifier).
	Blocked []string
	// Log receives Pebble's log; default none.
	Log io.Writer
}

// CA is a running Pebble.
type CA struct {
	// Directory is the ACME directory URL.
	Directory string
	// ServerRootFile is a PEM file with the root that signed the ACME
	// server's own HTTPS certificate (what an ACME client must trust to
	// talk to the CA: --acme-ca-root).
	ServerRootFile string
	ca             *ca.CAImpl
}

// Start runs Pebble for the test; it stops when the test ends.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	// Pebble reads these when it starts: validate at once and never refuse
	// a good nonce at random (both are there to test clients' patience,
	// which these tests do not need).
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	os.Setenv("PEBBLE_AUTHZREUSE", "0")
	w := o.Log
	if w == nil {
		w = io.Discard
	}
	logger := log.New(w, "pebble ", log.LstdFlags)

	dnsAddr := startDNS(t)
	store := db.NewMemoryStore()
	for _, b := range o.Blocked {
		if err := store.AddBlockedDomain(b); err != nil {
			t.Fatal(err)
		}
	}
	profiles := map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: uint64(o.Validity / time.Second)}}
	c := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	v := va.New(logger, o.HTTPPort, o.TLSPort, false, dnsAddr, store)
	fe := wfe.New(logger, store, v, c, []string{"pebble.letsencrypt.org"}, false, false, 3, 5)

	serverCert, rootPEM := serverCertificate(t)
	rootFile := filepath.Join(t.TempDir(), "pebble-server-root.pem")
	if err := os.WriteFile(rootFile, rootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: fe.Handler(), ErrorLog: logger,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{serverCert}}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeTLS(l, "", "")
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return &CA{Directory: "https://" + l.Addr().String() + wfe.DirectoryPath, ServerRootFile: rootFile, ca: c}
}

// Root is the root the CA issues certificates under.
func (c *CA) Root() *x509.Certificate { return c.ca.GetRootCert(0).Cert }

// RootPool holds Root, to verify the certificates the CA issued.
func (c *CA) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Root())
	return p
}

// RootSPKIHash is the base64 SHA-256 of Root's public key, as Chromium's
// --ignore-certificate-errors-spki-list takes it.
func (c *CA) RootSPKIHash() string {
	h := sha256.Sum256(c.Root().RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(h[:])
}

// IntermediateSPKIHash is RootSPKIHash for the intermediate that signs
// the certificates (Chromium matches the list against the chain the
// server sends, which ends at the intermediate).
func (c *CA) IntermediateSPKIHash() string {
	h := sha256.Sum256(c.ca.GetIntermediateCert(0).Cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(h[:])
}

// RootPEM is Root in PEM.
func (c *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Root().Raw})
}

// serverCertificate makes a throwaway root and a certificate for 127.0.0.1
// signed by it, for the ACME server's own HTTPS.
func serverCertificate(t testing.TB) (tls.Certificate, []byte) {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	root := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebbletest ACME server root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ = x509.ParseCertificate(rootDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, root, &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})
}

// startDNS answers A queries for every name with 127.0.0.1 and AAAA with
// nothing, over TCP (which Pebble's validation authority uses).
func startDNS(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})
	srv := &dns.Server{Listener: l, Handler: h}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		srv.Shutdown()
		<-done
	})
	return l.Addr().String()
}
