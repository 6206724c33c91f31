package mesh

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/room"
)

// loopback is where every test node listens, TCP and QUIC as in production.
var loopback = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

func newTestHost(t *testing.T, cfg Config) *Host {
	t.Helper()
	if cfg.ListenAddrs == nil {
		cfg.ListenAddrs = loopback
	}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// testMesh starts a bootstrap node and n bridges (DHT servers).
func testMesh(t *testing.T, bridges int) (boot *Host, bs []*Host) {
	t.Helper()
	boot = newTestHost(t, Config{Server: true})
	for range bridges {
		bs = append(bs, newTestHost(t, Config{Server: true, Bootstrap: boot.Addrs()}))
	}
	return boot, bs
}

func TestPublishResolveExpire(t *testing.T) {
	ctx := t.Context()
	boot, bridges := testMesh(t, 2)
	// A device reachable enough to be a DHT server: once it stops, the
	// others still have it in their routing tables, the slow case for
	// lookups.
	dev := newTestHost(t, Config{Server: true, Bootstrap: boot.Addrs()})

	const ttl = 3 * time.Second
	pub, err := dev.Publish(ctx, []string{"frontdoor"}, ttl)
	if err != nil {
		t.Fatal(err)
	}

	resolvers := make([]*Resolver, len(bridges))
	for i, b := range bridges {
		resolvers[i] = NewResolver(b, ResolverOptions{CacheTTL: time.Second, NegativeTTL: 100 * time.Millisecond})
		start := time.Now()
		info, err := resolvers[i].Resolve(ctx, "frontdoor")
		if err != nil {
			t.Fatalf("bridge %d: %v", i, err)
		}
		// Speed is for the benchmarks; here it is only reported.
		t.Logf("bridge %d resolved in %s", i, time.Since(start))
		if info.ID != dev.ID() || len(info.Addrs) == 0 {
			t.Fatalf("bridge %d resolved %v, want %s with addresses", i, info, dev.ID())
		}
		if len(b.Libp2p().Peerstore().Addrs(dev.ID())) == 0 {
			t.Fatalf("bridge %d: device addresses not in the peerstore", i)
		}
		// The bridge can reach the device with what it found.
		if err := b.Libp2p().Connect(ctx, info); err != nil {
			t.Fatalf("bridge %d cannot dial the device: %v", i, err)
		}
	}

	// Many viewers asking at once share one query and one answer.
	fresh := NewResolver(bridges[0], ResolverOptions{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			info, err := fresh.Resolve(ctx, "frontdoor")
			if err != nil || info.ID != dev.ID() {
				t.Errorf("concurrent Resolve = %v, %v", info, err)
			}
		})
	}
	wg.Wait()
	if st := fresh.Stats(); st.Queries != 1 || st.Hits+st.Shared != 19 {
		t.Errorf("20 concurrent lookups: %+v, want 1 query shared or cached by the 19 others", st)
	}

	start := time.Now()
	if _, err := resolvers[0].Resolve(ctx, "nobody-here"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown room: %v, want ErrNotFound", err)
	}
	t.Logf("miss took %s", time.Since(start))
	if _, err := resolvers[0].Resolve(ctx, "bad name"); !errors.Is(err, room.ErrBadName) {
		t.Fatalf("bad name: %v, want room.ErrBadName", err)
	}

	// Records outlive their ttl while the device runs: it republishes.
	time.Sleep(ttl + 500*time.Millisecond)
	resolvers[0].Forget("frontdoor")
	if info, err := resolvers[0].Resolve(ctx, "frontdoor"); err != nil || info.ID != dev.ID() {
		t.Fatalf("after the first record expired: %v, %v; want a republished record", info, err)
	}

	// The device goes away. Its record stays valid until it expires.
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	resolvers[1].Forget("frontdoor")
	if info, err := resolvers[1].Resolve(ctx, "frontdoor"); err != nil || info.ID != dev.ID() {
		t.Fatalf("right after the device stopped: %v, %v; want its still valid record", info, err)
	}
	for _, r := range resolvers {
		deadline := stopped.Add(ttl + 3*time.Second)
		for {
			_, err := r.Resolve(ctx, "frontdoor")
			if errors.Is(err, ErrNotFound) {
				break
			}
			if err != nil {
				t.Fatalf("while waiting for expiry: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("room still resolves %s after its device stopped", time.Since(stopped))
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("room gone %s after its device stopped", time.Since(stopped))
	}
}

func TestOwnedRoom(t *testing.T) {
	ctx := t.Context()
	boot, bridges := testMesh(t, 1)
	res := NewResolver(bridges[0], ResolverOptions{})
	// Devices behind NAT run the DHT as clients.
	owner := newTestHost(t, Config{Bootstrap: boot.Addrs()})
	other := newTestHost(t, Config{Bootstrap: boot.Addrs()})

	owned := "cam@" + owner.ID().String()
	pub, err := owner.Publish(ctx, []string{owned, "lobby"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, r := range []string{owned, "lobby"} {
		info, err := res.Resolve(ctx, r)
		if err != nil || info.ID != owner.ID() {
			t.Fatalf("Resolve(%q) = %v, %v; want the owner %s", r, info, err, owner.ID())
		}
	}

	// Another device cannot publish the owned room...
	if _, err := other.Publish(ctx, []string{owned}, time.Minute); !errors.Is(err, room.ErrNotOwner) {
		t.Fatalf("publishing someone else's room: %v, want room.ErrNotOwner", err)
	}
	// ...but it can take over an open room, as with ERS.
	pub2, err := other.Publish(ctx, []string{"lobby"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer pub2.Close()
	res.Forget("lobby")
	if info, err := res.Resolve(ctx, "lobby"); err != nil || info.ID != other.ID() {
		t.Fatalf("open room after a takeover: %v, %v; want %s", info, err, other.ID())
	}
	// Closing the node stops its publishers; closing them after is harmless.
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pub2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Publish(ctx, []string{"lobby"}, time.Minute); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish on a closed node: %v, want ErrClosed", err)
	}

	// A squatter whose own DHT accepts anything still cannot place a
	// record for a room it does not own: every honest node refuses it.
	sq := newSquatter(t, boot.Addrs())
	ghost := "ghost@" + owner.ID().String()
	sq.put(t, ghost)
	// Control: what the squatter puts does reach the mesh when valid.
	sq.put(t, "squatted")
	if _, err := res.Resolve(ctx, "squatted"); err != nil {
		t.Fatalf("the squatter's valid open room: %v", err)
	}
	if _, err := res.Resolve(ctx, ghost); !errors.Is(err, ErrNotFound) {
		t.Fatalf("squatted owned room: %v, want ErrNotFound", err)
	}
	if info, err := res.Resolve(ctx, owned); err != nil || info.ID != owner.ID() {
		t.Fatalf("owned room after the squat attempt: %v, %v", info, err)
	}
}

// acceptAll is a validator that lets a hostile node put anything.
type acceptAll struct{}

func (acceptAll) Validate(string, []byte) error        { return nil }
func (acceptAll) Select(string, [][]byte) (int, error) { return 0, nil }

type squatter struct {
	priv crypto.PrivKey
	dht  *dht.IpfsDHT
}

// newSquatter starts a DHT client that validates nothing, as a hostile node
// would run, and joins it to the mesh.
func newSquatter(t *testing.T, bootstrap []multiaddr.Multiaddr) *squatter {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings(loopback...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	d, err := dht.New(h, dht.Mode(dht.ModeClient), dht.ProtocolPrefix(ProtocolPrefix),
		dht.Validator(record.NamespacedValidator{room.Namespace: acceptAll{}}), dht.DisableProviders())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	infos, _ := peer.AddrInfosFromP2pAddrs(bootstrap...)
	for _, ai := range infos {
		if err := h.Connect(t.Context(), ai); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.RoutingTable().Size() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the squatter did not join the mesh")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &squatter{priv: priv, dht: d}
}

// put signs and puts a record for roomName with no check at all.
func (s *squatter) put(t *testing.T, roomName string) {
	t.Helper()
	rec := &room.Record{Room: roomName, Expires: time.Now().Add(time.Minute), Seq: uint64(time.Now().UnixNano())}
	if err := rec.Sign(s.priv); err != nil {
		t.Fatal(err)
	}
	val, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.dht.PutValue(t.Context(), room.Key(roomName), val); err != nil {
		t.Fatal(err)
	}
}

func TestPublishChecks(t *testing.T) {
	n := newTestHost(t, Config{Server: true, MaxRecordTTL: time.Minute})
	ctx := t.Context()
	// No rooms yet is fine (a device controlled at run time), and costs no
	// DHT query: the node is alone here.
	empty, err := n.Publish(ctx, nil, time.Minute)
	if err != nil {
		t.Errorf("publish no rooms: %v", err)
	} else {
		if err := empty.Add(ctx, "x"); err == nil {
			t.Error("added a room in an empty mesh")
		}
		if err := empty.Add(ctx, "x y"); !errors.Is(err, room.ErrBadName) {
			t.Errorf("add a bad name: %v", err)
		}
		if len(empty.Rooms()) != 0 || empty.Remove("x") {
			t.Errorf("a failed Add left rooms behind: %v", empty.Rooms())
		}
		empty.Close()
	}
	if _, err := n.Publish(ctx, []string{"x"}, 2*time.Minute); err == nil {
		t.Error("published with a ttl above MaxRecordTTL")
	}
	if _, err := n.Publish(ctx, []string{"x y"}, time.Minute); !errors.Is(err, room.ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
	// Alone in the mesh: nobody to store the record.
	if _, err := n.Publish(ctx, []string{"x"}, time.Minute); err == nil {
		t.Error("published into an empty mesh")
	}
	n.Close()
	if _, err := NewResolver(n, ResolverOptions{}).Resolve(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Resolve on a closed node: %v, want ErrClosed", err)
	}
}

func TestAddrs(t *testing.T) {
	n := newTestHost(t, Config{Server: true})
	addrs := n.Addrs()
	if len(addrs) == 0 {
		t.Fatal("no addresses")
	}
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil || ai.ID != n.ID() {
			t.Fatalf("address %s does not end in /p2p/%s", a, n.ID())
		}
	}
	if _, err := New(t.Context(), Config{Bootstrap: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/1")}}); err == nil {
		t.Fatal("a bootstrap address without /p2p was accepted")
	}
}

func TestRepublishOnAddressChange(t *testing.T) {
	ctx := t.Context()
	boot, bridges := testMesh(t, 1)
	res := NewResolver(bridges[0], ResolverOptions{})
	dev := newTestHost(t, Config{Bootstrap: boot.Addrs()})
	pub, err := dev.Publish(ctx, []string{"porch"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	// A new listener (as a relay reservation would) changes the device's
	// addresses; bridges must see them long before the next republish.
	before := dev.Libp2p().Network().ListenAddresses()
	if err := dev.Libp2p().Network().Listen(multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")); err != nil {
		t.Fatal(err)
	}
	var newAddr multiaddr.Multiaddr
	for _, a := range dev.Libp2p().Network().ListenAddresses() {
		if !slices.ContainsFunc(before, a.Equal) {
			newAddr = a
		}
	}
	if newAddr == nil {
		t.Fatal("no new listen address")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		res.Forget("porch")
		info, err := res.Resolve(ctx, "porch")
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(info.Addrs, newAddr.Equal) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge still sees %v, device has %v", info.Addrs, dev.publishAddrs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestAddrRank(t *testing.T) {
	in := []string{
		"/ip4/127.0.0.1/tcp/1",
		"/ip4/192.168.1.2/tcp/1",
		"/ip4/203.0.113.1/tcp/1/p2p/12D3KooWBz3ADS23xJ9c6eyWJGeJfeEhVFp2yzUqjHwhCt4JTQ2h/p2p-circuit",
		"/ip4/8.8.8.8/udp/1/quic-v1",
	}
	var addrs []multiaddr.Multiaddr
	for _, s := range in {
		addrs = append(addrs, multiaddr.StringCast(s))
	}
	slices.SortStableFunc(addrs, func(a, b multiaddr.Multiaddr) int { return addrRank(a) - addrRank(b) })
	want := []string{in[3], in[2], in[1], in[0]}
	for i, a := range addrs {
		if a.String() != want[i] {
			t.Fatalf("order %v, want %v", addrs, want)
		}
	}
}

// TestPublisherAddRemove adds a room at run time, as a device's control API
// does, and removes it again: lookups find it at once, and lose it once its
// last record expires, since removed rooms are not republished.
func TestPublisherAddRemove(t *testing.T) {
	ctx := t.Context()
	boot, bridges := testMesh(t, 1)
	dev := newTestHost(t, Config{Server: true, Bootstrap: boot.Addrs()})
	const ttl = 3 * time.Second
	pub, err := dev.Publish(ctx, nil, ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Add(ctx, "porch"); err != nil {
		t.Fatal(err)
	}
	if got := pub.Rooms(); !slices.Equal(got, []string{"porch"}) {
		t.Fatalf("rooms after Add: %v", got)
	}
	r := NewResolver(bridges[0], ResolverOptions{CacheTTL: 100 * time.Millisecond, NegativeTTL: 50 * time.Millisecond})
	if info, err := r.Resolve(ctx, "porch"); err != nil || info.ID != dev.ID() {
		t.Fatalf("resolve an added room: %v %v", info, err)
	}
	if !pub.Remove("porch") || pub.Remove("porch") {
		t.Fatal("Remove should report true once, then false")
	}
	// Wait past a republish (ttl/3) and the record's expiry.
	deadline := time.Now().Add(4 * ttl)
	for {
		_, err := r.Resolve(ctx, "porch")
		if errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a removed room still resolves after %s: %v", 4*ttl, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
