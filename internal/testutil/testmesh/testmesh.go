// Package testmesh starts the mesh set-ups tests need: libp2p hosts on
// loopback, a bootstrap and the hosts that join through it, each closed when
// its test ends. It is apart from package testutil because it imports
// package mesh, whose own tests (and those of the packages mesh imports)
// could then not use testutil.
package testmesh

import (
	"context"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/mesh"
)

// Loopback is where test hosts listen: TCP on 127.0.0.1, any port.
var Loopback = []string{"/ip4/127.0.0.1/tcp/0"}

// Host starts a DHT server host on loopback that bootstraps from boot (nil
// for a bootstrap of its own), with the test's logger, and closes it when
// the test ends. tune, if set, changes its Config first.
func Host(t testing.TB, boot []multiaddr.Multiaddr, tune func(*mesh.Config)) *mesh.Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := mesh.Config{ListenAddrs: Loopback, Bootstrap: boot, Server: true, Logger: testutil.Logger(t)}
	if tune != nil {
		tune(&cfg)
	}
	h, err := mesh.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Bootstrap starts a bootstrap host and returns it with its addresses, for
// the Hosts that join through it.
func Bootstrap(t testing.TB) (*mesh.Host, []multiaddr.Multiaddr) {
	t.Helper()
	h := Host(t, nil, nil)
	return h, h.Addrs()
}
