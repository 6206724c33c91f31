package testdevice

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/media"
)

// Restartable is a device serving one room with the built-in sample clip
// as stream "sample", on loopback. Start and Stop are for the test's
// goroutine.
type Restartable struct {
	t       testing.TB
	boot    []multiaddr.Multiaddr
	room    string
	keyFile string
	listen  string
	log     *slog.Logger
	host    *mesh.Host
	dev     *node.Device
}

// New starts a device for room that bootstraps from boot and logs to log;
// the test's end stops it.
func New(t testing.TB, boot []multiaddr.Multiaddr, room string, log *slog.Logger) *Restartable {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	rd := &Restartable{t: t, boot: boot, room: room, log: log, keyFile: filepath.Join(t.TempDir(), "device.key"),
		listen: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
	rd.Start()
	t.Cleanup(rd.Stop)
	return rd
}

// Start starts the device (again), with the same identity and port.
func (rd *Restartable) Start() {
	t := rd.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := mesh.New(ctx, mesh.Config{IdentityFile: rd.keyFile, ListenAddrs: []string{rd.listen}, Bootstrap: rd.boot, Server: true, Logger: rd.log})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := media.NewSampleStream("sample", rd.log)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	dev, err := node.New(ctx, node.Config{Mesh: h, Rooms: []string{rd.room}, Streams: map[string]*media.Stream{"sample": stream},
		IncludeLoopback: true, Logger: rd.log})
	if err != nil {
		stream.Close()
		h.Close()
		t.Fatal(err)
	}
	rd.host, rd.dev = h, dev
}

// Stop stops the device, as a power cut would to its viewers: their
// sessions are gone. Stopping a stopped device does nothing.
func (rd *Restartable) Stop() {
	if rd.dev != nil {
		rd.dev.Close()
		rd.host.Close()
		rd.dev, rd.host = nil, nil
	}
}

// ID is the device's peer ID, the same across restarts.
func (rd *Restartable) ID() peer.ID { return rd.host.ID() }

// Device is the running device (nil while stopped).
func (rd *Restartable) Device() *node.Device { return rd.dev }
