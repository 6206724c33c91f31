package bridge

// ICE restarts of WHEP sessions (RFC 9725 section 4.3): the client PATCHes
// an SDP fragment with its new ice-ufrag and ice-pwd and If-Match: *; the
// bridge relays the credentials to the device as a "restart" signal (and
// the fragment's candidates as usual), waits for the device's new answer,
// and returns its credentials and candidates as a fragment with 200. The
// device's DTLS session, and so the media's keys, stay.

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ersmesh/ersmesh/signalwire"
)

// takeAnswer hands a device's answer to the ICE restart waiting for it; an
// answer nobody waits for is dropped.
func (s *whepSession) takeAnswer(m *signalwire.Message) {
	var sd struct {
		SDP string `json:"sdp"`
	}
	if json.Unmarshal(m.Payload, &sd) != nil || sd.SDP == "" {
		return
	}
	select {
	case s.answers <- sd.SDP:
	default:
	}
}

// claim sets *flag, a field of s under s.mu, and reports whether it was
// clear.
func (s *whepSession) claim(flag *bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := *flag
	*flag = true
	return !was
}

func (b *Bridge) whepRestart(w http.ResponseWriter, r *http.Request, s *whepSession, frag *sdpFrag) {
	if !s.claim(&s.restarting) {
		b.writeWHEPError(w, whepFail(http.StatusConflict, "an ICE restart of this session is under way"))
		return
	}
	defer func() {
		s.mu.Lock()
		s.restarting = false
		s.mu.Unlock()
	}()
	select {
	case <-s.answers: // a late answer of an earlier restart
	default:
	}
	payload, _ := json.Marshal(map[string]string{"ufrag": frag.ufrag, "pwd": frag.pwd})
	if err := s.conn.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "restart", SID: s.sid, Payload: payload}); err != nil {
		b.writeWHEPError(w, whepFail(http.StatusServiceUnavailable, "lost the device: %v", err))
		return
	}
	if herr := s.forward(frag); herr != nil {
		b.writeWHEPError(w, herr)
		return
	}
	t := time.NewTimer(whepAnswerTimeout)
	defer t.Stop()
	var answer string
	select {
	case answer = <-s.answers:
	case <-s.done:
		b.writeWHEPError(w, whepFail(http.StatusServiceUnavailable, "the device ended the session"))
		return
	case <-t.C:
		b.writeWHEPError(w, whepFail(http.StatusGatewayTimeout, "the device did not answer the ICE restart in time"))
		return
	case <-r.Context().Done():
		return
	}
	s.mu.Lock()
	s.ufrag = frag.ufrag
	s.mu.Unlock()
	s.log.Info("WHEP session restarted ICE")
	h := w.Header()
	h.Set("Content-Type", fragType)
	h.Set("ETag", s.etag)
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, answerFragment(answer))
}

// answerFragment is the part of the device's answer an ICE restart returns:
// its ICE credentials, then the first media section's mid and the
// candidates (under BUNDLE they serve every section).
func answerFragment(sdp string) string {
	var head, cands strings.Builder
	ufrag, pwd, mid := "", "", ""
	for line := range strings.Lines(sdp) {
		l := strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:") && ufrag == "":
			ufrag = l
		case strings.HasPrefix(l, "a=ice-pwd:") && pwd == "":
			pwd = l
		case strings.HasPrefix(l, "a=mid:") && mid == "":
			mid = l
		case strings.HasPrefix(l, "a=candidate:"):
			cands.WriteString(l + "\r\n")
		}
	}
	for _, l := range []string{ufrag, pwd} {
		if l != "" {
			head.WriteString(l + "\r\n")
		}
	}
	head.WriteString("m=audio 9 RTP/AVP 0\r\n")
	if mid != "" {
		head.WriteString(mid + "\r\n")
	}
	head.WriteString(cands.String())
	head.WriteString("a=end-of-candidates\r\n")
	return head.String()
}
