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
