package bridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/signalwire"
)

// errUnreachable wraps the failure to reach a room's device after it was
// found in the mesh. Callers tell it from a failed lookup, and from
// mesh.ErrNotFound (no device serves the room).
var errUnreachable = errors.New("the room's device cannot be reached")

// dialDevice finds the device serving room and opens a signalling stream to
// it. Both ERS viewers and WHEP sessions start here.
func (b *Bridge) dialDevice(ctx context.Context, room string) (*signalwire.Conn, peer.ID, error) {
	info, err := b.cfg.Resolver.Resolve(ctx, room)
	if err != nil {
		return nil, "", err
	}
	// Devices behind NAT are reached through a relay; signalling is small
	// and may use such limited connections.
	sctx := network.WithAllowLimitedConn(ctx, "ersmesh signalling")
	if err := b.cfg.Host.Connect(sctx, info); err != nil {
		return nil, info.ID, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	st, err := b.cfg.Host.NewStream(sctx, info.ID, signalwire.ProtocolID)
	if err != nil {
		return nil, info.ID, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	// While the session lives, the connection manager must not trim the
	// connection that carries it (mesh.Protector).
	return signalwire.NewConn(&protectedStream{Stream: st, release: b.protect.Hold(info.ID)}), info.ID, nil
}

// ProtectTag marks, on the host's connection manager, devices this bridge
// relays a session to: trimming never closes those connections.
const ProtectTag = "ersmesh-bridge-sessions"

// protectedStream lifts its connection's protection when it is closed or
// reset, the two ways every session ends.
type protectedStream struct {
	network.Stream
	release func() // idempotent
}

func (s *protectedStream) Close() error {
	defer s.release()
	return s.Stream.Close()
}

func (s *protectedStream) Reset() error {
	defer s.release()
	return s.Stream.Reset()
}
