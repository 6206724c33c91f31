package bridge

// Resuming a WHEP session through this bridge. A WHEP viewer's session
// belongs to the viewer and the device: when the bridge that started it
// dies, the device keeps the PeerConnection, and the viewer re-attaches the
// session through another bridge, without touching the media. The viewer
// proves the session is its own with the resume key its offer carried
// (trust.ResumeKeyOfOffer), answering a fresh challenge of the device; this
// bridge only relays, as it does for ERS resumes (viewer.go).
//
// HTTP needs two requests for the challenge's round trip:
//
//	POST /whep/<room>/<stream>          Ersmesh-Resume: <session id>
//	  → 202, Location: /whep/session/<id>, Ersmesh-Resume-Challenge: <c>
//	PATCH /whep/session/<id>            Ersmesh-Resume-Proof: <signature>
//	  → 204 (re-attached), or the device's refusal (403, 404)
//
// Between them the session is in the table, its relay goroutine reading
// the device's stream as for any session; the device gives up on a proof
// that does not come within its own timeout, which ends the relay.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/signalwire"
)

// Headers of WHEP resumes, and of the POST response that names the
// device's session id (which a resume needs).
const (
	whepResumeHeader    = "Ersmesh-Resume"
	whepChallengeHeader = "Ersmesh-Resume-Challenge"
	whepProofHeader     = "Ersmesh-Resume-Proof"
	whepSessionHeader   = "Ersmesh-Session"
)

// Limits on the values of resume headers: a device's session id is 24 hex
// digits, its challenge 22 base64url characters, a P-256 signature 88
// base64 characters.
const (
	maxResumeSID       = 64
	maxResumeChallenge = 64
	maxResumeProof     = 128
)

// checkToken reports whether v is non-empty, at most n bytes and made of
// characters the values above use (base64, base64url, hex).
func checkToken(v string, n int) error {
	if v == "" || len(v) > n {
		return fmt.Errorf("empty or longer than %d bytes", n)
	}
	for _, c := range []byte(v) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '+' || c == '/' || c == '=' || c == '-' || c == '_':
		default:
			return fmt.Errorf("character %q is not base64 or hex", c)
		}
	}
	return nil
}

// whepResume starts re-attaching the device's session sid through this
// bridge: the device's challenge goes back with the new session's URL.
func (b *Bridge) whepResume(w http.ResponseWriter, r *http.Request, p whepPath, sid string) {
	if err := checkToken(sid, maxResumeSID); err != nil {
		b.writeWHEPError(w, whepFail(http.StatusBadRequest, "bad %s header: %v", whepResumeHeader, err))
		return
	}
	s, challenge, herr := b.startResume(r, p, sid)
	if herr != nil {
		b.writeWHEPError(w, herr)
		return
	}
	h := w.Header()
	h.Set("Location", whepSessionPrefix+s.id)
	h.Set("ETag", s.etag)
	h.Set("Accept-Patch", fragType)
	h.Set(whepChallengeHeader, challenge)
	h.Set(whepDeviceHeader, s.device.String())
	w.WriteHeader(http.StatusAccepted)
}

func (b *Bridge) startResume(r *http.Request, p whepPath, sid string) (*whepSession, string, *whepError) {
	ctx, cancel, conn, device, log, herr := b.dialWHEP(r.Context(), p)
	if herr != nil {
		return nil, "", herr
	}
	defer cancel()
	interrupt := context.AfterFunc(ctx, conn.Interrupt)
	fail := func(e *whepError) (*whepSession, string, *whepError) {
		interrupt()
		conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "WHEP resume failed: " + truncate(e.reason, 200)})
		conn.Close()
		return nil, "", e
	}
	id := newSessionID()
	log = log.With("whep", id[:8], "resume", sid)
	if err := conn.Send(&signalwire.Message{Kind: signalwire.KindResume, Session: "whep-" + id[:8], Room: p.room.String(), SID: sid}); err != nil {
		return fail(whepFail(http.StatusServiceUnavailable, "the device of room %q cannot be reached: %v", p.room.String(), err))
	}
	challenge, herr := awaitChallenge(ctx, conn, p.room.String())
	if herr != nil {
		log.Info("WHEP resume refused", "status", herr.status, "reason", herr.reason)
		return fail(herr)
	}
	s := &whepSession{
		id: id, etag: `"` + newSessionID()[:16] + `"`, room: p.room.String(), device: device, sid: sid,
		offer: &sdpOffer{}, conn: conn, log: log, done: make(chan struct{}), attached: make(chan struct{}),
		answers: make(chan string, 1),
	}
	if !interrupt() {
		return fail(whepFail(http.StatusServiceUnavailable, "the request ended before the resume started"))
	}
	if herr := b.keepWHEP(s); herr != nil {
		return fail(herr)
	}
	log.Info("WHEP resume challenged", "device", device)
	return s, challenge, nil
}

// awaitChallenge reads the device's resume challenge.
func awaitChallenge(ctx context.Context, conn *signalwire.Conn, roomName string) (string, *whepError) {
	deadline, _ := ctx.Deadline()
	for {
		m, err := conn.Recv(time.Until(deadline))
		if err != nil {
			return "", whepFail(http.StatusServiceUnavailable, "the device of room %q did not answer the resume: %v", roomName, err)
		}
		switch m.Kind {
		case signalwire.KindPing:
		case signalwire.KindReject, signalwire.KindLeave:
			return "", refusalStatus(m, roomName)
		case signalwire.KindSignal:
			if m.Type != ersproto.TypeResumeChallenge {
				continue
			}
			var c ersproto.Challenge
			if json.Unmarshal(m.Payload, &c) != nil || checkToken(c.Challenge, maxResumeChallenge) != nil {
				return "", whepFail(http.StatusBadGateway, "the device sent an unusable resume challenge")
			}
			return c.Challenge, nil
		default:
			return "", whepFail(http.StatusBadGateway, "the device sent %q before its resume challenge", m.Kind)
		}
	}
}

// whepProve relays the viewer's resume proof (PATCH with
// Ersmesh-Resume-Proof) and waits for the device to accept or refuse it.
func (b *Bridge) whepProve(w http.ResponseWriter, r *http.Request, s *whepSession, proof string) {
	if s.attached == nil {
		b.writeWHEPError(w, whepFail(http.StatusConflict, "this session is not being resumed"))
		return
	}
	if err := checkToken(proof, maxResumeProof); err != nil {
		b.writeWHEPError(w, whepFail(http.StatusBadRequest, "bad %s header: %v", whepProofHeader, err))
		return
	}
	if !s.claim(&s.proved) {
		b.writeWHEPError(w, whepFail(http.StatusConflict, "the resume proof was sent already"))
		return
	}
	payload, _ := json.Marshal(ersproto.ResumeProof{Signature: proof})
	if err := s.conn.Send(&signalwire.Message{Kind: signalwire.KindSignal, Type: ersproto.TypeResumeProof, SID: s.sid, Payload: payload}); err != nil {
		b.writeWHEPError(w, whepFail(http.StatusServiceUnavailable, "lost the device: %v", err))
		return
	}
	t := time.NewTimer(whepAnswerTimeout)
	defer t.Stop()
	select {
	case <-s.attached:
		s.log.Info("WHEP viewer re-attached its session", "device", s.device)
		b.metrics.joins.WithLabelValues("resumed").Inc()
		w.Header().Set("ETag", s.etag)
		w.WriteHeader(http.StatusNoContent)
	case <-s.done:
		s.mu.Lock()
		e := s.refusal
		s.mu.Unlock()
		if e == nil {
			e = whepFail(http.StatusServiceUnavailable, "lost the device before it took the resume")
		}
		b.writeWHEPError(w, e)
	case <-t.C:
		s.end("the device did not take the resume in time")
		b.writeWHEPError(w, whepFail(http.StatusGatewayTimeout, "the device did not take the resume in time"))
	case <-r.Context().Done():
		s.end("the WHEP client went away during its resume")
	}
}

// isAttached reports whether the device relays s's session through this
// bridge: always for a session this bridge started, after the device took
// the proof for a resumed one.
func (s *whepSession) isAttached() bool {
	if s.attached == nil {
		return true
	}
	select {
	case <-s.attached:
		return true
	default:
		return false
	}
}

// errNotAttached answers requests that need the device on a session that
// waits for its resume proof.
var errNotAttached = errors.New("this session waits for its resume proof")
