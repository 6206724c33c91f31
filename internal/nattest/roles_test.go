package nattest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/internal/ersviewer"
	"github.com/ersmesh/ersmesh/role"
)

// The roles run as copies of the test binary inside their namespaces:
// TestNATHelper with roleEnv set. They talk to the test over stdio: one
// line "NATTEST <json>" per report on stdout, commands on stdin (EOF
// means stop), logs on stderr.
const (
	roleEnv      = "ERSMESH_NATTEST_ROLE"
	bootstrapEnv = "ERSMESH_NATTEST_BOOTSTRAP"
	viewerEnv    = "ERSMESH_NATTEST_VIEWER" // JSON viewerOpts
	// certEnv names a directory holding cert.pem and key.pem, the
	// public side's certificate for publicIP (self-signed; the viewers
	// trust it through SSL_CERT_FILE).
	certEnv      = "ERSMESH_NATTEST_CERTS"
	reportPrefix = "NATTEST "
	room         = "cam"
	stream       = "sample"
)

type viewerOpts struct {
	Policy string // "" or "relay"
	// Recover (browser): after the first report, wait for "cut" on stdin
	// (the test then breaks the network path) and report again once the
	// player plays over a new connection.
	Recover bool
	// TrustSPKI (browser): the base64 SHA-256 of a public key whose
	// certificates Chromium accepts (the public side's, for turns:).
	TrustSPKI string
	// Restart (browser): after the first report, wait for "cut" on stdin
	// (the test then cuts the path for a while and restores it) and
	// report again once the player plays on the same PeerConnection
	// after an ICE restart.
	Restart bool
	// Packets (viewer): how many RTP packets to wait for; 1 times setup.
	Packets int
	// TURNTransport (viewer): keep only TURN URLs with this transport
	// ("tls": the turns: URLs).
	TURNTransport string
	// Bridge (viewer): the bridge's URL, default http://bridgeHTTP.
	Bridge string
}

// viewerReport is what a viewer saw.
type viewerReport struct {
	Packets                              int
	SetupMs                              float64
	Codec                                string
	LocalType, LocalProto, RelayProtocol string
	LocalAddr, RemoteType, RemoteAddr    string
	TURNUsers                            []string
	Error                                string
	// Browser: the player's failover state, and whether it still plays on
	// the PeerConnection it had before the cut.
	Failover string
	SamePC   bool
}

func report(v any) {
	b, _ := json.Marshal(v)
	fmt.Printf("%s%s\n", reportPrefix, b)
}

func roleLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func TestNATHelper(t *testing.T) {
	switch role := os.Getenv(roleEnv); role {
	case "public":
		runPublic(t)
	case "device":
		runDevice(t)
	case "viewer":
		runViewer(t)
	case "browser":
		runBrowser(t)
	default:
		t.Fatalf("unknown role %q", role)
	}
}

// commands calls f for each line on stdin until EOF.
func commands(f func(cmd string)) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f(strings.TrimSpace(sc.Text()))
	}
}

// runPublic is the internet side: a bootstrap node with its relay, a
// bridge with its TURN server (default relay policy: the viewer's and
// device's public faces are public addresses), all on 203.0.113.1.
func runPublic(t *testing.T) {
	log := roleLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	boot, err := role.NewBootstrap(ctx, role.BootstrapConfig{
		Mesh:   role.MeshConfig{Listen: []string{fmt.Sprintf("/ip4/%s/tcp/%d", publicIP, bootstrapTCP)}},
		Logger: log.With("role", "bootstrap"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer boot.Close()
	// One certificate, as on a real bridge: HTTPS on 443, TURN over TLS
	// on 5349 and, beside HTTPS, on 443; the bridge's own TURN server,
	// with a secret of its own, handed out as STUN too.
	dir := os.Getenv(certEnv)
	br, err := role.NewBridge(ctx, role.BridgeConfig{
		Mesh: role.MeshConfig{
			Listen:    []string{fmt.Sprintf("/ip4/%s/tcp/%d", publicIP, bridgeP2P)},
			Bootstrap: role.Addrs(boot.Host().Addrs()),
		},
		HTTP: fmt.Sprintf("%s:%d", publicIP, sharedPort),
		TLS: role.BridgeTLSConfig{
			Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"),
			TURNOnHTTPS: true,
		},
		TURN: role.BridgeTURNConfig{Run: true, TURNServerConfig: role.TURNServerConfig{
			Listen: publicIP, TLSPort: turnTLSPort,
		}},
		Logger: log.With("role", "bridge"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	bn := br.Host()
	// Which peers the bridge reached over relayed (limited) connections.
	var mu sync.Mutex
	relayed := map[string]bool{}
	bn.Libp2p().Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if c.Stat().Limited {
			mu.Lock()
			relayed[c.RemotePeer().String()] = true
			mu.Unlock()
		}
	}})
	if err := br.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Plain HTTP on 4545 too, for the viewers that need no TLS.
	l, err := net.Listen("tcp", bridgeHTTP)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- br.Bridge().ServePlain(l, br.Bridge().Handler()) }()
	defer func() { br.Close(); <-served }()

	report(map[string]any{"bootstrap": role.Addrs(boot.Host().Addrs())})
	commands(func(cmd string) {
		if cmd == "relayed" {
			mu.Lock()
			var peers []string
			for p := range relayed {
				peers = append(peers, p)
			}
			mu.Unlock()
			var conns []string
			for _, c := range bn.Libp2p().Network().Conns() {
				conns = append(conns, fmt.Sprintf("%s %s limited=%v dir=%v", c.RemotePeer(), c.RemoteMultiaddr(), c.Stat().Limited, c.Stat().Direction))
			}
			report(map[string]any{"relayed": peers, "conns": conns})
		}
	})
}

// runDevice is the camera behind its NAT: it finds out it cannot be
// dialled, holds relay reservations on the bootstrap node and publishes
// its room with the relayed addresses.
func runDevice(t *testing.T) {
	log := roleLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := role.NewDevice(ctx, role.DeviceConfig{
		Mesh: role.MeshConfig{
			Listen:    []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"},
			Bootstrap: strings.Fields(os.Getenv(bootstrapEnv)),
		},
		NATTraversal: true,
		RelayWait:    25 * time.Second,
		Rooms:        []string{room},
		Streams:      []string{stream},
		Logger:       log.With("role", "device"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	report(map[string]any{"peer": d.Host().ID().String()})
	commands(func(string) {})
}

// runViewer plays the room from the bridge and reports how.
func runViewer(t *testing.T) {
	var o viewerOpts
	json.Unmarshal([]byte(os.Getenv(viewerEnv)), &o)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := ersviewer.Options{Bridge: "http://" + bridgeHTTP, Room: room, Stream: stream, Packets: 100, TURNTransport: o.TURNTransport}
	if o.Bridge != "" {
		opts.Bridge = o.Bridge
	}
	if o.Packets > 0 {
		opts.Packets = o.Packets
	}
	if o.Policy == "relay" {
		opts.Policy = webrtc.ICETransportPolicyRelay
	}
	t0 := time.Now()
	res, err := ersviewer.Play(ctx, opts)
	setup := time.Since(t0)
	if err != nil {
		report(viewerReport{Error: err.Error()})
		return
	}
	r := viewerReport{
		Packets: res.Packets, Codec: res.Codec, SetupMs: float64(setup.Microseconds()) / 1000,
		LocalType: res.Local.CandidateType.String(), LocalProto: res.Local.Protocol, RelayProtocol: res.Local.RelayProtocol,
		LocalAddr:  fmt.Sprintf("%s:%d", res.Local.IP, res.Local.Port),
		RemoteType: res.Remote.CandidateType.String(), RemoteAddr: fmt.Sprintf("%s:%d", res.Remote.IP, res.Remote.Port),
	}
	for _, s := range res.TURN {
		r.TURNUsers = append(r.TURNUsers, s.Username)
	}
	report(r)
}

// browserStats reads the selected candidate pair of the player's
// PeerConnection, as chrome://webrtc-internals would show it.
const browserStats = `(async () => {
	const pc = window.ersPlayer && window.ersPlayer.peerConnection;
	if (!pc) return null;
	const stats = await pc.getStats();
	let pair = null;
	stats.forEach((s) => {
		if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
	});
	if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
	if (!pair) return null;
	const l = stats.get(pair.localCandidateId), r = stats.get(pair.remoteCandidateId);
	const v = document.getElementById('video');
	return {
		LocalType: l.candidateType, LocalProto: l.protocol, RelayProtocol: l.relayProtocol || '',
		LocalAddr: (l.address || l.ip) + ':' + l.port, RemoteType: r.candidateType, RemoteAddr: (r.address || r.ip) + ':' + r.port,
		Packets: v.getVideoPlaybackQuality().totalVideoFrames, Codec: 'decoded frames',
		Failover: window.ersPlayer.failover?.state ?? '', SamePC: pc === window.oldPC,
	};
})()`

// runBrowser plays the room in headless Chromium from inside the viewer's
// namespace and reports the selected candidate pair.
func runBrowser(t *testing.T) {
	var o viewerOpts
	json.Unmarshal([]byte(os.Getenv(viewerEnv)), &o)
	var bopts []browsertest.Option
	if o.TrustSPKI != "" {
		bopts = append(bopts, browsertest.Flag("ignore-certificate-errors-spki-list", o.TrustSPKI))
	}
	b := browsertest.New(t, bopts...)
	if err := browsertest.Navigate(b, "http://"+bridgeHTTP+"/?room="+room+"&stream="+stream); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 60*time.Second, `document.body && document.body.dataset.stage === "playing"`)
	browsertest.WaitFor(b, t, 30*time.Second, `(() => {
		const v = document.getElementById("video");
		return v.getVideoPlaybackQuality().totalVideoFrames > 30 && v.currentTime > 1;
	})()`)
	reportStats(t, b)
	if o.Restart {
		if _, err := browsertest.Eval[bool](b, `(window.oldPC = window.ersPlayer.peerConnection, true)`); err != nil {
			t.Fatal(err)
		}
		commands(func(cmd string) {
			if cmd != "cut" {
				return
			}
			// The transport goes down; the player asks the device for
			// ICE restarts through the bridge, which the cut spares, and
			// plays on the same PeerConnection once the path is back.
			browsertest.WaitFor(b, t, 30*time.Second, `window.ersPlayer.failover.state === "restarting-ice"`)
			browsertest.WaitFor(b, t, 60*time.Second, `window.ersPlayer.failover.state === "restarted"`)
			browsertest.WaitFor(b, t, 30*time.Second, `(() => {
				const v = document.getElementById("video");
				if (window.t0 === undefined) window.t0 = v.currentTime;
				return v.currentTime > window.t0 + 1;
			})()`)
			reportStats(t, b)
			for _, l := range browsertest.Console(b) {
				fmt.Fprintln(os.Stderr, "console:", l)
			}
		})
		return
	}
	if !o.Recover {
		return
	}
	if _, err := browsertest.Eval[bool](b, `(window.oldPC = window.ersPlayer.peerConnection, true)`); err != nil {
		t.Fatal(err)
	}
	commands(func(cmd string) {
		if cmd != "cut" {
			return
		}
		// No reload, no user: the player notices the dead path, restarts
		// ICE (which gathers TURN over TCP) or, failing that, joins again,
		// and plays over whatever path is left.
		browsertest.WaitFor(b, t, 90*time.Second, `window.ersPlayer.peerConnection &&
			(window.ersPlayer.peerConnection !== window.oldPC || window.ersPlayer.failover.state === "restarted") &&
			document.body.dataset.stage === "playing"`)
		browsertest.WaitFor(b, t, 30*time.Second, `(() => {
			const v = document.getElementById("video");
			if (window.t0 === undefined) window.t0 = v.currentTime;
			return v.currentTime > window.t0 + 1;
		})()`)
		reportStats(t, b)
		for _, l := range browsertest.Console(b) {
			fmt.Fprintln(os.Stderr, "console:", l)
		}
	})
}

func reportStats(t *testing.T, b context.Context) {
	t.Helper()
	r, err := browsertest.Eval[*viewerReport](b, browserStats)
	if err != nil {
		t.Fatal(err)
	}
	if r == nil {
		t.Fatalf("no selected candidate pair in the player's stats\n%s", browsertest.Describe(b))
	}
	report(r)
}
