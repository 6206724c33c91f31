package mesh

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/internal/ratelog"
)

func TestPrivateAddrsDecide(t *testing.T) {
	ai := func(addrs ...string) []peer.AddrInfo {
		var out []multiaddr.Multiaddr
		for _, a := range addrs {
			out = append(out, multiaddr.StringCast(a))
		}
		return []peer.AddrInfo{{ID: "boot", Addrs: out}}
	}
	for _, tc := range []struct {
		name   string
		p      PrivateAddrs
		boot   []peer.AddrInfo
		listen []string
		want   bool
	}{
		{"lab switch", PrivateAddrsAllow, ai("/ip4/203.0.113.7/tcp/4001"), nil, true},
		{"refuse even on a LAN", PrivateAddrsRefuse, ai("/ip4/192.168.1.2/tcp/4001"), nil, false},
		{"internet bootstrap", PrivateAddrsAuto, ai("/ip4/203.0.113.7/tcp/4001", "/ip4/10.0.0.7/tcp/4001"), nil, false},
		{"LAN bootstrap", PrivateAddrsAuto, ai("/ip4/192.168.1.2/tcp/4001", "/ip6/fd00::2/udp/4001/quic-v1"), nil, true},
		{"loopback bootstrap (tests)", PrivateAddrsAuto, ai("/ip4/127.0.0.1/tcp/4001"), nil, true},
		{"DNS-only bootstrap", PrivateAddrsAuto, ai("/dns4/boot.example.org/tcp/4001"), nil, false},
		{"first bootstrap on every interface", PrivateAddrsAuto, nil, []string{"/ip4/0.0.0.0/tcp/4001"}, false},
		{"first bootstrap on loopback", PrivateAddrsAuto, nil, []string{"/ip4/127.0.0.1/tcp/0"}, true},
	} {
		if got := tc.p.decide(tc.boot, tc.listen); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestGaterRefusesPrivateAddrsOfStrangers: what a stranger's record may
// name, and what the gater does with it.
func TestGaterRefusesPrivateAddrsOfStrangers(t *testing.T) {
	g := newAddrGater(false, []peer.AddrInfo{{ID: "boot"}}, ratelog.NewKeyed[peer.ID](slog.New(slog.DiscardHandler), time.Minute, time.Second, 5, 16))
	for addr, allowed := range map[string]bool{
		"/ip4/203.0.113.7/tcp/4001":         true,
		"/ip6/2001:db8::7/udp/4001/quic-v1": true,
		"/dns4/device.example.org/tcp/4001": true, // resolved, then checked again
		"/ip4/127.0.0.1/tcp/22":             false,
		"/ip4/10.0.0.1/tcp/22":              false,
		"/ip4/172.16.0.1/tcp/80":            false,
		"/ip4/192.168.1.1/tcp/80":           false,
		"/ip4/169.254.169.254/tcp/80":       false,
		"/ip4/100.64.0.1/tcp/80":            false,
		"/ip4/0.0.0.0/tcp/80":               false,
		"/ip6/::1/tcp/22":                   false,
		"/ip6/fd00::1/tcp/22":               false,
		"/ip6/fe80::1/tcp/22":               false,
		"/ip6/::ffff:10.0.0.1/tcp/22":       false,
		"/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWGzyVkaCNR9PnKWBiVAG8fd3Jm98n5JEzkyQwoGkhVd1d/p2p-circuit": false,
	} {
		if got := g.InterceptAddrDial("stranger", multiaddr.StringCast(addr)); got != allowed {
			t.Errorf("dial %s of a stranger: %v, want %v", addr, got, allowed)
		}
	}
	if !g.InterceptAddrDial("boot", multiaddr.StringCast("/ip4/10.0.0.1/tcp/4001")) {
		t.Error("a bootstrap peer's private address refused")
	}
	if n := g.refused.Load(); n != 12 {
		t.Errorf("%d refusals counted, want 12", n)
	}
	if !privateIP(netip.MustParseAddr("0.1.2.3")) {
		t.Error("0.0.0.0/8 not private")
	}
}
