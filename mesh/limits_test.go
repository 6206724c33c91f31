package mesh

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestManyStreamsFromOnePeer opens, from one node, many concurrent streams
// of one protocol to another, as a bridge does with one signalling stream
// per viewer of a device. libp2p's default limits refused the 76th.
func TestManyStreamsFromOnePeer(t *testing.T) {
	const proto = "/ersmesh/test/hold/1.0.0"
	for _, tc := range []struct {
		listen  string
		streams int
	}{
		{"/ip4/127.0.0.1/tcp/0", 600},
		// go-libp2p fixes quic-go's MaxIncomingStreams at 256 per
		// connection: a 257th stream waits for one to close.
		{"/ip4/127.0.0.1/udp/0/quic-v1", 250},
	} {
		listen, streams := []string{tc.listen}, tc.streams
		t.Run(tc.listen, func(t *testing.T) {
			dev := newTestHost(t, Config{Server: true, ListenAddrs: listen})
			bridge := newTestHost(t, Config{Server: true, ListenAddrs: listen})
			var held sync.WaitGroup
			release := make(chan struct{})
			dev.Libp2p().SetStreamHandler(proto, func(s network.Stream) {
				held.Add(1)
				defer held.Done()
				s.Write([]byte{1})
				<-release
				s.Close()
			})
			defer held.Wait()
			defer close(release)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := bridge.Libp2p().Connect(ctx, peer.AddrInfo{ID: dev.ID(), Addrs: dev.Libp2p().Addrs()}); err != nil {
				t.Fatal(err)
			}
			var open []network.Stream
			defer func() {
				for _, s := range open {
					s.Reset()
				}
			}()
			for i := range streams {
				s, err := bridge.Libp2p().NewStream(ctx, dev.ID(), proto)
				if err == nil {
					s.SetReadDeadline(time.Now().Add(10 * time.Second))
					var b [1]byte
					_, err = s.Read(b[:])
				}
				if err != nil {
					t.Fatalf("stream %d of %d from one peer: %v", i+1, streams, err)
				}
				open = append(open, s)
			}
		})
	}
}
