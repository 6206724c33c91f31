package benchproc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// UDPRcvbufErrors is the kernel's count of UDP datagrams dropped because a
// socket's receive buffer was full (RcvbufErrors in /proc/net/snmp), for
// the whole network namespace; -1 if unknown. A load generator whose
// receivers cannot keep up shows there.
func UDPRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return -1
	}
	n, err := ParseSNMP(string(b), "Udp", "RcvbufErrors")
	if err != nil {
		return -1
	}
	return n
}

// ParseSNMP reads one counter from the text of /proc/net/snmp, where each
// protocol has a line of names and then a line of values, both starting
// with "<proto>:".
func ParseSNMP(text, proto, name string) (int64, error) {
	var names []string
	for line := range strings.SplitSeq(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != proto+":" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, n := range names {
			if n == name && i+1 < len(f) {
				return strconv.ParseInt(f[i+1], 10, 64)
			}
		}
		return 0, fmt.Errorf("/proc/net/snmp: %s has no %s", proto, name)
	}
	return 0, fmt.Errorf("/proc/net/snmp: no %s names and values", proto)
}
