package turnserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/ersmesh/ersmesh/internal/testutil"
)

const testSecret = "test-secret"

func startServer(t *testing.T, cfg Config) (*Server, *testutil.Buffer) {
	t.Helper()
	logs := &testutil.Buffer{}
	cfg.Secret = testSecret
	cfg.ListenIP = "127.0.0.1"
	if cfg.UDPPort == 0 {
		cfg.UDPPort = Ephemeral
	}
	if cfg.TCPPort == 0 {
		cfg.TCPPort = Ephemeral
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, logs
}

// client is a pion TURN client over UDP or TCP to s.
type client struct {
	*turn.Client
	conn net.PacketConn
}

func dial(t *testing.T, s *Server, network, username, password string) *client {
	t.Helper()
	return dialFrom(t, s, "127.0.0.1", network, username, password)
}

// dialFrom is dial from the loopback address local (UDP only keeps it).
func dialFrom(t *testing.T, s *Server, local, network, username, password string) *client {
	t.Helper()
	var pc net.PacketConn
	var addr string
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", local+":0")
		if err != nil {
			t.Fatal(err)
		}
		pc, addr = c, s.UDPAddr().String()
	case "tcp":
		c, err := net.Dial("tcp4", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		pc, addr = turn.NewSTUNConn(c), s.TCPAddr().String()
	case "tls":
		c, err := tls.Dial("tcp4", s.TLSAddr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test cert
		if err != nil {
			t.Fatal(err)
		}
		pc, addr = turn.NewSTUNConn(c), s.TLSAddr().String()
	}
	tc, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr,
		Conn: pc, Username: username, Password: password, Realm: DefaultRealm,
		RTO: 200 * time.Millisecond,
	})
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	if err := tc.Listen(); err != nil {
		tc.Close()
		pc.Close()
		t.Fatal(err)
	}
	c := &client{Client: tc, conn: pc}
	t.Cleanup(c.close)
	return c
}

func (c *client) close() {
	c.Client.Close()
	c.conn.Close()
}

func creds(t *testing.T, id string, ttl time.Duration) Credentials {
	t.Helper()
	c, err := NewCredentials(testSecret, id, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// peer is a plain UDP socket the relay sends to; it echoes everything.
func echoPeer(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc
}

// roundTrip sends through the relay to the echo peer and waits for the echo.
func roundTrip(relay net.PacketConn, peer net.Addr, msg string) error {
	buf := make([]byte, 1500)
	for try := 0; try < 10; try++ {
		if _, err := relay.WriteTo([]byte(msg), peer); err != nil {
			return err
		}
		relay.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, from, err := relay.ReadFrom(buf)
		if err != nil {
			continue
		}
		if string(buf[:n]) != msg || from.String() != peer.String() {
			return errors.New("echo mismatch: " + string(buf[:n]) + " from " + from.String())
		}
		return nil
	}
	return errors.New("no echo through the relay")
}

func TestRelay(t *testing.T) {
	s, _ := startServer(t, Config{Policy: Policy{AllowPrivate: true}, TLS: selfSigned(t), TLSPort: Ephemeral})
	peer := echoPeer(t)
	for _, network := range []string{"udp", "tcp", "tls"} {
		t.Run(network, func(t *testing.T) {
			cr := creds(t, "viewer-"+network, time.Hour)
			c := dial(t, s, network, cr.Username, cr.Password)
			relay, err := c.Allocate()
			if err != nil {
				t.Fatalf("allocate over %s: %v", network, err)
			}
			defer relay.Close()
			if ra := relay.LocalAddr().(*net.UDPAddr); !ra.IP.Equal(net.IPv4(127, 0, 0, 1)) || ra.Port < DefaultMinRelayPort {
				t.Errorf("relay address %s: want 127.0.0.1 and a port in the relay range", ra)
			}
			if err := roundTrip(relay, peer.LocalAddr(), "hello over "+network); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRelayToPrivatePeerRefusedByDefault(t *testing.T) {
	s, logs := startServer(t, Config{})
	peer := echoPeer(t)
	cr := creds(t, "viewer", time.Hour)
	c := dial(t, s, "udp", cr.Username, cr.Password)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if err := roundTrip(relay, peer.LocalAddr(), "let me in"); err == nil {
		t.Fatal("relayed to a loopback peer with the default policy")
	}
	if !strings.Contains(logs.String(), "refused relay to peer") {
		t.Errorf("no log line for the refusal; logs:\n%s", logs)
	}
}

func TestCredentialsRefused(t *testing.T) {
	s, logs := startServer(t, Config{Policy: Policy{AllowPrivate: true}})
	good := creds(t, "viewer", time.Hour)
	expired, err := NewCredentials(testSecret, "viewer", time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	otherSecret, err := NewCredentials("not-the-secret", "viewer", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tooLong := creds(t, "viewer", 30*24*time.Hour)
	cases := []struct{ name, user, pass string }{
		{"expired", expired.Username, expired.Password},
		{"forged password", good.Username, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"other secret", otherSecret.Username, otherSecret.Password},
		{"extended expiry", tooLong.Username, good.Password},
		{"too far ahead", tooLong.Username, tooLong.Password},
		{"static username", "admin", "admin"},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range cases {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				c := dial(t, s, network, tc.user, tc.pass)
				// Twice from the same client: a refusal must not depend
				// on whether it was logged before.
				for try := range 2 {
					if relay, err := c.Allocate(); err == nil {
						relay.Close()
						t.Fatalf("allocation %d with bad credentials succeeded", try+1)
					}
				}
			})
		}
	}
	if !strings.Contains(logs.String(), "refused credentials") {
		t.Errorf("no log line for refused credentials; logs:\n%s", logs)
	}
	if s.Allocations() != 0 {
		t.Errorf("%d allocations after refusals", s.Allocations())
	}
}

func TestAllocationQuota(t *testing.T) {
	s, logs := startServer(t, Config{Policy: Policy{AllowPrivate: true}, MaxUserAllocations: 2})
	cr := creds(t, "greedy", time.Hour)
	var relays []net.PacketConn
	for i := 0; i < 2; i++ {
		r, err := dial(t, s, "udp", cr.Username, cr.Password).Allocate()
		if err != nil {
			t.Fatalf("allocation %d: %v", i+1, err)
		}
		relays = append(relays, r)
	}
	if r, err := dial(t, s, "tcp", cr.Username, cr.Password).Allocate(); err == nil {
		r.Close()
		t.Fatal("third allocation for the same user beyond a quota of 2")
	}
	if !strings.Contains(logs.String(), "allocation quota") {
		t.Errorf("no log line for the quota; logs:\n%s", logs)
	}
	// Another user is not affected.
	other := creds(t, "modest", time.Hour)
	r, err := dial(t, s, "udp", other.Username, other.Password).Allocate()
	if err != nil {
		t.Fatalf("other user: %v", err)
	}
	r.Close()
	// Freeing an allocation (client Close sends a zero-lifetime Refresh)
	// frees quota.
	relays[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.q.allocations("greedy") > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("quota still counts %d allocations after one closed", s.q.allocations("greedy"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	r, err = dial(t, s, "udp", cr.Username, cr.Password).Allocate()
	if err != nil {
		t.Fatalf("allocation after freeing one: %v", err)
	}
	r.Close()
	relays[1].Close()
}

func TestBandwidthQuota(t *testing.T) {
	const quota = 64 << 10 // bytes per second; burst is the same
	s, logs := startServer(t, Config{Policy: Policy{AllowPrivate: true}, UserBandwidth: quota})
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	cr := creds(t, "hog", time.Hour)
	c := dial(t, s, "udp", cr.Username, cr.Password)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	// Open the permission, then send 16 times the quota as fast as we can.
	if _, err := relay.WriteTo([]byte("x"), sink.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, 1000)
	const sent = 16 * quota / 1000
	for i := 0; i < sent; i++ {
		relay.WriteTo(pkt, sink.LocalAddr())
		if i%64 == 0 {
			time.Sleep(time.Millisecond) // let the kernel drain the socket buffer
		}
	}
	got := 0
	buf := make([]byte, 1500)
	for {
		sink.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := sink.ReadFrom(buf); err != nil {
			break
		}
		got++
	}
	// The burst and what refills while sending get through, far from all.
	if got == 0 || got > sent/2 {
		t.Fatalf("peer got %d of %d packets through a %d B/s quota", got, sent, quota)
	}
	if !strings.Contains(logs.String(), "over bandwidth quota") {
		t.Errorf("no log line for the bandwidth quota; logs:\n%s", logs)
	}
}

func TestTCPRelayAllocationRefused(t *testing.T) {
	s, _ := startServer(t, Config{Policy: Policy{AllowPrivate: true}})
	cr := creds(t, "viewer", time.Hour)
	c := dial(t, s, "tcp", cr.Username, cr.Password)
	if a, err := c.AllocateTCP(); err == nil {
		a.Close()
		t.Fatal("RFC 6062 TCP allocation granted")
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no secret":       {},
		"bad public ip":   {Secret: "s", PublicIP: "turn.example.org"},
		"empty range":     {Secret: "s", MinRelayPort: 5000, MaxRelayPort: 4000},
		"no listener":     {Secret: "s", UDPPort: Off, TCPPort: Off},
		"port over range": {Secret: "s", UDPPort: 70000},
	} {
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestURLs(t *testing.T) {
	s, _ := startServer(t, Config{PublicIP: "203.0.113.9"})
	urls := s.URLs("")
	if len(urls) != 2 || !strings.HasPrefix(urls[0], "turn:203.0.113.9:") || !strings.HasSuffix(urls[0], "?transport=udp") ||
		!strings.HasSuffix(urls[1], "?transport=tcp") {
		t.Fatalf("URLs = %q", urls)
	}
	if u := s.STUNURL(""); !strings.HasPrefix(u, "stun:203.0.113.9:") {
		t.Fatalf("STUNURL = %q", u)
	}
	if u := s.URLs("turn.example.org"); !strings.HasPrefix(u[0], "turn:turn.example.org:") {
		t.Fatalf("URLs(host) = %q", u)
	}
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
