package bridge_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/ersproto"
)

// TestBridgeProtectsDeviceWithViewer: while a viewer's session runs, the
// bridge's connection manager may not trim its connection to the device;
// once the viewer leaves, the protection is lifted.
func TestBridgeProtectsDeviceWithViewer(t *testing.T) {
	var h host.Host
	base := startTuned(t, func(c *bridge.Config) { h = c.Host })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, base)
	device, err := peer.Decode(joinDemo(t, ctx, c, ersproto.Join{StreamName: "sample", Transport: ersproto.TransportSRTP}))
	if err != nil {
		t.Fatal(err)
	}
	cm := h.ConnManager()
	if !cm.IsProtected(device, bridge.ProtectTag) {
		t.Fatal("the bridge does not protect its connection to a device it relays a viewer to")
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for cm.IsProtected(device, bridge.ProtectTag) {
		if time.Now().After(deadline) {
			t.Fatal("the device is still protected after the bridge's only viewer left")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
