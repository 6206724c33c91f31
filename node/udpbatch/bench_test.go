package udpbatch

import (
	"net"
	"testing"
)

// BenchmarkSend sends a 720p keyframe's worth of SRTP-sized datagrams (50
// of 1,200 bytes) to a loopback socket per op: one system call per
// datagram (unheld), one sendmmsg of single datagrams (held, GSO off), and
// one sendmmsg carrying GSO runs (held, GSO on where the kernel has it).
// The receiver drains its socket on another goroutine; loopback makes the
// sender's system time include the receiving stack's.
func BenchmarkSend(b *testing.B) {
	for _, mode := range []string{"sendto", "sendmmsg", "gso"} {
		b.Run(mode, func(b *testing.B) {
			n, err := New(nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			uc, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer uc.Close()
			c := uc.(*Conn)
			if mode == "gso" && !c.gso.Load() {
				b.Skip("the kernel has no UDP GSO (UDP_SEGMENT)")
			}
			c.gso.Store(mode == "gso")
			r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			r.SetReadBuffer(8 << 20)
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 2048)
				for {
					if _, err := r.Read(buf); err != nil {
						return
					}
				}
			}()
			defer func() { r.Close(); <-done }()
			to := r.LocalAddr().(*net.UDPAddr).AddrPort()
			d := make([]byte, 1200)
			b.SetBytes(50 * 1200)
			b.ReportAllocs()
			for b.Loop() {
				if mode != "sendto" {
					n.Hold()
				}
				for range 50 {
					c.WriteToAddrPort(d, to)
				}
				if mode != "sendto" {
					n.Flush()
				}
			}
		})
	}
}
