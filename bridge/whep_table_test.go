package bridge

import (
	"testing"
	"time"
)

// TestWHEPRateKeyedBySlash64 plays a client that rotates through the
// addresses of its IPv6 /64 to get a fresh POST bucket each time.
func TestWHEPRateKeyedBySlash64(t *testing.T) {
	tab := newWHEPTable(WHEPConfig{RatePerMinute: 1, Burst: 2})
	defer tab.close()
	now := time.Now()
	for i, a := range []string{"2001:db8:5:6::1", "2001:db8:5:6::2"} {
		if !tab.allow(a, now) {
			t.Fatalf("POST %d within the burst refused", i)
		}
	}
	if tab.allow("2001:db8:5:6:abcd::3", now) {
		t.Error("a third address of the same /64 got past the POST rate")
	}
	if !tab.allow("2001:db8:5:7::1", now) {
		t.Error("the next /64 was refused")
	}
	if !tab.allow("192.0.2.1", now) || !tab.allow("192.0.2.1", now) || tab.allow("192.0.2.1", now) {
		t.Error("an IPv4 client's burst of 2 not kept")
	}
	if !tab.allow("192.0.2.1", now.Add(time.Minute)) {
		t.Error("no token a minute later at one a minute")
	}
	if tab.allow("not an address", now) {
		t.Error("a client without an address was let through")
	}
}
