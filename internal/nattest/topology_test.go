package nattest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Addresses of the topology in doc.go.
const (
	publicIP     = "203.0.113.1"
	devNATWAN    = "203.0.113.2"
	viewNATWAN   = "203.0.113.3"
	deviceLANIP  = "10.1.0.2"
	viewerLANIP  = "10.2.0.2"
	bridgeHTTP   = publicIP + ":4545"
	turnTLSPort  = 5349
	sharedPort   = 443 // HTTPS and TURN over TLS (tlsmux)
	turnPort     = 3478
	bootstrapTCP = 4001
	bridgeP2P    = 4002
)

// topo is one set of namespaces; names carry a random suffix so parallel
// runs and leftovers of a killed run never collide.
type topo struct {
	t                                       testing.TB
	public, devnat, device, viewnat, viewer string
}

// needRoot skips (or, in CI, fails) when namespaces cannot be made here.
func needRoot(t testing.TB) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "needs root for network namespaces and iptables"
	default:
		for _, tool := range []string{"ip", "iptables"} {
			if _, err := exec.LookPath(tool); err != nil {
				why = "needs " + tool + " (iproute2, iptables)"
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("NAT test cannot run in CI: %s", why)
	}
	t.Skipf("skipping NAT test: %s (runs in CI, CI=true)", why)
}

func run(t testing.TB, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
}

func newTopo(t testing.TB) *topo {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	id := "ersnat" + hex.EncodeToString(b)
	tp := &topo{t: t, public: id + "-pub", devnat: id + "-dnat", device: id + "-dev", viewnat: id + "-vnat", viewer: id + "-view"}
	all := []string{tp.public, tp.devnat, tp.device, tp.viewnat, tp.viewer}
	// Deleting a namespace deletes its interfaces, the veth peers in the
	// others with them, and its iptables rules.
	t.Cleanup(func() {
		for _, ns := range all {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for _, ns := range all {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", tp.public, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", tp.public, "addr", "add", publicIP+"/24", "dev", "br0")
	run(t, "ip", "-n", tp.public, "link", "set", "br0", "up")
	tp.natted(tp.devnat, tp.device, "dnat", devNATWAN, "10.1.0")
	tp.natted(tp.viewnat, tp.viewer, "vnat", viewNATWAN, "10.2.0")
	return tp
}

// natted wires a home network: host ns behind router ns, whose WAN side
// is a port of the public bridge and which masquerades the LAN.
func (tp *topo) natted(router, host, port, wanIP, lan string) {
	t := tp.t
	run(t, "ip", "link", "add", "wan", "netns", router, "type", "veth", "peer", "name", port, "netns", tp.public)
	run(t, "ip", "-n", tp.public, "link", "set", port, "master", "br0", "up")
	run(t, "ip", "-n", router, "addr", "add", wanIP+"/24", "dev", "wan")
	run(t, "ip", "-n", router, "link", "set", "wan", "up")
	run(t, "ip", "link", "add", "lan", "netns", router, "type", "veth", "peer", "name", "eth0", "netns", host)
	run(t, "ip", "-n", router, "addr", "add", lan+".1/24", "dev", "lan")
	run(t, "ip", "-n", router, "link", "set", "lan", "up")
	run(t, "ip", "-n", host, "addr", "add", lan+".2/24", "dev", "eth0")
	run(t, "ip", "-n", host, "link", "set", "eth0", "up")
	run(t, "ip", "-n", host, "route", "add", "default", "via", lan+".1")
	run(t, "ip", "netns", "exec", router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	run(t, "ip", "netns", "exec", router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE")
	// A home router: nothing from the internet gets in unless it answers
	// something from inside.
	run(t, "ip", "netns", "exec", router, "iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	run(t, "ip", "netns", "exec", router, "iptables", "-A", "FORWARD", "-i", "wan", "-j", "DROP")
}

// blockUDP drops every UDP packet to or from the viewer, as a corporate
// firewall that lets only TCP out would.
func (tp *topo) blockUDP() {
	for _, chain := range []string{"OUTPUT", "INPUT"} {
		iface := "-o"
		if chain == "INPUT" {
			iface = "-i"
		}
		run(tp.t, "ip", "netns", "exec", tp.viewer, "iptables", "-A", chain, iface, "eth0", "-p", "udp", "-j", "DROP")
	}
}

// unblockUDP undoes blockUDP.
func (tp *topo) unblockUDP() {
	for _, chain := range []string{"OUTPUT", "INPUT"} {
		iface := "-o"
		if chain == "INPUT" {
			iface = "-i"
		}
		run(tp.t, "ip", "netns", "exec", tp.viewer, "iptables", "-D", chain, iface, "eth0", "-p", "udp", "-j", "DROP")
	}
}

// only443 drops the viewer's TCP to the TURN server's own ports (3478
// and 5349), as a firewall that lets web traffic out and little else
// would: TURN over TLS on 443, beside HTTPS, is what is left.
func (tp *topo) only443() {
	run(tp.t, "ip", "netns", "exec", tp.viewer, "iptables", "-A", "OUTPUT", "-o", "eth0", "-p", "tcp", "-d", publicIP,
		"-m", "multiport", "--dports", fmt.Sprintf("%d,%d", turnPort, turnTLSPort), "-j", "REJECT", "--reject-with", "tcp-reset")
}

// turnTCP adds (op "-A") or removes ("-D") a rule that drops the viewer's
// TCP to the TURN server's ports: the TURN-over-TCP path cut.
func (tp *topo) turnTCP(op string) {
	for _, chain := range []string{"OUTPUT", "INPUT"} {
		iface, dir := "-o", "--dports"
		if chain == "INPUT" {
			iface, dir = "-i", "--sports"
		}
		run(tp.t, "ip", "netns", "exec", tp.viewer, "iptables", op, chain, iface, "eth0", "-p", "tcp",
			"-m", "multiport", dir, fmt.Sprintf("%d,%d", turnPort, turnTLSPort), "-j", "DROP")
	}
}

// blockDeviceToBridge makes the device's router refuse connections to the
// bridge's libp2p port (fast, with a reset, so DHT queries fail at once).
func (tp *topo) blockDeviceToBridge() {
	run(tp.t, "ip", "netns", "exec", tp.devnat, "iptables", "-I", "FORWARD", "-i", "lan", "-d", publicIP,
		"-p", "tcp", "--dport", fmt.Sprint(bridgeP2P), "-j", "REJECT", "--reject-with", "tcp-reset")
}

func (tp *topo) String() string {
	return fmt.Sprintf("namespaces %s %s %s %s %s", tp.public, tp.devnat, tp.device, tp.viewnat, tp.viewer)
}
