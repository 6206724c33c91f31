package node

import (
	"fmt"
	"strings"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/node/udpbatch"
	"github.com/ersmesh/ersmesh/signalwire"
)

// transportOf is the join's transport: EMS players send "fmp4" or "srtp";
// older ones send none and get srtp, the only transport they know.
func transportOf(join *signalwire.Message) string {
	if join.Transport == "fmp4" {
		return "fmp4"
	}
	return "srtp"
}

// withSessionInfo adds note to an SDP as its session information line
// ("i=", RFC 8866 §5.4), right after the session name: browsers ignore it,
// our player shows it.
func withSessionInfo(sdp, note string) string {
	if note == "" {
		return sdp
	}
	i := strings.Index(sdp, "\r\ns=")
	if i < 0 {
		return sdp
	}
	j := strings.Index(sdp[i+2:], "\r\n")
	if j < 0 {
		return sdp
	}
	at := i + 2 + j + 2
	return sdp[:at] + "i=" + strings.NewReplacer("\r", " ", "\n", " ").Replace(note) + "\r\n" + sdp[at:]
}

// fmp4Note is what an fmp4 viewer of st is told when its audio cannot come
// along: fMP4 here carries AAC and Opus.
func fmp4Note(st *media.Stream) string {
	a := st.Audio()
	if a == nil || a.Codec == media.AudioAAC || a.Codec == media.AudioOpus || a.Codec == media.AudioNone {
		return ""
	}
	return "This stream's audio is " + a.Codec.String() + ", which the fmp4 transport does not carry: video only. Use transport srtp to hear it."
}

// peerAPI makes the device's PeerConnections, each with its own
// webrtc.API over the device's one MediaEngine and settings: that way each
// gets its own udpbatch.Net, the sockets its ICE agent opens, which its
// srtp viewer's writer holds while it writes a frame and flushes after,
// one system call for the frame's packets, and its NACK responder holds
// while it resends what one NACK asks for (docs/media-benchmarks.md). pion
// copies the MediaEngine and builds the interceptors per PeerConnection
// anyway, so an API per PeerConnection costs a few small structs.
type peerAPI struct {
	m       *webrtc.MediaEngine
	se      webrtc.SettingEngine
	batches *udpbatch.Counters // the device's, for its metrics; nil: none
}

// NewPeerConnection makes a PeerConnection and returns its sockets' Net.
func (a *peerAPI) NewPeerConnection(cfg webrtc.Configuration) (*webrtc.PeerConnection, *udpbatch.Net, error) {
	n, err := udpbatch.New(nil, a.batches)
	if err != nil {
		return nil, nil, fmt.Errorf("network interfaces: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := media.AddInterceptors(ir, n); err != nil {
		return nil, nil, fmt.Errorf("interceptors: %w", err)
	}
	se := a.se
	se.SetNet(n)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(a.m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).NewPeerConnection(cfg)
	if err != nil {
		return nil, nil, err
	}
	return pc, n, nil
}
