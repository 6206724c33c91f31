package bridge_test

import (
	"context"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/ersproto"
)

// TestUnreachableDevice: a room whose device is published but does not
// answer is acked as empty, as ERS bridges ack it, plus "unreachable" so
// that our player can tell the viewer a dead device from an empty room.
func TestUnreachableDevice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startDemo(t, demo.Config{})
	// The device stops serving; its record stays in the DHT.
	if err := d.Device().Close(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, ctx, d.Bridge)
	ack, err := c.EmitAck(ctx, ersproto.EventJoin, ersproto.JoinArgs("demo", ersproto.Join{StreamName: "sample", Transport: ersproto.TransportSRTP})...)
	if err != nil {
		t.Fatal(err)
	}
	if len(ack) != 2 || string(ack[0]) != "null" || compact(ack[1]) != `{"clients":{},"unreachable":true}` {
		t.Errorf("join ack %s, want [null, {\"clients\":{}, \"unreachable\":true}]", ack)
	}
}
