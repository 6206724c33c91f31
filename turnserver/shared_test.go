package turnserver

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/ersmesh/ersmesh/tlsmux"
)

// TestSharedTLSPort: one TLS port carries HTTPS (HTTP/2 and HTTP/1.1 with
// and without ALPN) and TURN over TLS, which relays; a client that never
// finishes its handshake is cut off and holds nothing.
func TestSharedTLSPort(t *testing.T) {
	tc := selfSigned(t)
	tc.NextProtos = []string{"h2", "http/1.1"}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := tlsmux.New(l, tlsmux.Config{TLS: tc, HandshakeTimeout: 500 * time.Millisecond})
	defer mux.Close()
	s, _ := startServer(t, Config{Policy: Policy{AllowPrivate: true}, SharedTLS: mux.TURN()})
	web := &http.Server{TLSConfig: tc, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "page over "+r.Proto)
	})}
	var wg sync.WaitGroup
	wg.Go(func() { web.Serve(mux.HTTP()) })
	defer func() { web.Close(); wg.Wait() }()
	addr := l.Addr().String()

	// TURN URLs name the shared port.
	if urls := s.URLs(""); !containsString(urls, "turns:127.0.0.1:"+strings.Split(addr, ":")[1]+"?transport=tcp") {
		t.Errorf("URLs %v lack the shared port", urls)
	}

	// HTTPS, the browser's way (ALPN h2).
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}} //nolint:gosec // self-signed test cert
	resp, err := hc.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "page over HTTP/2.0" {
		t.Errorf("HTTPS with ALPN answered %q", body)
	}
	// HTTP/1.1 from a client that offers no ALPN.
	c, err := tls.Dial("tcp4", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test cert
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	c.Close()
	if string(body) != "page over HTTP/1.1" {
		t.Errorf("HTTPS without ALPN answered %q", body)
	}

	// TURN over TLS on the same port, relaying to a peer.
	peer := echoPeer(t)
	cr := creds(t, "viewer-shared", time.Hour)
	tlsConn, err := tls.Dial("tcp4", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test cert
	if err != nil {
		t.Fatal(err)
	}
	pc := turn.NewSTUNConn(tlsConn)
	client, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: pc,
		Username: cr.Username, Password: cr.Password, Realm: DefaultRealm, RTO: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { client.Close(); pc.Close() }()
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := client.Allocate()
	if err != nil {
		t.Fatalf("allocate over the shared port: %v", err)
	}
	defer relay.Close()
	if err := roundTrip(relay, peer.LocalAddr(), "hello over 443"); err != nil {
		t.Fatal(err)
	}

	// A connection that never says hello is closed after the handshake
	// timeout.
	idle, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	t0 := time.Now()
	if _, err := idle.Read(make([]byte, 1)); err == nil || time.Since(t0) > 4*time.Second {
		t.Errorf("an idle connection was not cut after the handshake timeout (err %v after %v)", err, time.Since(t0))
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
