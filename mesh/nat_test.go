package mesh

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

const echoProto = "/ersmesh/test/echo/1.0.0"

// relayedVia returns the relays whose circuit addresses n advertises.
func relayedVia(n *Host) []peer.ID {
	var out []peer.ID
	for _, a := range n.Libp2p().Addrs() {
		if !isRelayed(a) {
			continue
		}
		relayPart, _ := multiaddr.SplitFunc(a, func(c multiaddr.Component) bool { return c.Protocol().Code == multiaddr.P_CIRCUIT })
		if ai, err := peer.AddrInfoFromP2pAddr(relayPart); err == nil && !slices.Contains(out, ai.ID) {
			out = append(out, ai.ID)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRelayedSignalling: a device that knows it is behind NAT reserves a
// slot on the relays (its bootstrap peers), advertises circuit addresses,
// and a bridge that knows only those reaches it over a limited connection,
// which carries streams only when the opener allows it. When the device's
// relay goes away it takes another.
func TestRelayedSignalling(t *testing.T) {
	var relays []*Host
	var relayAddrs []multiaddr.Multiaddr
	for range 3 {
		r := newTestHost(t, Config{Server: true, RelayService: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
		relays = append(relays, r)
		relayAddrs = append(relayAddrs, r.Addrs()...)
	}
	dev := newTestHost(t, Config{
		Bootstrap: relayAddrs, NATTraversal: true, Reachability: ReachabilityPrivate,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
	})
	dev.Libp2p().SetStreamHandler(echoProto, func(s network.Stream) {
		io.Copy(s, s)
		s.Close()
	})
	waitFor(t, "two relay reservations", 20*time.Second, func() bool { return len(relayedVia(dev)) == 2 })

	// The bridge gets only the circuit addresses, as from a record of a
	// device whose direct addresses are unreachable behind its NAT.
	bridge := newTestHost(t, Config{Server: true, Bootstrap: relays[0].Addrs()})
	var circuit []multiaddr.Multiaddr
	for _, a := range dev.Libp2p().Addrs() {
		if isRelayed(a) {
			circuit = append(circuit, a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lctx := network.WithAllowLimitedConn(ctx, "test signalling")
	if err := bridge.Libp2p().Connect(lctx, peer.AddrInfo{ID: dev.ID(), Addrs: circuit}); err != nil {
		t.Fatalf("connect over the relay: %v", err)
	}
	conns := bridge.Libp2p().Network().ConnsToPeer(dev.ID())
	if len(conns) == 0 || !conns[0].Stat().Limited {
		t.Fatalf("bridge's connection to the device is not a limited (relayed) one: %v", conns)
	}
	// Without permission libp2p waits for a direct connection (which
	// cannot come: the device's direct addresses are unknown here).
	strict, cancelStrict := context.WithTimeout(ctx, 2*time.Second)
	if s, err := bridge.Libp2p().NewStream(strict, dev.ID(), echoProto); err == nil {
		s.Reset()
		t.Fatal("stream over a limited connection opened without permission")
	} else if !errors.Is(err, network.ErrLimitedConn) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stream without permission: %v", err)
	}
	cancelStrict()
	s, err := bridge.Libp2p().NewStream(lctx, dev.ID(), echoProto)
	if err != nil {
		t.Fatalf("stream over the relay: %v", err)
	}
	s.Write([]byte("hello through the relay"))
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "hello through the relay" {
		t.Fatalf("echo over the relay: %q, %v", got, err)
	}

	// Lose a relay: the device reserves on the third.
	held := relayedVia(dev)
	var lost *Host
	for _, r := range relays {
		if slices.Contains(held, r.ID()) {
			lost = r
			break
		}
	}
	lost.Close()
	waitFor(t, "a reservation on the remaining relay", 30*time.Second, func() bool {
		now := relayedVia(dev)
		return len(now) == 2 && !slices.Contains(now, lost.ID())
	})
}
