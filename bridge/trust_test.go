package bridge_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/internal/sioclient"
	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/trust"
)

// startSecret runs the demo mesh with a room secret on room "demo".
func startSecret(t *testing.T, secret string) string {
	t.Helper()
	d := startDemo(t, demo.Config{
		TuneDevice: func(c *node.Config) { c.Secrets = map[string]string{"demo": secret} },
	})
	return baseOf(t, d.URL)
}

// nextMessage returns the next "message" event, or the reason of a
// "remove" if that comes first.
func nextMessage(ctx context.Context, c *sioclient.Client) (ersproto.Message, string, error) {
	for {
		p, err := c.Next(ctx)
		if err != nil {
			return ersproto.Message{}, "", err
		}
		e, err := sioclient.DecodeEvent(p)
		if err != nil || len(e.Args) == 0 {
			continue
		}
		switch e.Name {
		case ersproto.EventMessage:
			m, err := ersproto.ParseMessage(e.Args[0])
			return m, "", err
		case ersproto.EventRemove:
			var r ersproto.Remove
			json.Unmarshal(e.Args[0], &r)
			return ersproto.Message{}, "removed: " + r.Reason, nil
		}
	}
}

// viewerSession joins "demo" with nonce; if secret is set it answers the
// challenge proving proveFP, then answers the offer from a PeerConnection
// holding cert. It returns the offer, the remove reason if the device
// ended the session, and the number of RTP packets received.
func viewerSession(t *testing.T, base, nonce, secret string, proveFP string, cert *webrtc.Certificate) (offer ersproto.Message, removed string, packets *atomic.Int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, base)
	ack, err := c.EmitAck(ctx, ersproto.EventJoin, ersproto.JoinArgs("demo", ersproto.Join{StreamName: "sample", Transport: ersproto.TransportSRTP, Nonce: nonce})...)
	if err != nil || len(ack) != 2 || !strings.Contains(string(ack[1]), "12D3KooW") {
		t.Fatalf("join: %s %v", ack, err)
	}
	m, removed, err := nextMessage(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if removed != "" {
		return m, removed, nil
	}
	if m.Type == ersproto.TypeChallenge {
		var ch ersproto.Challenge
		m.Decode(&ch)
		proof := trust.Proof(secret, "demo", ch.Challenge, proveFP)
		auth, _ := ersproto.Reply(m, ersproto.TypeAuth, ersproto.Auth{Fingerprint: proveFP, Proof: proof})
		c.Emit(ctx, ersproto.EventMessage, auth)
		if m, removed, err = nextMessage(ctx, c); err != nil {
			t.Fatal(err)
		} else if removed != "" {
			return m, removed, nil
		}
	}
	if m.Type != "offer" {
		t.Fatalf("got a %q message, want the offer", m.Type)
	}
	offer = m
	conf := webrtc.Configuration{}
	if cert != nil {
		conf.Certificates = []webrtc.Certificate{*cert}
	}
	pc, err := webrtc.NewPeerConnection(conf)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	packets = &atomic.Int64{}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			packets.Add(1)
		}
	})
	var sd webrtc.SessionDescription
	json.Unmarshal(m.Payload, &sd)
	if err := pc.SetRemoteDescription(sd); err != nil {
		t.Fatal(err)
	}
	answer, _ := pc.CreateAnswer(nil)
	gathered := webrtc.GatheringCompletePromise(pc)
	pc.SetLocalDescription(answer)
	<-gathered
	reply, _ := ersproto.Reply(m, ersproto.TypeAnswer, pc.LocalDescription())
	c.Emit(ctx, ersproto.EventMessage, reply)
	// Wait for media, or for the device to end the session.
	done := make(chan string, 1)
	go func() {
		for {
			_, r, err := nextMessage(ctx, c)
			if r != "" || err != nil {
				done <- r
				return
			}
		}
	}()
	for packets.Load() < 50 {
		select {
		case r := <-done:
			return offer, r, packets
		case <-ctx.Done():
			return offer, "timeout", packets
		case <-time.After(20 * time.Millisecond):
		}
	}
	return offer, "", packets
}

// TestSignedOffer: the offer carries the device's signature over the room,
// the viewer's nonce and the SDP; it checks for that nonce and no other.
func TestSignedOffer(t *testing.T) {
	base := startMesh(t)
	offer, removed, packets := viewerSession(t, base, "nonce-A", "", "", nil)
	if removed != "" || packets.Load() < 50 {
		t.Fatalf("session ended %q with %v packets", removed, packets)
	}
	var p struct{ SDP, Signature string }
	json.Unmarshal(offer.Payload, &p)
	id, err := peer.Decode(offer.From)
	if err != nil {
		t.Fatal(err)
	}
	if err := trust.VerifyOffer(id, "demo", "sample", "nonce-A", p.SDP, p.Signature); err != nil {
		t.Errorf("offer signature: %v", err)
	}
	if trust.VerifyOffer(id, "demo", "sample", "nonce-B", p.SDP, p.Signature) == nil {
		t.Error("the signature verifies for another nonce: an old offer could be replayed")
	}
}

func TestRoomSecret(t *testing.T) {
	base := startSecret(t, "open sesame")
	cert, fp := testutil.DTLSCert(t)
	other, _ := testutil.DTLSCert(t)

	t.Run("wrong secret", func(t *testing.T) {
		offer, removed, _ := viewerSession(t, base, "n", "guess", fp, &cert)
		if offer.Type == "offer" || !strings.Contains(removed, "unauthorized: wrong room secret") {
			t.Errorf("offer %q, removed %q: want a refusal before any offer", offer.Type, removed)
		}
	})
	t.Run("proof replayed with another certificate", func(t *testing.T) {
		// What a bridge that saw a viewer's proof could try: the proof is
		// for fp, the DTLS certificate is its own.
		_, removed, _ := viewerSession(t, base, "n", "open sesame", fp, &other)
		if !strings.Contains(removed, "fingerprint") {
			t.Errorf("removed %q, want the fingerprint refusal", removed)
		}
	})
	t.Run("right secret", func(t *testing.T) {
		_, removed, packets := viewerSession(t, base, "n", "open sesame", fp, &cert)
		if removed != "" || packets == nil || packets.Load() < 50 {
			t.Errorf("removed %q, packets %v", removed, packets)
		}
	})
}
