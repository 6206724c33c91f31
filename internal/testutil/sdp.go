package testutil

import (
	"testing"

	"github.com/pion/webrtc/v4"
)

// AudioOnlyOffer is a viewer's offer that receives audio and no video: a
// device has nothing to answer it with, so it and a WHEP bridge must refuse
// it.
func AudioOnlyOffer(t testing.TB) webrtc.SessionDescription {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
