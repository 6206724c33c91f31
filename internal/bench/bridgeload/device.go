package bridgeload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/signalwire"
)

// sinkDevice serves a room over the real signalling protocol: it accepts
// every join and records when each signalling message arrives. It does no
// WebRTC, so the bridge is what limits the measurement.
type sinkDevice struct {
	n     *mesh.Host
	joins atomic.Int64
	msgs  atomic.Int64

	mu      sync.Mutex
	latency []time.Duration // send (stamped by the load client) to arrival; only while recording
	record  bool
	closed  bool

	wg sync.WaitGroup // stream handlers
}

// payload is what the load client sends as an ERS candidate message.
type payload struct {
	Candidate string `json:"candidate"`
	SDPMid    string `json:"sdpMid"`
	Line      int    `json:"sdpMLineIndex"`
	Sent      int64  `json:"t"` // UnixNano at the client
}

func newSinkDevice(ctx context.Context, room string, bootstrap []ma.Multiaddr) (*sinkDevice, error) {
	n, err := mesh.New(ctx, mesh.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: bootstrap, Server: true, Logger: discard})
	if err != nil {
		return nil, err
	}
	d := &sinkDevice{n: n}
	n.Libp2p().SetStreamHandler(signalwire.ProtocolID, func(s network.Stream) {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			s.Reset()
			return
		}
		d.wg.Add(1)
		d.mu.Unlock()
		defer d.wg.Done()
		d.serve(signalwire.NewConn(s))
	})
	if _, err := n.Publish(ctx, []string{room}, 5*time.Minute); err != nil {
		return nil, errors.Join(err, d.Close())
	}
	return d, nil
}

func (d *sinkDevice) serve(c *signalwire.Conn) {
	m, err := c.Recv(signalwire.JoinTimeout)
	if err != nil || m.Kind != signalwire.KindJoin {
		c.Reset()
		return
	}
	if err := c.Send(&signalwire.Message{Kind: signalwire.KindAccept}); err != nil {
		c.Reset()
		return
	}
	d.joins.Add(1)
	for {
		m, err := c.Recv(signalwire.IdleTimeout)
		if err != nil {
			c.Reset()
			return
		}
		switch m.Kind {
		case signalwire.KindLeave:
			c.Close()
			return
		case signalwire.KindSignal:
			now := time.Now()
			d.msgs.Add(1)
			var p payload
			if json.Unmarshal(m.Payload, &p) == nil && p.Sent != 0 {
				d.mu.Lock()
				if d.record {
					d.latency = append(d.latency, now.Sub(time.Unix(0, p.Sent)))
				}
				d.mu.Unlock()
			}
		}
	}
}

// await waits until the device has received n signalling messages in
// all: every message the load client sent must arrive.
func (d *sinkDevice) await(ctx context.Context, n int64) error {
	deadline := time.Now().Add(5 * time.Second)
	for d.msgs.Load() < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the device received %d of the %d signalling messages sent", d.msgs.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// recording starts (on) or stops recording latencies and returns what was
// recorded since the last start.
func (d *sinkDevice) recording(on bool) []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.latency
	d.latency = nil
	d.record = on
	return out
}

func (d *sinkDevice) Close() error {
	d.n.Libp2p().RemoveStreamHandler(signalwire.ProtocolID)
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	err := d.n.Close() // resets the streams, which ends the handlers
	d.wg.Wait()
	return err
}
