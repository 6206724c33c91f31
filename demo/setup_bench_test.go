package demo

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/ersviewer"
)

// BenchmarkConnectionSetup times a viewer's whole setup on loopback, from
// opening the Socket.IO session to the first RTP packet of video: direct
// media, and media forced through TURN reached over UDP and over TCP.
// Signalling goes bridge → device over a direct libp2p connection here;
// internal/nattest has the relayed-signalling case.
//
// Run: go test -run '^$' -bench ConnectionSetup -benchtime 10x ./demo
func BenchmarkConnectionSetup(b *testing.B) {
	ctx := context.Background()
	d, err := Start(ctx, Config{Addr: "127.0.0.1:0", TURN: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	base := d.URL[:strings.Index(d.URL, "/?")]
	for _, c := range []struct {
		name      string
		policy    webrtc.ICETransportPolicy
		transport string
	}{
		{"direct", webrtc.ICETransportPolicyAll, ""},
		{"turn-udp", webrtc.ICETransportPolicyRelay, "udp"},
		{"turn-tcp", webrtc.ICETransportPolicyRelay, "tcp"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := ersviewer.Play(ctx, ersviewer.Options{
					Bridge: base, Room: "demo", Stream: "sample", Packets: 1,
					Policy: c.policy, TURNTransport: c.transport,
				})
				cancel()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
