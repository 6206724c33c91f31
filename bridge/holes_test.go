package bridge

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ersmesh/ersmesh/bridge/access"
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
