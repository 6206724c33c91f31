package devicebench

import (
	"net"
	"syscall"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// ReceiveBuffer is the receive buffer asked for each receiver's UDP
// socket (the kernel caps it at net.core.rmem_max). With the operating
// system's default (net.core.rmem_default, 208 KiB) the receivers, all in
// one benchmark process that a loaded machine starves of CPU for tens of
// milliseconds, overflowed their sockets at 100 viewers and counted the
// kernel's drops as the server's loss (docs/media-benchmarks.md, "Where
// the viewers' loss comes from").
const ReceiveBuffer = 4 << 20

// NewReceiverAPI is the pion API of the benchmarks' receivers: pion's
// defaults, UDP sockets with ReceiveBuffer.
func NewReceiverAPI() (*webrtc.API, error) {
	base, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetNet(rcvbufNet{Net: base, size: ReceiveBuffer})
	return webrtc.NewAPI(webrtc.WithSettingEngine(se)), nil
}

// rcvbufNet opens UDP sockets with a receive buffer of size bytes.
type rcvbufNet struct {
	transport.Net
	size int
}

func (n rcvbufNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	if forceReadBuffer(c, n.size) {
		return c, nil
	}
	if err := c.SetReadBuffer(n.size); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// forceReadBuffer sets c's receive buffer past net.core.rmem_max where the
// process may (SO_RCVBUFFORCE needs CAP_NET_ADMIN), so that a stock
// kernel's small maximum does not undo the benchmark's fix. It reports
// whether it could.
func forceReadBuffer(c any, size int) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size)
	}); err != nil {
		return false
	}
	return serr == nil
}
