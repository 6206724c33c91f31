package node

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/media"
)

// negotiate runs one offer/answer between a PeerConnection of api carrying
// an srtp viewer's tracks (H.264 video, Opus audio) and a pion viewer with
// pion's default codecs, as a browser offers many; it returns the offer.
func negotiate(tb testing.TB, api *peerAPI) string {
	tb.Helper()
	pc, _, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		tb.Fatal(err)
	}
	defer pc.Close()
	for _, c := range []webrtc.RTPCodecCapability{media.H264Codec, {MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}} {
		tr, err := webrtc.NewTrackLocalStaticRTP(c, strings.Split(c.MimeType, "/")[0], "s")
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			tb.Fatal(err)
		}
	}
	viewer, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		tb.Fatal(err)
	}
	defer viewer.Close()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		tb.Fatal(err)
	}
	if err := viewer.SetRemoteDescription(offer); err != nil {
		tb.Fatal(err)
	}
	answer, err := viewer.CreateAnswer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := viewer.SetLocalDescription(answer); err != nil {
		tb.Fatal(err)
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		tb.Fatal(err)
	}
	return offer.SDP
}

// The device offers only the codecs it sends (media.RegisterCodecs), not
// pion's VP8, VP9, AV1 and G.722, and still H.265 for H.265 streams.
func TestOfferListsOnlyTheDevicesCodecs(t *testing.T) {
	api, err := newWebRTCAPI(true, iceFailedTimeout)
	if err != nil {
		t.Fatal(err)
	}
	sdp := negotiate(t, api)
	for _, no := range []string{" VP8/", " VP9/", " AV1/", " G722/"} {
		if strings.Contains(sdp, no) {
			t.Errorf("offer lists%s, which the device never sends", no)
		}
	}
	for _, yes := range []string{" H264/90000", " H265/90000", " opus/48000/2", " PCMU/8000", " PCMA/8000", " rtx/90000"} {
		if !strings.Contains(sdp, yes) {
			t.Errorf("offer lacks%s", yes)
		}
	}
}

// BenchmarkNegotiation is one srtp viewer's offer/answer on the device's
// side and a pion viewer's (go test -run xxx -bench Negotiation -benchmem
// ./node): what a join costs before ICE.
func BenchmarkNegotiation(b *testing.B) {
	api, err := newWebRTCAPI(true, iceFailedTimeout)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		negotiate(b, api)
	}
}
