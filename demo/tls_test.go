package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/internal/pebbletest"
	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/tlscert"
)

const tlsDomain = "bridge.ersmesh.test"

// TestBrowserOverACMEHTTPS is a bridge on the open internet in small: it
// gets its certificate from an ACME CA (Pebble) through its own HTTPS
// port (TLS-ALPN-01), and Chromium, which resolves the bridge's name to
// 127.0.0.1 and trusts only Pebble's root besides its own, opens
// https://<name>:<port>/?room=<owned room>. The page is a secure context
// that is not localhost, so WebCrypto is there and the owned room plays
// verified; the WHEP player plays there too.
func TestBrowserOverACMEHTTPS(t *testing.T) {
	tlsL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := tlsL.Addr().(*net.TCPAddr).Port
	ca := pebbletest.Start(t, pebbletest.Options{TLSPort: port})
	certs, err := tlscert.New(tlscert.Config{Logger: testutil.Logger(t), ACME: &tlscert.ACME{
		Domains: []string{tlsDomain}, CA: ca.Directory, CARootFile: ca.ServerRootFile, Dir: t.TempDir(),
		HTTPPort: tlscert.Off, TLSPort: port, ListenHost: "127.0.0.1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer certs.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var room string
	d, err := Start(ctx, Config{
		Listener: tlsL, Room: "cam", Logger: testutil.Logger(t),
		TuneBridge: func(c *bridge.Config) {
			c.TLS = certs.TLSConfig()
			c.HSTS = time.Hour
		},
		TuneDevice: func(c *node.Config) {
			room = "cam@" + c.Mesh.ID().String()
			c.Rooms = []string{room}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			t.Errorf("close demo: %v", err)
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for certs.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from Pebble: %v", certs.Ready())
		}
		time.Sleep(100 * time.Millisecond)
	}

	b := browsertest.New(t,
		browsertest.Flag("host-resolver-rules", "MAP "+tlsDomain+" 127.0.0.1"),
		// Trust Pebble's root key and nothing else beyond the system's.
		browsertest.Flag("ignore-certificate-errors-spki-list", ca.RootSPKIHash()+","+ca.IntermediateSPKIHash()),
	)
	origin := "https://" + tlsDomain + ":" + strconv.Itoa(port)
	page := origin + "/?" + url.Values{"room": {room}, "transport": {"srtp"}}.Encode()
	if err := browsertest.Navigate(b, page); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 25*time.Second, `document.body && document.body.dataset.stage === "playing" && document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames > 10`)
	browsertest.WaitFor(b, t, 5*time.Second, `document.getElementById("trust").dataset.state === "verified"`)
	ok, err := browsertest.Eval[bool](b, `window.isSecureContext && location.protocol === "https:" && location.hostname === `+jsString(tlsDomain)+` && !!crypto.subtle`)
	if err != nil || !ok {
		t.Fatalf("the page is not a secure context on %s (%v)", tlsDomain, err)
	}
	// The page's ERS connection went over wss:// to the same name (its
	// session came with the page: no handshake request).
	wsURL := "wss://" + tlsDomain + ":" + strconv.Itoa(port) + "/socket.io/1/websocket/"
	ws, err := browsertest.Eval[bool](b, `(ersPlayer._socket?._ws?.url ?? "").startsWith(`+jsString(wsURL)+`)`)
	if err != nil || !ws {
		t.Errorf("the player's WebSocket is not at %s (%v)", wsURL, err)
	}

	// The WHEP player, over the same HTTPS.
	if err := browsertest.Navigate(b, page+"&protocol=whep"); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 25*time.Second, `document.body && document.body.dataset.stage === "playing" && document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames > 10 && window.isSecureContext`)
}

// TestDemoTLS: `ersmesh demo --tls` serves the page over HTTPS with a
// certificate for localhost and 127.0.0.1.
func TestDemoTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := Start(ctx, Config{Addr: "127.0.0.1:0", TLS: true, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !strings.HasPrefix(d.URL, "https://127.0.0.1:") {
		t.Fatalf("demo URL %q, want https://127.0.0.1:…", d.URL)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(d.Bridge, "https://"), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the demo's certificate is self-signed; checked below
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("demo certificate: %v", err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("page over HTTPS: %s", resp.Status)
	}
}
