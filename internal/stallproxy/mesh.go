package stallproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/mesh"
)

// Mesh returns a mesh host whose one DHT peer, a bootstrap node, is
// reached through a Proxy: once the test stalls it, every DHT query and
// publication of the host waits on a silent path (until kad-dht's own
// per-request timeout, about ten seconds). Both hosts and the proxy close
// with the test.
func Mesh(t testing.TB, ctx context.Context) (*mesh.Host, *Proxy) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	loopback := []string{"/ip4/127.0.0.1/tcp/0"}
	boot, err := mesh.New(ctx, mesh.Config{ListenAddrs: loopback, Server: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { boot.Close() })
	var port int
	for _, a := range boot.Libp2p().Addrs() {
		if p, err := a.ValueForProtocol(multiaddr.P_TCP); err == nil {
			fmt.Sscan(p, &port)
			break
		}
	}
	p, err := New(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	via, err := multiaddr.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", p.Addr().Port, boot.ID()))
	if err != nil {
		t.Fatal(err)
	}
	h, err := mesh.New(ctx, mesh.Config{ListenAddrs: loopback, Server: true, Bootstrap: []multiaddr.Multiaddr{via}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, p
}
