package turnserver

import (
	"net/netip"
	"testing"
)

func TestPolicy(t *testing.T) {
	cases := []struct {
		ip           string
		strict, open Verdict
	}{
		{"203.0.113.7", Allowed, Allowed},
		{"8.8.8.8", Allowed, Allowed},
		{"2001:db8::1", Allowed, Allowed},
		{"127.0.0.1", Private, Allowed},
		{"127.8.9.10", Private, Allowed},
		{"10.1.2.3", Private, Allowed},
		{"172.16.0.1", Private, Allowed},
		{"172.31.255.255", Private, Allowed},
		{"172.32.0.1", Allowed, Allowed},
		{"192.168.1.1", Private, Allowed},
		{"100.64.0.1", Private, Allowed},
		{"100.127.255.255", Private, Allowed},
		{"169.254.10.10", Private, Allowed},
		{"0.0.0.0", Private, Allowed},
		{"::1", Private, Allowed},
		{"::", Private, Allowed},
		{"fd12:3456::1", Private, Allowed},
		{"fe80::1", Private, Allowed},
		{"::ffff:10.0.0.1", Private, Allowed},
		{"::ffff:127.0.0.1", Private, Allowed},
		{"169.254.169.254", Forbidden, Forbidden},
		{"::ffff:169.254.169.254", Forbidden, Forbidden},
		{"fd00:ec2::254", Forbidden, Forbidden},
		{"224.0.0.1", Forbidden, Forbidden},
		{"255.255.255.255", Forbidden, Forbidden},
		{"ff02::1", Forbidden, Forbidden},
		{"64:ff9b::a00:1", Forbidden, Forbidden},
		{"2002:a00:1::1", Forbidden, Forbidden},
		// Found by attacking the policy (issue 13): each reached what the
		// policy is there to protect.
		{"168.63.129.16", Forbidden, Forbidden},                        // Azure wireserver
		{"::ffff:168.63.129.16", Forbidden, Forbidden},                 // the same, mapped
		{"::a00:1", Forbidden, Forbidden},                              // IPv4-compatible 10.0.0.1
		{"::7f00:1", Forbidden, Forbidden},                             // IPv4-compatible 127.0.0.1
		{"::ffff:0:a00:1", Forbidden, Forbidden},                       // IPv4-translated 10.0.0.1
		{"::ffff:0:a9fe:a9fe", Forbidden, Forbidden},                   // IPv4-translated metadata
		{"64:ff9b::7f00:1", Forbidden, Forbidden},                      // NAT64 127.0.0.1
		{"64:ff9b::a9fe:a9fe", Forbidden, Forbidden},                   // NAT64 metadata
		{"2002:c0a8:101::1", Forbidden, Forbidden},                     // 6to4 of 192.168.1.1
		{"2002:7f00:1::1", Forbidden, Forbidden},                       // 6to4 of 127.0.0.1
		{"2001:0:4136:e378:8000:63bf:f5ff:fffe", Forbidden, Forbidden}, // Teredo of 10.0.0.1
		{"2001::1", Forbidden, Forbidden},                              // Teredo
		{"2001:db9::1", Allowed, Allowed},                              // global unicast beside Teredo
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		if got := (Policy{}).Check(ip); got != c.strict {
			t.Errorf("default policy, %s: %q, want %q", c.ip, got, c.strict)
		}
		if got := (Policy{AllowPrivate: true}).Check(ip); got != c.open {
			t.Errorf("private allowed, %s: %q, want %q", c.ip, got, c.open)
		}
	}
	if (Policy{AllowPrivate: true}).Check(netip.Addr{}) != Invalid {
		t.Error("invalid address allowed")
	}
}

// TestPolicyRefusesTheServerItself: a client must not relay to the TURN
// server's own addresses (its bridge's HTTP and admin ports are there),
// unless the lab switch is on.
func TestPolicyRefusesTheServerItself(t *testing.T) {
	self := []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::9")}
	for _, ip := range []string{"203.0.113.9", "::ffff:203.0.113.9", "2001:db8::9"} {
		a := netip.MustParseAddr(ip)
		if got := (Policy{Self: self}).Check(a); got != Self {
			t.Errorf("%s: %q, want %q", ip, got, Self)
		}
		if got := (Policy{Self: self, AllowPrivate: true}).Check(a); got != Allowed {
			t.Errorf("%s with the lab switch: %q, want allowed", ip, got)
		}
	}
	if got := (Policy{Self: self}).Check(netip.MustParseAddr("203.0.113.10")); got != Allowed {
		t.Errorf("a neighbour of the server: %q, want allowed", got)
	}
}
