package devicebench

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pion/transport/v5/stdnet"
)

// rcvbuf is the receive buffer the kernel gave c.
func rcvbuf(t *testing.T, c interface {
	SyscallConn() (syscall.RawConn, error)
}) int {
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var size int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		size, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return size
}

// TestReceiverSocketsGetLargeBuffers: the receivers' sockets get a receive
// buffer larger than the operating system's default, which a starved
// benchmark process overflowed (counting its own drops as the server's
// loss).
func TestReceiverSocketsGetLargeBuffers(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skipf("no /proc/sys/net/core/rmem_max (not Linux): %v", err)
	}
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	base, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	laddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	plain, err := base.ListenUDP("udp4", laddr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	c, err := rcvbufNet{Net: base, size: ReceiveBuffer}.ListenUDP("udp4", laddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	def := rcvbuf(t, plain.(*net.UDPConn))
	// The kernel doubles what it is asked (bookkeeping room), up to
	// twice rmem_max unless the process is root (SO_RCVBUFFORCE).
	want := 2 * ReceiveBuffer
	if os.Geteuid() != 0 {
		if rmemMax*2 <= def {
			t.Skipf("not root, and net.core.rmem_max %d allows no buffer above the default %d (CI runs as root)", rmemMax, def)
		}
		want = 2 * min(ReceiveBuffer, rmemMax)
	}
	if got := rcvbuf(t, c.(*net.UDPConn)); got < want {
		t.Errorf("receiver socket's buffer %d bytes, want %d (default %d)", got, want, def)
	}
}
