package nattest

import (
	"bufio"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/tlscert"
)

func TestMain(m *testing.M) {
	// TestNATHelper is the roles' entry point inside the namespaces, not a
	// test of its own: a normal run leaves it out (the NAT tests start it
	// with -test.run and roleEnv set).
	if os.Getenv(roleEnv) == "" {
		flag.Set("test.skip", "^TestNATHelper$")
	}
	if os.Getenv(roleEnv) != "" {
		// A role inside a namespace: the test that started it checks
		// the outcome; leak checks belong to in-process tests.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// proc is one role running in a namespace.
type proc struct {
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	reports chan json.RawMessage
	logs    *testutil.Buffer
	done    chan struct{}
}

// start runs role in namespace ns. Cleanup stops it (stdin EOF, then
// kill) and, if the test failed, shows its logs.
func start(t testing.TB, ns, role string, env ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^TestNATHelper$", "-test.timeout=5m")
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	p := &proc{name: role, cmd: cmd, reports: make(chan json.RawMessage, 8), logs: &testutil.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.logs
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, reportPrefix); ok {
				p.reports <- json.RawMessage(rest)
			} else {
				p.logs.Write([]byte(line + "\n"))
			}
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s (%s) logs ---\n%s", role, ns, p.logs.String())
		}
	})
	return p
}

// next waits for the role's next report.
func (p *proc) next(t testing.TB, timeout time.Duration, v any) {
	t.Helper()
	select {
	case r := <-p.reports:
		if err := json.Unmarshal(r, v); err != nil {
			t.Fatalf("%s: bad report %s: %v", p.name, r, err)
		}
	case <-p.done:
		t.Fatalf("%s exited before reporting; logs:\n%s", p.name, p.logs.String())
	case <-time.After(timeout):
		t.Fatalf("%s: no report within %v", p.name, timeout)
	}
}

func (p *proc) send(t testing.TB, cmd string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
}

func view(t testing.TB, tp *topo, role string, o viewerOpts) viewerReport {
	t.Helper()
	b, _ := json.Marshal(o)
	v := start(t, tp.viewer, role, viewerEnv+"="+string(b))
	return v.nextView(t)
}

func (v *proc) nextView(t testing.TB) viewerReport {
	t.Helper()
	var r viewerReport
	v.next(t, 120*time.Second, &r)
	if r.Error != "" {
		t.Fatalf("viewer: %s\nlogs:\n%s", r.Error, v.logs.String())
	}
	t.Logf("%s got %d %s over %s/%s (relay protocol %q) %s -> %s %s", v.name,
		r.Packets, r.Codec, r.LocalType, r.LocalProto, r.RelayProtocol, r.LocalAddr, r.RemoteType, r.RemoteAddr)
	return r
}

// TestNATTraversal: a device behind one NAT, a viewer behind another, the
// bootstrap relay, the bridge and TURN on the "internet". The bridge
// reaches the device only through the relay (its NAT lets nothing in), and
// video flows; then, with UDP blocked for the viewer, it flows through
// TURN over TCP.
func TestNATTraversal(t *testing.T) {
	needRoot(t)
	tp := newTopo(t)
	t.Log(tp)

	certs := writeCert(t)
	pub := start(t, tp.public, "public", certEnv+"="+certs)
	var boot struct{ Bootstrap []string }
	pub.next(t, 30*time.Second, &boot)

	// The bridge's libp2p port is closed to the device (a bridge at home
	// that forwards only its HTTP port): the device's own outbound
	// connections cannot carry the bridge's signalling, the relay must.
	tp.blockDeviceToBridge()
	dev := start(t, tp.device, "device", bootstrapEnv+"="+strings.Join(boot.Bootstrap, " "))
	var device struct{ Peer string }
	dev.next(t, 60*time.Second, &device)

	t.Run("relayed signalling", func(t *testing.T) {
		r := view(t, tp, "viewer", viewerOpts{})
		if r.Packets < 100 || !strings.HasPrefix(strings.ToLower(r.Codec), "video/h264") {
			t.Fatalf("viewer got %d packets of %q", r.Packets, r.Codec)
		}
		pub.send(t, "relayed")
		var rel struct{ Relayed, Conns []string }
		pub.next(t, 10*time.Second, &rel)
		found := false
		for _, p := range rel.Relayed {
			found = found || p == device.Peer
		}
		if !found {
			t.Fatalf("the bridge never reached device %s over a relayed connection (relayed: %v; connections now: %q)", device.Peer, rel.Relayed, rel.Conns)
		}
	})

	// The player recovers by itself when its path dies: Chromium plays
	// over UDP, then the viewer's UDP is cut; the player sees ICE fail,
	// joins again and plays through TURN over TCP, with no reload.
	t.Run("Chromium recovers when UDP is cut", func(t *testing.T) {
		b, _ := json.Marshal(viewerOpts{Recover: true})
		v := start(t, tp.viewer, "browser", viewerEnv+"="+string(b))
		before := v.nextView(t)
		if before.RelayProtocol == "tcp" {
			t.Fatalf("Chromium started on TURN over TCP with UDP open")
		}
		tp.blockUDP()
		v.send(t, "cut")
		after := v.nextView(t)
		if after.LocalType != "relay" || after.RelayProtocol != "tcp" {
			t.Fatalf("after the cut Chromium plays over %s with relay protocol %q, want relay over tcp", after.LocalType, after.RelayProtocol)
		}
	})

	t.Run("TURN over TCP with UDP blocked", func(t *testing.T) {
		r := view(t, tp, "viewer", viewerOpts{})
		if r.Packets < 100 {
			t.Fatalf("viewer got %d packets", r.Packets)
		}
		if r.LocalType != "relay" || r.RelayProtocol != "tcp" {
			t.Fatalf("selected local candidate %s with relay protocol %q, want relay over tcp", r.LocalType, r.RelayProtocol)
		}
		if !strings.HasPrefix(r.LocalAddr, publicIP+":") {
			t.Errorf("relay address %s is not the TURN server's", r.LocalAddr)
		}
	})
	t.Run("Chromium through TURN over TCP with UDP blocked", func(t *testing.T) {
		r := view(t, tp, "browser", viewerOpts{})
		if r.LocalType != "relay" || r.RelayProtocol != "tcp" {
			t.Fatalf("Chromium's selected local candidate %s with relay protocol %q, want relay over tcp", r.LocalType, r.RelayProtocol)
		}
	})

	// TURN over TLS (turns:), the certificate checked by the viewer
	// against the bridge's: first on its own port, then, with the TURN
	// ports closed too, on 443 beside HTTPS, the viewer's signalling
	// going over HTTPS and WSS on that same port.
	trust := "SSL_CERT_FILE=" + filepath.Join(certs, "cert.pem")
	t.Run("TURN over TLS with UDP blocked", func(t *testing.T) {
		r := viewWith(t, tp, viewerOpts{TURNTransport: "tls"}, trust)
		if r.Packets < 100 || r.LocalType != "relay" || r.RelayProtocol != "tls" {
			t.Fatalf("%d packets over %s with relay protocol %q, want relay over tls", r.Packets, r.LocalType, r.RelayProtocol)
		}
	})
	t.Run("TURN over TLS on 443 only", func(t *testing.T) {
		tp.only443()
		r := viewWith(t, tp, viewerOpts{TURNTransport: "tls", Bridge: fmt.Sprintf("https://%s:%d", publicIP, sharedPort)}, trust)
		if r.Packets < 100 || r.LocalType != "relay" || r.RelayProtocol != "tls" {
			t.Fatalf("%d packets over %s with relay protocol %q, want relay over tls", r.Packets, r.LocalType, r.RelayProtocol)
		}
	})
	// Chromium, trusting the certificate's key and nothing more, behind
	// the same firewall: TURN over TLS on 443 is its only way.
	t.Run("Chromium through TURN over TLS on 443 only", func(t *testing.T) {
		r := view(t, tp, "browser", viewerOpts{TrustSPKI: spkiHash(t, certs)})
		if r.LocalType != "relay" || r.RelayProtocol != "tls" {
			t.Fatalf("Chromium's selected local candidate %s with relay protocol %q, want relay over tls", r.LocalType, r.RelayProtocol)
		}
	})
}

// viewWith is view with more environment for the viewer.
func viewWith(t testing.TB, tp *topo, o viewerOpts, env ...string) viewerReport {
	t.Helper()
	b, _ := json.Marshal(o)
	v := start(t, tp.viewer, "viewer", append([]string{viewerEnv + "=" + string(b)}, env...)...)
	return v.nextView(t)
}

// spkiHash is the base64 SHA-256 of the public key in dir/cert.pem.
func spkiHash(t testing.TB, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(h[:])
}

// writeCert writes a self-signed certificate for publicIP and its key
// into a fresh directory and returns the directory.
func writeCert(t testing.TB) string {
	t.Helper()
	c, err := tlscert.SelfSigned([]string{publicIP}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	return dir
}

// BenchmarkRelayedSetup times a viewer's setup, from opening the Socket.IO
// session to the first RTP packet, across the NATs of TestNATTraversal:
// the bridge reaches the device only through the relay, and media goes
// the best way ICE finds, or through TURN over UDP, or over TCP. Each
// iteration is a fresh viewer process; the time is measured inside it.
//
// Run (root): go test -run '^$' -bench RelayedSetup -benchtime 5x ./internal/nattest
func BenchmarkRelayedSetup(b *testing.B) {
	needRoot(b)
	tp := newTopo(b)
	pub := start(b, tp.public, "public", certEnv+"="+writeCert(b))
	var boot struct{ Bootstrap []string }
	pub.next(b, 30*time.Second, &boot)
	tp.blockDeviceToBridge()
	dev := start(b, tp.device, "device", bootstrapEnv+"="+strings.Join(boot.Bootstrap, " "))
	var device struct{ Peer string }
	dev.next(b, 60*time.Second, &device)
	for _, c := range []struct {
		name string
		o    viewerOpts
	}{
		{"relayed-signalling/ice", viewerOpts{Packets: 1}},
		{"relayed-signalling/turn-udp", viewerOpts{Packets: 1, Policy: "relay", TURNTransport: "udp"}},
		{"relayed-signalling/turn-tcp", viewerOpts{Packets: 1, Policy: "relay", TURNTransport: "tcp"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			total := 0.0
			for range b.N {
				total += view(b, tp, "viewer", c.o).SetupMs
			}
			b.ReportMetric(total/float64(b.N), "ms/setup")
		})
	}
}

// TestNATICERestart: the path between browser and device is cut for 10 s
// (every UDP packet of the viewer dropped; signalling, over TCP to the
// bridge, goes on). The player restarts ICE through the bridge and plays on
// the same PeerConnection, without a reload. A topology of its own: the
// cut must not leave state behind for TestNATTraversal's checks of which
// path Chromium picks.
func TestNATICERestart(t *testing.T) {
	needRoot(t)
	tp := newTopo(t)
	t.Log(tp)
	pub := start(t, tp.public, "public", certEnv+"="+writeCert(t))
	var boot struct{ Bootstrap []string }
	pub.next(t, 30*time.Second, &boot)
	dev := start(t, tp.device, "device", bootstrapEnv+"="+strings.Join(boot.Bootstrap, " "))
	var device struct{ Peer string }
	dev.next(t, 60*time.Second, &device)

	b, _ := json.Marshal(viewerOpts{Restart: true})
	v := start(t, tp.viewer, "browser", viewerEnv+"="+string(b))
	before := v.nextView(t)
	// Cut the path in use: Chromium sometimes takes TURN over TCP though
	// UDP is open, and then the UDP cut would leave it playing.
	cut, restore := tp.blockUDP, tp.unblockUDP
	if before.RelayProtocol == "tcp" {
		t.Log("Chromium plays over TURN/TCP: cutting the viewer's TCP to the TURN server instead of its UDP")
		cut, restore = func() { tp.turnTCP("-A") }, func() { tp.turnTCP("-D") }
	}
	cut()
	v.send(t, "cut")
	time.Sleep(10 * time.Second)
	restore()
	after := v.nextView(t)
	if !after.SamePC || after.Failover != "restarted" {
		t.Fatalf("after the cut: same PeerConnection %v, failover %q; want the same one, restarted by ICE", after.SamePC, after.Failover)
	}
}
