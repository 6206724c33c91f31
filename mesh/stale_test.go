package mesh

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/room"
)

// TestOlderRecordNeverReplacesNewer plays someone replaying a device's
// older record (still within its expiry, pointing at the device's old
// address) to a bridge at /ersmesh/register after the device moved: the
// bridge must keep the newer record, also after it forgot the room
// because the device did not answer once.
func TestOlderRecordNeverReplacesNewer(t *testing.T) {
	_, bs := testMesh(t, 1)
	r := NewResolver(bs[0], ResolverOptions{})
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encode := func(addr string) []byte {
		t.Helper()
		rec, err := room.NewRecord(key, "porch", []multiaddr.Multiaddr{multiaddr.StringCast(addr)}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		val, err := rec.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return val
	}
	older := encode("/ip4/198.51.100.1/tcp/4001") // sequence numbers grow with time
	newer := encode("/ip4/198.51.100.2/tcp/4001")
	addrOf := func() string {
		t.Helper()
		info, err := r.Resolve(t.Context(), "porch")
		if err != nil {
			t.Fatal(err)
		}
		return info.Addrs[0].String()
	}
	if _, err := r.Learn(newer); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Learn(older); !errors.Is(err, ErrStale) {
		t.Errorf("an older record was taken: %v", err)
	}
	if a := addrOf(); a != "/ip4/198.51.100.2/tcp/4001" {
		t.Fatalf("the room resolves to %s, the older record's address", a)
	}
	r.Forget("porch")
	if _, err := r.Learn(older); !errors.Is(err, ErrStale) {
		t.Errorf("an older record was taken after Forget: %v", err)
	}
	// A newer one still replaces it.
	newest := encode("/ip4/198.51.100.3/tcp/4001")
	if _, err := r.Learn(newest); err != nil {
		t.Fatal(err)
	}
	if a := addrOf(); a != "/ip4/198.51.100.3/tcp/4001" {
		t.Fatalf("the room resolves to %s, want the newest record's address", a)
	}
}
