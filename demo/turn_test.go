package demo

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/ersviewer"
	"github.com/ersmesh/ersmesh/internal/testutil"
)

// TestViewerThroughTURN plays the demo with the viewer forced onto TURN
// relays (ICE transport policy "relay"), once reaching the TURN server
// over UDP and once over TCP, and checks from the selected candidate pair
// that the media really took that path. It also checks the bridge handed
// out per-viewer credentials and no static ones.
func TestViewerThroughTURN(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := startTest(t, ctx, Config{TURN: true, Logger: testutil.Logger(t)})
	base := d.URL[:strings.Index(d.URL, "/?")]
	users := map[string]bool{}
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 25*time.Second)
			defer cancel()
			res, err := ersviewer.Play(ctx, ersviewer.Options{
				Bridge: base, Room: "demo", Stream: "sample",
				Policy: webrtc.ICETransportPolicyRelay, TURNTransport: transport,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.TURN) != 1 || len(res.TURN[0].URLs) != 2 {
				t.Fatalf("turnservers = %+v, want one server with udp and tcp URLs", res.TURN)
			}
			u := res.TURN[0].Username
			if exp, id, ok := strings.Cut(u, ":"); !ok || len(exp) < 10 || id == "" || users[u] {
				t.Errorf("TURN username %q: want a fresh expiry:id", u)
			}
			users[u] = true
			if res.Local.CandidateType != webrtc.ICECandidateTypeRelay || res.Local.RelayProtocol != transport {
				t.Errorf("selected local candidate %s/%s relay protocol %q, want relay over %s",
					res.Local.CandidateType, res.Local.Protocol, res.Local.RelayProtocol, transport)
			}
			if res.Packets == 0 || res.Codec != webrtc.MimeTypeH264 {
				t.Errorf("got %d packets of %q", res.Packets, res.Codec)
			}
		})
	}
}
