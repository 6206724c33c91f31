package benchproc

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		fail       bool
	}{
		{name: "plain", stat: "1234 (go2rtc) S 1 1234 1234 0 -1 4194560 2000 0 0 0 250 37 0 0 20 0 12 0 100 0 0",
			want: 2870 * time.Millisecond},
		// A command name may hold spaces and ')': fields count from its last ')'.
		{name: "odd name", stat: "99 (a) b (c)) R 1 99 99 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 0 0",
			want: 100 * time.Millisecond},
		{name: "no name", stat: "99 R 1 2 3", fail: true},
		{name: "short", stat: "99 (x) R 1 2 3", fail: true},
		{name: "not a number", stat: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 ab 3 0 0 20 0 1 0 5 0 0", fail: true},
	} {
		got, err := ParseStatCPU(tc.stat)
		if (err != nil) != tc.fail || got != tc.want {
			t.Errorf("%s: ParseStatCPU = %v, %v; want %v, failure %v", tc.name, got, err, tc.want, tc.fail)
		}
	}
}

// TestCPUOfThisProcess reads our own /proc entry while we burn CPU: it
// must grow (in ticks of 10 ms) before a generous wall-clock bound.
func TestCPUOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("no /proc/self/stat here (not Linux): %v", err)
	}
	before := CPU(os.Getpid())
	for end := time.Now().Add(20 * time.Second); CPU(os.Getpid()) <= before; {
		if time.Now().After(end) {
			t.Fatalf("CPU time stayed at %v while spinning for 20 s", before)
		}
	}
}

func TestParseSNMP(t *testing.T) {
	const text = `Ip: Forwarding DefaultTTL
Ip: 1 64
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors
Udp: 62556337 1701936 29324900 76894009 29324811 3
UdpLite: InDatagrams RcvbufErrors
UdpLite: 0 7
`
	if n, err := ParseSNMP(text, "Udp", "RcvbufErrors"); err != nil || n != 29324811 {
		t.Errorf("Udp RcvbufErrors = %d, %v; want 29324811", n, err)
	}
	if n, err := ParseSNMP(text, "UdpLite", "RcvbufErrors"); err != nil || n != 7 {
		t.Errorf("UdpLite RcvbufErrors = %d, %v; want 7", n, err)
	}
	if _, err := ParseSNMP(text, "Udp", "Nothing"); err == nil {
		t.Error("a counter that is not there read without an error")
	}
	if _, err := ParseSNMP("Udp: InDatagrams\n", "Udp", "InDatagrams"); err == nil {
		t.Error("names without values read without an error")
	}
}
