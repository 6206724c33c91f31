package node

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// mdnsSockets counts this process's UDP sockets bound to the mDNS port.
func mdnsSockets(t *testing.T) int {
	t.Helper()
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/self/net/udp", "/proc/self/net/udp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue // no IPv6
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) > 9 && strings.HasSuffix(fs[1], ":14E9") {
				inodes[fs[9]] = true
			}
		}
		fh.Close()
	}
	fds, err := filepath.Glob("/proc/self/fd/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		l, err := os.Readlink(fd)
		if err == nil && strings.HasPrefix(l, "socket:[") && inodes[strings.Trim(l[len("socket:"):], "[]")] {
			n++
		}
	}
	return n
}

// The device's PeerConnections open no mDNS socket of their own: pion's
// agent would open one per address family per PeerConnection, each joined
// to the multicast group (localnames.go).
func TestPeerConnectionsOpenNoMDNSSocket(t *testing.T) {
	api, err := newWebRTCAPI(true, iceFailedTimeout)
	if err != nil {
		t.Fatal(err)
	}
	before := mdnsSockets(t)
	const n = 4
	for range n {
		pc, _, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
		completeOffer(t, pc) // gathering, where pion's agent would open its resolver
	}
	if got := mdnsSockets(t) - before; got != 0 {
		t.Fatalf("%d PeerConnections opened %d mDNS sockets, want none (one resolver for the device)", n, got)
	}
}

func TestTakeLocalCandidates(t *testing.T) {
	sdp := "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n" +
		"a=candidate:1 1 udp 2122260223 0b7e0d6a-5a7e-4e0e-9d0a-2b0a1c6c1f35.local 51234 typ host generation 0\r\n" +
		"a=candidate:2 1 udp 1686052607 203.0.113.7 51234 typ srflx raddr 0.0.0.0 rport 0\r\n"
	rest, local := takeLocalCandidates(sdp)
	if strings.Contains(rest, ".local") || !strings.Contains(rest, "203.0.113.7") {
		t.Fatalf("rest:\n%s", rest)
	}
	if len(local) != 1 || !strings.HasPrefix(local[0], "candidate:1 ") {
		t.Fatalf("local: %q", local)
	}
	line, err := withAddress(local[0], netip.MustParseAddr("192.168.1.20"))
	if err != nil || candidateAddress(line) != "192.168.1.20" || !strings.HasSuffix(line, "typ host generation 0") {
		t.Fatalf("withAddress: %q %v", line, err)
	}
}

// mdnsChildEnv marks the child process of TestViewersBehindMDNSNames, which
// runs in a network namespace of its own.
const mdnsChildEnv = "ERSMESH_TEST_MDNS_NETNS"

// Viewers that hide their host candidates behind mDNS names, as browsers
// do, are resolved by the device's one resolver: their candidates reach
// pion with addresses, they receive video, and the device holds one mDNS
// socket per address family whatever the number of viewers. It runs in a
// network namespace of its own (root) whose loopback carries multicast, so
// that no mDNS packet leaves the test.
func TestViewersBehindMDNSNames(t *testing.T) {
	if os.Getenv(mdnsChildEnv) == "1" {
		viewersBehindMDNSNames(t)
		return
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root for a network namespace (CI=true)")
		}
		t.Skip("skipping: needs root (os.Geteuid() != 0) for a network namespace; runs in CI")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs unshare (CI=true)")
		}
		t.Skip("skipping: unshare not found (exec.LookPath)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "sh", "-c",
		`ip link set lo up && ip link set lo multicast on && exec "$0" -test.run '^TestViewersBehindMDNSNames$' -test.count 1 -test.v -test.timeout 90s`,
		os.Args[0])
	cmd.Env = append(os.Environ(), mdnsChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestViewersBehindMDNSNames") {
		t.Fatalf("child in its network namespace: %v\n%s", err, out)
	}
}

func viewersBehindMDNSNames(t *testing.T) {
	testViewerHidesAddresses = true
	defer func() { testViewerHidesAddresses = false }()
	tm := newTestMesh(t)
	const n = 3
	var vs []*testViewer
	for i := range n {
		vs = append(vs, newTestViewer(t, tm, "mdns"+string(rune('a'+i)), "srtp", "cam"))
	}
	for _, v := range vs {
		v.waitFor("video frames", 20*time.Second, func() bool { return len(v.frames) >= 3 })
	}
	for _, vi := range tm.dev.Viewers() {
		if vi.RemoteCandidates == 0 {
			t.Errorf("viewer %s: no candidate resolved", vi.Session)
		}
	}
	// Each test viewer's pion holds two (IPv4 and IPv6) to answer for
	// its names; the device one per family, for all of them.
	if got := mdnsSockets(t) - 2*n; got < 1 || got > 2 {
		t.Errorf("the device holds %d mDNS sockets for %d viewers, want one per address family", got, n)
	}
}
