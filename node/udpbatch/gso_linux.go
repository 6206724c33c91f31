package udpbatch

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoSpace is the control message room one GSO send takes.
var gsoSpace = unix.CmsgSpace(2)

// gsoSupported tells whether the kernel takes UDP_SEGMENT (Linux 4.18 and
// later) on c. A device that still refuses it on send (no checksum
// offload) is found by the first refused send (Conn.send).
func gsoSupported(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	}); err != nil {
		return false
	}
	return serr == nil
}

// appendGSO appends the control message that cuts a send into segments
// of size bytes (the last may be shorter). oob has the room (build).
func appendGSO(oob []byte, size int) []byte {
	o := len(oob)
	oob = oob[:o+gsoSpace]
	clear(oob[o:])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[o]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[o+unix.CmsgLen(0):], uint16(size))
	return oob
}
