package mesh

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p-kbucket/peerdiversity"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/room"
)

// floodRecord signs a record for name with priv, as a flooder would.
func floodRecord(t *testing.T, priv crypto.PrivKey, name string) []byte {
	t.Helper()
	r, err := room.NewRecord(priv, name, nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (q *quotaStore) heldBy(p peer.ID) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pubs.HeldBy(p)
}

// TestRecordFloodIsLimited: a peer puts records for hundreds of rooms into
// the DHT. A server with quotas keeps MaxRecordsPerPeer of them, refuses the
// rest, and still stores and serves an honest device's room; records signed
// by many fresh identities stop at MaxRecords.
func TestRecordFloodIsLimited(t *testing.T) {
	ctx := t.Context()
	boot := newTestHost(t, Config{Server: true})
	victim := newTestHost(t, Config{Server: true, Bootstrap: boot.Addrs(), MaxRecordsPerPeer: 5, MaxRecords: 40})
	flooder := newTestHost(t, Config{Server: true, Bootstrap: boot.Addrs(), MaxRecords: 10000})
	dev := newTestHost(t, Config{Server: true, Bootstrap: boot.Addrs()})

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const rooms = 300
	for i := range rooms {
		name := fmt.Sprintf("flood-%d", i)
		// PutValue stores on the flooder, then on the closest servers,
		// which in this mesh includes the victim; refusals there are the
		// victim's business and not an error for the flooder.
		if err := flooder.DHT().PutValue(ctx, room.Key(name), floodRecord(t, flooder.PrivKey(), name)); err != nil {
			t.Fatalf("flooder put %d: %v", i, err)
		}
	}
	st := victim.RecordStats()
	held := victim.records.heldBy(flooder.ID())
	t.Logf("after %d rooms from one peer: victim stores %d (%d from the flooder), refused %d per peer", rooms, st.Records, held, st.RefusedPerPeer)
	if held != 5 {
		t.Fatalf("victim holds %d records of the flooder, want its quota of 5", held)
	}
	if st.RefusedPerPeer < rooms-5 {
		t.Fatalf("victim refused %d records per peer, want at least %d", st.RefusedPerPeer, rooms-5)
	}

	// An honest device still gets its room stored on the victim, and the
	// victim finds it.
	pub, err := dev.Publish(ctx, []string{"frontdoor"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if got := victim.records.heldBy(dev.ID()); got != 1 {
		t.Fatalf("victim holds %d records of the honest device, want 1", got)
	}
	info, err := NewResolver(victim, ResolverOptions{}).Resolve(ctx, "frontdoor")
	if err != nil || info.ID != dev.ID() {
		t.Fatalf("victim resolved frontdoor to %v, %v; want the device", info.ID, err)
	}

	// Fresh identities are free: one record each, until the node is full.
	for i := range 60 {
		priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("sybil-%d", i)
		flooder.DHT().PutValue(ctx, room.Key(name), floodRecord(t, priv, name))
	}
	st = victim.RecordStats()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("after 60 more rooms from 60 identities: victim stores %d records from %d publishers, refused %d (full); heap in use %d KiB -> %d KiB",
		st.Records, st.Publishers, st.RefusedFull, before.HeapInuse>>10, after.HeapInuse>>10)
	if st.Records != 40 {
		t.Fatalf("victim stores %d records, want its maximum of 40", st.Records)
	}
	if st.RefusedFull == 0 {
		t.Fatal("no record was refused for a full node")
	}
	// The flooder itself has no quota problem with its own rooms.
	if got := flooder.RecordStats().Records; got < rooms {
		t.Fatalf("the flooder stores %d of its own records, want at least %d", got, rooms)
	}
}

// TestRecordQuotaFreesSlots: a deleted (expired, swept) record gives its
// publisher's slot back, and a record that replaces another publisher's for
// the same room moves the slot.
func TestRecordQuotaFreesSlots(t *testing.T) {
	boot := newTestHost(t, Config{Server: true})
	n := newTestHost(t, Config{Server: true, Bootstrap: boot.Addrs(), MaxRecordsPerPeer: 2})
	a, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	b, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	ida, _ := peer.IDFromPrivateKey(a)
	idb, _ := peer.IDFromPrivateKey(b)
	ctx := t.Context()
	put := func(priv crypto.PrivKey, name string) error {
		return n.DHT().PutValue(ctx, room.Key(name), floodRecord(t, priv, name))
	}
	for _, name := range []string{"one", "two"} {
		if err := put(a, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := put(a, "three"); err == nil {
		t.Fatal("a third record of a publisher with a quota of 2 was stored")
	}
	// b takes the open room "two" over (a later sequence number wins).
	if err := put(b, "two"); err != nil {
		t.Fatal(err)
	}
	if got := n.records.heldBy(ida); got != 1 {
		t.Fatalf("a holds %d after b took a room over, want 1", got)
	}
	if got := n.records.heldBy(idb); got != 1 {
		t.Fatalf("b holds %d, want 1", got)
	}
	if err := put(a, "three"); err != nil {
		t.Fatalf("a's freed slot was not given back: %v", err)
	}
	// Deleting (what the DHT's sweep does with old records) frees a slot.
	q := n.records
	for k, p := range snapshotOwners(q) {
		if p == ida {
			if err := q.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if got := q.heldBy(ida); got != 1 {
		t.Fatalf("a holds %d after one of its two records was deleted, want 1", got)
	}
}

func snapshotOwners(q *quotaStore) map[ds.Key]peer.ID {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make(map[ds.Key]peer.ID, len(q.owner))
	for k, p := range q.owner {
		out[k] = p
	}
	return out
}

// TestDiversityFilterCaps checks the counting: per bucket and per table
// caps for one IP group, other groups unaffected, exempt group unlimited,
// and slots given back on removal.
func TestDiversityFilterCaps(t *testing.T) {
	f := newDiversityFilter(nil, 2, 3, nil)
	g := func(cpl int, key string) peerdiversity.PeerGroupInfo {
		return peerdiversity.PeerGroupInfo{Cpl: cpl, IPGroupKey: peerdiversity.PeerIPGroupKey(key)}
	}
	add := func(gi peerdiversity.PeerGroupInfo) bool {
		if !f.Allow(gi) {
			return false
		}
		f.Increment(gi)
		return true
	}
	if !add(g(1, "203.0.0.0")) || !add(g(1, "203.0.0.0")) {
		t.Fatal("the first two peers of a group in a bucket were refused")
	}
	if add(g(1, "203.0.0.0")) {
		t.Fatal("a third peer of one group in one bucket was allowed (cap 2)")
	}
	if !add(g(2, "203.0.0.0")) {
		t.Fatal("a third peer of the group in another bucket was refused (table cap 3)")
	}
	if add(g(3, "203.0.0.0")) {
		t.Fatal("a fourth peer of one group in the table was allowed (cap 3)")
	}
	if !add(g(1, "198.51.0.0")) {
		t.Fatal("another group was refused")
	}
	for range 50 {
		if !add(g(1, string(exemptGroup))) {
			t.Fatal("an exempt (private or bootstrap) peer was refused")
		}
	}
	f.Decrement(g(1, "203.0.0.0"))
	if !add(g(3, "203.0.0.0")) {
		t.Fatal("a removed peer's slot was not given back")
	}
}

// TestDiversityExemptsLoopback: peers connected over loopback (or a LAN)
// all share one IP group by nature and are not counted, so a test mesh or a
// home mesh fills its routing table; the mesh tests depend on it too.
func TestDiversityExemptsLoopback(t *testing.T) {
	boot := newTestHost(t, Config{Server: true, DiversityPerBucket: 1, DiversityPerTable: 1})
	var nodes []*Host
	for range 4 {
		nodes = append(nodes, newTestHost(t, Config{Server: true, Bootstrap: boot.Addrs(), DiversityPerBucket: 1, DiversityPerTable: 1}))
	}
	deadline := time.Now().Add(10 * time.Second)
	for boot.DHT().RoutingTable().Size() < len(nodes) {
		if time.Now().After(deadline) {
			t.Fatalf("boot's routing table has %d peers, want %d: loopback peers were filtered", boot.DHT().RoutingTable().Size(), len(nodes))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProtectorCounts: protection lasts until the last holder releases, and
// a protected connection survives trimming that closes unprotected ones.
func TestProtectorCounts(t *testing.T) {
	n := newTestHost(t, Config{ConnLow: 1, ConnHigh: 2, ConnGrace: time.Millisecond})
	p := NewProtector(n.Libp2p(), "test-sessions")
	var others []peer.ID
	for range 4 {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = h.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Libp2p().Addrs()})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		others = append(others, h.ID())
	}
	kept := others[0]
	r1 := p.Hold(kept)
	r2 := p.Hold(kept)
	r1()
	r1() // idempotent
	cm := n.Libp2p().ConnManager()
	if !cm.IsProtected(kept, "test-sessions") {
		t.Fatal("released by one of two holders, the peer lost its protection")
	}
	time.Sleep(20 * time.Millisecond) // past the grace period
	cm.TrimOpenConns(t.Context())
	if n.Libp2p().Network().Connectedness(kept) != network.Connected {
		t.Fatal("trimming closed the protected connection")
	}
	closed := 0
	for _, id := range others[1:] {
		if n.Libp2p().Network().Connectedness(id) != network.Connected {
			closed++
		}
	}
	if closed < 2 {
		t.Fatalf("trimming closed %d of 3 unprotected connections, want at least 2 (low watermark 1)", closed)
	}
	r2()
	if cm.IsProtected(kept, "test-sessions") || p.Peers() != 0 {
		t.Fatal("still protected after every holder released")
	}
}
