package turnserver

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestAddressCapNotResetByNewCredentials plays a client that opens a new
// bridge socket for every allocation, so that each comes with fresh
// credentials of its own: the per-credential quota never trips, but its
// address's cap does; another address is not affected; and freeing an
// allocation frees the address's count.
func TestAddressCapNotResetByNewCredentials(t *testing.T) {
	s, logs := startServer(t, Config{Policy: Policy{AllowPrivate: true}, MaxIPAllocations: 3})
	var relays []net.PacketConn
	for i := range 3 {
		cr := creds(t, fmt.Sprintf("socket-%d", i), time.Minute)
		r, err := dial(t, s, "udp", cr.Username, cr.Password).Allocate()
		if err != nil {
			t.Fatalf("allocation %d: %v", i+1, err)
		}
		relays = append(relays, r)
	}
	cr := creds(t, "socket-3", time.Minute)
	if r, err := dial(t, s, "udp", cr.Username, cr.Password).Allocate(); err == nil {
		r.Close()
		t.Fatal("a fourth allocation from one address with fresh credentials, beyond a cap of 3")
	}
	if !strings.Contains(logs.String(), "allocation quota of this client address") {
		t.Errorf("no log line for the address cap; logs:\n%s", logs)
	}
	other := creds(t, "neighbour", time.Minute)
	r, err := dialFrom(t, s, "127.0.0.2", "udp", other.Username, other.Password).Allocate()
	if err != nil {
		t.Fatalf("another address: %v", err)
	}
	r.Close()
	relays[0].Close()
	key := netip.MustParsePrefix("127.0.0.1/32")
	deadline := time.Now().Add(5 * time.Second)
	for s.caps.heldBy(key) > 2 {
		if time.Now().After(deadline) {
			t.Fatalf("address still counts %d allocations after one closed", s.caps.heldBy(key))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r, err := dial(t, s, "udp", cr.Username, cr.Password).Allocate(); err != nil {
		t.Fatalf("allocation after freeing one: %v", err)
	} else {
		r.Close()
	}
	for _, r := range relays[1:] {
		r.Close()
	}
}

// TestServerCap: many addresses together cannot take more than the
// server's cap.
func TestServerCap(t *testing.T) {
	s, _ := startServer(t, Config{Policy: Policy{AllowPrivate: true}, MaxAllocations: 2})
	for i, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		cr := creds(t, fmt.Sprintf("u%d", i), time.Minute)
		r, err := dialFrom(t, s, ip, "udp", cr.Username, cr.Password).Allocate()
		if i < 2 && err != nil {
			t.Fatalf("allocation %d: %v", i+1, err)
		}
		if i == 2 && err == nil {
			r.Close()
			t.Fatal("a third allocation beyond the server's cap of 2")
		}
		if err == nil {
			t.Cleanup(func() { r.Close() })
		}
	}
}

// TestExpiredCredentialsKeepButDoNotOpen: credentials live for minutes. An
// allocation made while they were valid keeps working after they expire
// (its permissions and refreshes are taken), and the same client may open
// another with them while it holds one (an ICE restart gathers anew), but
// nobody else may, and nobody once the client holds none.
func TestExpiredCredentialsKeepButDoNotOpen(t *testing.T) {
	s, _ := startServer(t, Config{Policy: Policy{AllowPrivate: true}})
	cr := creds(t, "viewer", 2*time.Second)
	relay, err := dial(t, s, "udp", cr.Username, cr.Password).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(cr.Expires) + 100*time.Millisecond)
	// A new peer needs a CreatePermission, sent with the expired
	// credentials.
	if err := roundTrip(relay, echoPeer(t).LocalAddr(), "after expiry"); err != nil {
		t.Fatalf("the allocation stopped working when its credentials expired: %v", err)
	}
	// Someone else who copied the credentials gets nothing.
	if r, err := dialFrom(t, s, "127.0.0.2", "udp", cr.Username, cr.Password).Allocate(); err == nil {
		r.Close()
		t.Fatal("expired credentials opened an allocation for another address")
	}
	// The same client restarting ICE does.
	again, err := dial(t, s, "udp", cr.Username, cr.Password).Allocate()
	if err != nil {
		t.Fatalf("an ICE restart's allocation with the session's credentials: %v", err)
	}
	relay.Close()
	again.Close()
	key := netip.MustParsePrefix("127.0.0.1/32")
	waitUntil(t, func() bool { return s.caps.heldBy(key) == 0 })
	if r, err := dial(t, s, "udp", cr.Username, cr.Password).Allocate(); err == nil {
		r.Close()
		t.Fatal("expired credentials opened a new allocation once the client held none")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5":             "192.0.2.1/32",
		"[::ffff:192.0.2.1]:5":    "192.0.2.1/32",
		"[2001:db8:1:2:3::4]:5":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::]:9": "2001:db8:1:2::/64",
	} {
		a, err := net.ResolveUDPAddr("udp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := clientKey(a).String(); got != want {
			t.Errorf("clientKey(%s) = %s, want %s", in, got, want)
		}
	}
}
