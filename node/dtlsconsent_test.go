package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/signalwire"
)

// victim is a UDP socket on loopback standing for a host a hostile viewer
// wants the device to flood: it counts STUN (first byte 0–3) and DTLS
// (20–63) packets that reach it.
type victim struct {
	conn       *net.UDPConn
	stun, dtls atomic.Int64
}

func newVictim(t *testing.T) *victim {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	v := &victim{conn: c}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 2048)
		for {
			n, _, err := c.ReadFrom(b)
			if err != nil {
				return
			}
			switch {
			case n > 0 && b[0] <= 3:
				v.stun.Add(1)
			case n > 0 && b[0] >= 20 && b[0] <= 63:
				v.dtls.Add(1)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return v
}

func (v *victim) addr() *net.UDPAddr { return v.conn.LocalAddr().(*net.UDPAddr) }

// clientHello returns a DTLS 1.2 ClientHello as a browser's DTLS client
// sends it first, with no cookie: what a hostile viewer forges with the
// victim's address as its source.
func clientHello(t *testing.T) []byte {
	t.Helper()
	src, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	c, err := dtls.Client(src, sink.LocalAddr(), &dtls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
		SRTPProtectionProfiles: []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.HandshakeContext(ctx) // never answered: ends with ctx
		c.Close()
	}()
	defer func() { cancel(); <-done }()
	sink.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 2048)
	n, _, err := sink.ReadFrom(b)
	if err != nil || n == 0 || b[0] != 22 {
		t.Fatalf("no ClientHello from the DTLS client: %d bytes, %v", n, err)
	}
	return append([]byte(nil), b[:n]...)
}

// TestDTLSFlightOnlyAfterICEConsent: the device answers a ClientHello
// without DTLS's HelloVerify cookie (SetDTLSInsecureSkipHelloVerify: a
// round trip less for every viewer). The cookie is DTLS's defence against
// a ClientHello forged with someone else's source address drawing the
// server's certificate flight to that address. In WebRTC, ICE consent does
// that job: the device starts DTLS only once a check of a candidate pair
// has been answered with the session's ICE password, and sends DTLS only
// over that pair. A hostile viewer names a victim's address as its
// candidate and forges ClientHellos from it, before and after its own
// session is up: the victim gets the device's connectivity checks and not
// one DTLS packet. The control: the same forged ClientHello sent to a pion
// DTLS server without the cookie and without ICE in front draws its flight
// to the victim, so the probe sees what it looks for.
func TestDTLSFlightOnlyAfterICEConsent(t *testing.T) {
	hello := clientHello(t)

	// The control: no ICE, no cookie.
	ctrl := newVictim(t)
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := dtls.Listen("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, &dtls.Config{Certificates: []tls.Certificate{cert},
		InsecureSkipVerifyHello: true, SRTPProtectionProfiles: []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.(*dtls.Conn).HandshakeContext(ctx)
		c.Close()
	}()
	if _, err := ctrl.conn.WriteTo(hello, ln.Addr()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the control server's flight to the victim", func() bool { return ctrl.dtls.Load() > 0 })
	ln.Close()
	<-served

	// The device.
	tm := newTestMesh(t)
	v := newVictim(t)

	// Before any consent: the victim's address is the viewer's only
	// candidate.
	c, _, device := hostileViewer(t, tm, v, false)
	start := time.Now()
	eventually(t, 10*time.Second, "the device's checks of the victim's address", func() bool { return v.stun.Load() > 0 })
	t.Logf("the device's first check of the victim's address after %v", time.Since(start).Round(time.Millisecond))
	forge(t, v, hello, device, "before any ICE consent")
	c.Reset()

	// With the hostile viewer's own session up (its own candidates too),
	// more ClientHellos forged from the victim.
	_, pc, device := hostileViewer(t, tm, v, true)
	select {
	case <-pc.connected:
	case <-time.After(10 * time.Second):
		t.Fatalf("the hostile viewer's own session did not come up: %s", pc.ConnectionState())
	}
	forge(t, v, hello, device, "with the hostile viewer's session up")
	t.Logf("the victim got %d STUN checks and no DTLS; the control server sent it %d DTLS packets", v.stun.Load(), ctrl.dtls.Load())
}

// forge sends hello from the victim's socket to each of the device's
// addresses, ten times over a second, and fails the test if the victim got
// any DTLS packet by then.
func forge(t *testing.T, v *victim, hello []byte, device []*net.UDPAddr, when string) {
	t.Helper()
	for range 10 {
		for _, a := range device {
			v.conn.WriteTo(hello, a)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := v.dtls.Load(); n > 0 {
		t.Fatalf("%s: the victim got %d DTLS packets from the device", when, n)
	}
}

type hostilePC struct {
	*webrtc.PeerConnection
	connected chan struct{}
}

// hostileViewer joins tm's device as a viewer (a pion peer on loopback)
// that trickles v's address as a candidate, and its own candidates if own.
// It returns the signalling, the peer and the device's loopback candidates.
func hostileViewer(t *testing.T, tm *testMesh, v *victim, own bool) (*signalwire.Conn, *hostilePC, []*net.UDPAddr) {
	t.Helper()
	c, offer := joinForOffer(t, tm, "srtp")
	var device []*net.UDPAddr
	var trickled []webrtc.ICECandidateInit
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		m, err := c.Recv(time.Until(deadline))
		if err != nil {
			break
		}
		if m.Type != "candidate" {
			continue
		}
		var p struct{ Candidate webrtc.ICECandidateInit }
		json.Unmarshal(m.Payload, &p)
		trickled = append(trickled, p.Candidate)
		if f := strings.Fields(p.Candidate.Candidate); len(f) >= 8 && strings.EqualFold(f[2], "udp") && f[4] == "127.0.0.1" {
			var port int
			fmt.Sscan(f[5], &port)
			device = append(device, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		}
	}
	if len(device) == 0 {
		t.Fatal("the device trickled no loopback candidate")
	}
	raw := loopbackPeer(t)
	pc := &hostilePC{raw, make(chan struct{})}
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(pc.connected) })
		}
	})
	if err := pc.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	// Without its own candidates the hostile viewer gets none of the
	// device's either: its checks would reach the device and make a
	// peer-reflexive pair of its own, which is consent for its address.
	if own {
		for _, ic := range trickled {
			pc.AddICECandidate(ic)
		}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc.PeerConnection)
	if err := pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	// The answer names no candidate (its ICE password is the hostile
	// viewer's; the victim knows none and answers no check); the victim's
	// address is trickled, and the viewer's own if own.
	c.Send(signalOf(t, "answer", answer))
	cands := []string{fmt.Sprintf("candidate:1 1 udp 2130706431 127.0.0.1 %d typ host", v.addr().Port)}
	if own {
		for _, l := range strings.Split(pc.LocalDescription().SDP, "\r\n") {
			if strings.HasPrefix(l, "a=candidate:") {
				cands = append(cands, l[2:])
			}
		}
	}
	for _, cand := range cands {
		c.Send(signalOf(t, "candidate", map[string]any{"candidate": map[string]any{"candidate": cand, "sdpMid": "0", "sdpMLineIndex": 0}}))
	}
	return c, pc, device
}

// eventually waits up to d for cond, polling.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no %s within %v", what, d)
		}
	}
}
