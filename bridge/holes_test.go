package bridge

import (
	"crypto/rand"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/bridge/access"
	"github.com/ersmesh/ersmesh/internal/testutil/testmesh"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/room"
)

// TestWHEPAppliesAccessRules plays a WHEP client on a bridge run with
// --tokens and --allowed-room: it must be refused exactly as an ERS join
// would be (no token, a guessed token, a token another address used, a
// room not on the list), and no device session may start for it.
func TestWHEPAppliesAccessRules(t *testing.T) {
	wm := newWHEPMesh(t, nil, WHEPConfig{Burst: 100})
	store := access.NewStore(true)
	store.AddToken("T1")
	store.AddToken("T2")
	if err := store.AddRoom("lobby"); err != nil {
		t.Fatal(err)
	}
	// The token was used already by another address: bound to it.
	if err := store.Check("lobby", "T2", "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	_, url := startBridgeWith(t, wm.bridgeN, func(c *Config) { c.Access = store; c.WHEP = WHEPConfig{Burst: 100} })
	offer := newWHEPClient(t).offer(t, true)

	for _, tc := range []struct {
		name, path string
		header     []string
		want       int
		reason     string
	}{
		{"no token", "/whep/lobby/cam", nil, 401, "requires a token"},
		{"guessed token", "/whep/lobby/cam", []string{"Authorization", "Bearer guess"}, 403, "invalid token"},
		{"token of another client", "/whep/lobby/cam", []string{"Authorization", "Bearer T2"}, 403, "already used"},
		{"room not allowed", "/whep/elsewhere/cam", []string{"Authorization", "Bearer T1"}, 403, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "POST", url+tc.path, sdpType, offer, tc.header...)
			if r.status != tc.want || !strings.Contains(r.body, tc.reason) {
				t.Fatalf("status %d %q, want %d mentioning %q", r.status, truncate(r.body, 80), tc.want, tc.reason)
			}
			if links := r.header.Values("Link"); len(links) > 0 {
				t.Errorf("a refused client got ICE servers: %q", links)
			}
		})
	}
	if n := len(wm.dev.Viewers()); n != 0 {
		t.Fatalf("refused WHEP clients reached the device: %d sessions", n)
	}
	// The good token opens the allowed room.
	if r := do(t, "POST", url+"/whep/lobby/cam", sdpType, offer, "Authorization", "Bearer T1"); r.status != http.StatusCreated {
		t.Fatalf("POST with a good token: %d %s", r.status, r.body)
	}
}

// TestTokensBindToIPv6Prefix: a token binds to its first client's address,
// an IPv6 client's /64: the browser that rotates privacy addresses keeps
// it, another network does not get it.
func TestTokensBindToIPv6Prefix(t *testing.T) {
	store := access.NewStore(true)
	store.AddToken("T")
	for _, tc := range []struct {
		remote string
		ok     bool
	}{
		{"[2001:db8:1:2::10]:5000", true},
		{"[2001:db8:1:2:a:b:c:d]:6000", true}, // same /64, new temporary address
		{"[2001:db8:1:3::10]:5000", false},    // the next /64
		{"192.0.2.1:5000", false},
	} {
		err := store.Check("r", "T", clientKey(tc.remote))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.remote, err, tc.ok)
		}
	}
	if k := clientKey("192.0.2.1:80"); k != "192.0.2.1/32" {
		t.Errorf("IPv4 key %q", k)
	}
}

// TestBridgeDialsNoPrivateAddrsOfStrangers plays a stranger who hands the
// bridge (at /ersmesh/register) a validly signed room record whose
// addresses are an internal service of the bridge's host, and then asks
// to watch the room: a bridge on the internet must not knock on that
// service. With the lab switch on (loopback meshes), the same record does
// make it dial, which shows the test can tell.
func TestBridgeDialsNoPrivateAddrsOfStrangers(t *testing.T) {
	victim, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var knocks atomic.Int32
	go func() {
		for {
			c, err := victim.Accept()
			if err != nil {
				return
			}
			knocks.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { victim.Close() })
	victimAddr := multiaddr.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(victim.Addr().(*net.TCPAddr).Port))

	_, boot := testmesh.Bootstrap(t)

	attack := func(policy mesh.PrivateAddrs, roomName string) (*mesh.Host, response) {
		t.Helper()
		n := testmesh.Host(t, boot, func(c *mesh.Config) { c.PrivateAddrs = policy })
		_, url := startBridgeWith(t, n, nil)
		stranger, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := room.NewRecord(stranger, roomName, []multiaddr.Multiaddr{victimAddr}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		val, err := rec.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if r := do(t, "POST", url+RegisterPath, "application/octet-stream", string(val)); r.status != http.StatusNoContent {
			t.Fatalf("register: %d %s", r.status, r.body)
		}
		return n, do(t, "POST", url+"/whep/"+roomName, sdpType, newWHEPClient(t).offer(t, false))
	}

	n, r := attack(mesh.PrivateAddrsRefuse, "internal")
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("WHEP to the stranger's room: %d %s, want 503", r.status, truncate(r.body, 80))
	}
	if k := knocks.Load(); k != 0 {
		t.Fatalf("the bridge opened %d connections to the address a stranger's record named", k)
	}
	if n.PrivateDialsRefused() == 0 {
		t.Error("no refused dial counted")
	}

	// The lab switch on: the same attack reaches the service.
	attack(mesh.PrivateAddrsAllow, "internal-lab")
	if knocks.Load() == 0 {
		t.Fatal("with private addresses allowed the bridge never dialled the record's address: the test proves nothing")
	}
}
