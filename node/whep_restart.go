package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/signalwire"
)

// A WHEP viewer restarts ICE as RFC 9725 section 4.3 says: it PATCHes its
// new ICE credentials (ufrag and password) and gets the server's. The bridge
// relays them as a "restart" signal with payload {ufrag, pwd}; the device
// applies the viewer's first offer again with the new credentials (pion
// restarts ICE when a new remote offer changes them), answers, and sends
// the answer, whose credentials and candidates the bridge returns. Its DTLS
// session, and so its media and keys, stay: only the path changes. The
// viewer's new candidates follow as "candidate" signals.

// whepRestart is the payload of a WHEP viewer's ICE restart.
type whepRestart struct {
	Ufrag string `json:"ufrag"`
	Pwd   string `json:"pwd"`
}

// Bounds on the credentials, which RFC 8839 section 5.4 gives as 4 to 256
// ice-chars.
const maxICECredential = 256

func validICEChars(v string) bool {
	if v == "" || len(v) > maxICECredential {
		return false
	}
	for _, c := range []byte(v) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// withICECredentials is offer with its ice-ufrag and ice-pwd lines set to
// ufrag and pwd, and without its candidates (the new ones are trickled).
func withICECredentials(offer, ufrag, pwd string) string {
	var b strings.Builder
	for line := range strings.Lines(offer) {
		l := strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			b.WriteString("a=ice-ufrag:" + ufrag + "\r\n")
		case strings.HasPrefix(l, "a=ice-pwd:"):
			b.WriteString("a=ice-pwd:" + pwd + "\r\n")
		case strings.HasPrefix(l, "a=candidate:"), l == "a=end-of-candidates":
		default:
			b.WriteString(l + "\r\n")
		}
	}
	return b.String()
}

// restartWHEP restarts ICE with a WHEP viewer's new credentials.
func (s *session) restartWHEP(pc *webrtc.PeerConnection, m *signalwire.Message) error {
	var r whepRestart
	if err := json.Unmarshal(m.Payload, &r); err != nil || !validICEChars(r.Ufrag) || !validICEChars(r.Pwd) {
		return refuse(signalwire.CodeBadOffer, "ICE restart: the credentials are not ice-chars of at most %d bytes", maxICECredential)
	}
	if s.viewerOffer == "" || pc.SignalingState() != webrtc.SignalingStateStable {
		return nil // no answer yet: nothing to restart
	}
	offer := withICECredentials(s.viewerOffer, r.Ufrag, r.Pwd)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return refuse(signalwire.CodeBadOffer, "ICE restart: %v", err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("ICE restart answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("ICE restart answer: %w", err)
	}
	t := time.NewTimer(answerGatherTimeout)
	select {
	case <-gathered:
	case <-t.C:
	}
	t.Stop()
	s.viewerOffer = offer
	s.countRestart()
	s.log.Info("restarting ICE with the WHEP viewer's new credentials")
	payload, err := json.Marshal(map[string]string{"type": "answer", "sdp": pc.LocalDescription().SDP})
	if err != nil {
		return err
	}
	if err := s.send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "answer", SID: s.sid, Payload: payload}); err != nil {
		s.log.Info("send ICE restart answer", "err", err) // the stream's end is the run loop's to handle
	}
	return nil
}
