package bridge

// WHEP, the WebRTC-HTTP Egress Protocol (draft-ietf-wish-whep; its ingest
// twin WHIP is RFC 9725): any WHEP client watches any device of the mesh
// through this bridge. The bridge turns the client's POSTed offer into a
// join with signalwire.Message ViewerOffers set, the device answers, and the
// answer goes back as the POST's response. The session then lives in the
// WHEP session table until the client DELETEs it, the device ends it (the
// viewer's PeerConnection failed or never connected), or the bridge closes.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/bridge/access"
	"github.com/ersmesh/ersmesh/internal/keylimit"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/signalwire"
	"github.com/ersmesh/ersmesh/trust"
)

// Content types of WHEP bodies.
const (
	sdpType  = "application/sdp"
	fragType = "application/trickle-ice-sdpfrag" // RFC 8840 section 9.1
)

// whepAnswerTimeout bounds a POST: finding the device, its accept, and its
// answer, which may wait up to two seconds for ICE gathering.
const whepAnswerTimeout = joinTimeout + 5*time.Second

// whepBodyTimeout bounds reading a request body, so a client trickling
// bytes cannot hold a handler.
const whepBodyTimeout = 10 * time.Second

// whepSessionPrefix is where sessions live; Location points below it. POST
// goes to rooms, DELETE and PATCH to sessions, so a room called "session"
// is still reachable.
const whepSessionPrefix = "/whep/session/"

// whepSession is one WHEP client watching one device. Its relay goroutine
// owns conn's reading side; PATCH and DELETE only Send and Interrupt.
type whepSession struct {
	id, etag string
	room     string
	device   peer.ID
	offer    *sdpOffer
	ice      []signalwire.ICEServer // given to both ends: one set of TURN credentials
	conn     *signalwire.Conn
	log      *slog.Logger
	done     chan struct{} // closed when relay has ended
	sid      string        // the device's id of the session, for resumes

	// attached is nil for a session this bridge started; for one being
	// resumed here (whep_resume.go) relay closes it when the device took
	// the viewer's proof.
	attached   chan struct{}
	attachOnce sync.Once

	mu       sync.Mutex
	reason   string     // why the client or bridge ended it
	trickled int        // candidates forwarded so far, bounded by maxTrickled
	proved   bool       // a resume proof was relayed
	refusal  *whepError // the device's refusal of a resume

	// ICE restarts (whep_restart.go): the client's current ufrag ("" when
	// unknown, as after a resume), one restart at a time, and the device's
	// answers, which relay hands over.
	ufrag      string
	restarting bool
	answers    chan string
}

// maxTrickled bounds the candidates one session may PATCH to its device: a
// client has a handful per network interface, and a device must not be
// flooded through a bridge.
const maxTrickled = 256

// takeCandidates counts n more candidates against maxTrickled.
func (s *whepSession) takeCandidates(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trickled+n > maxTrickled {
		return false
	}
	s.trickled += n
	return true
}

// end stops the session from the bridge's side: relay says goodbye to the
// device and exits.
func (s *whepSession) end(reason string) {
	s.mu.Lock()
	if s.reason == "" {
		s.reason = reason
	}
	s.mu.Unlock()
	s.conn.Interrupt()
}

// whepError is a failed WHEP request: an HTTP status and a reason for the
// client, in plain text.
type whepError struct {
	status int
	reason string
}

func (e *whepError) Error() string { return e.reason }

func whepFail(status int, format string, args ...any) *whepError {
	return &whepError{status: status, reason: fmt.Sprintf(format, args...)}
}

func (b *Bridge) writeWHEPError(w http.ResponseWriter, e *whepError) {
	h := w.Header()
	switch e.status {
	case http.StatusUnauthorized:
		// RFC 9110 section 11.6.1: a 401 names the scheme to use.
		h.Set("WWW-Authenticate", `Bearer realm="ersmesh"`)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		h.Set("Retry-After", "5")
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	io.WriteString(w, e.reason+"\n")
}

// setCORS lets pages on any site use the endpoint, as the ERS endpoint
// does. No cookies are involved (tokens travel in Authorization), so "*"
// is enough.
func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Location, Link, ETag, Accept-Patch, Accept-Post, Retry-After, Ersmesh-Signature, Ersmesh-Device, Ersmesh-Session, Ersmesh-Resume-Challenge, Ersmesh-Talkback, Ersmesh-Talkback-Reason")
}

// serveWHEP routes every /whep/ request.
func (b *Bridge) serveWHEP(w http.ResponseWriter, r *http.Request) {
	setCORS(w.Header())
	p, err := parseWHEPPath(r.URL.Path)
	if err != nil {
		status := http.StatusNotFound
		if r.Method == http.MethodPost {
			status = http.StatusBadRequest
		}
		b.writeWHEPError(w, whepFail(status, "%v", err))
		return
	}
	switch r.Method {
	case http.MethodOptions:
		b.whepOptions(w, r, p)
	case http.MethodPost:
		b.whepPost(w, r, p)
	case http.MethodPatch:
		b.whepPatch(w, r, p)
	case http.MethodDelete:
		b.whepDelete(w, r, p)
	case http.MethodGet, http.MethodHead:
		if p.session != "" {
			b.whepGet(w, r, p)
			break
		}
		fallthrough
	default:
		w.Header().Set("Allow", "OPTIONS, GET, HEAD, POST, PATCH, DELETE")
		b.writeWHEPError(w, whepFail(http.StatusMethodNotAllowed, "method %s is not allowed here; WHEP uses POST, PATCH and DELETE", r.Method))
	}
}

// whepOptions answers CORS preflight (and plain OPTIONS).
func (b *Bridge) whepOptions(w http.ResponseWriter, r *http.Request, p whepPath) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match, Ersmesh-Resume, Ersmesh-Resume-Proof, "+trust.WHEPProofHeader)
	h.Set("Access-Control-Max-Age", "600")
	if p.session != "" {
		h.Set("Accept-Patch", fragType)
	}
	h.Set("Accept-Post", sdpType)
	w.WriteHeader(http.StatusNoContent)
}

// hasType reports whether r's Content-Type is want (parameters ignored).
func hasType(r *http.Request, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == want
}

// readBody reads at most limit bytes of r's body within whepBodyTimeout.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (string, *whepError) {
	// Not every ResponseWriter has deadlines (httptest's recorder has
	// none); the server's own timeouts still apply then.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(whepBodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	// Lift the deadline again: net/http keeps reading the connection in the
	// background to notice a client that hangs up, and a deadline passing
	// there would cancel the request while the device is still answering.
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return "", whepFail(http.StatusRequestEntityTooLarge, "body larger than %d bytes", limit)
		}
		return "", whepFail(http.StatusBadRequest, "cannot read the body: %v", err)
	}
	return string(body), nil
}

// bearerToken reads "Authorization: Bearer <token>"; no header is no token.
func bearerToken(r *http.Request) (string, *whepError) {
	a := r.Header.Get("Authorization")
	if a == "" {
		return "", nil
	}
	scheme, token, _ := strings.Cut(a, " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", whepFail(http.StatusUnauthorized, "use Authorization: Bearer <token>")
	}
	if len(token) > 1024 {
		return "", whepFail(http.StatusUnauthorized, "token longer than 1024 bytes")
	}
	return token, nil
}

// clientAddr is the rate limiter's key: the connection's IP address.
// X-Forwarded-For is not trusted; a bridge behind a proxy limits the proxy.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientKey is who a token is bound to: the client's address, or for
// IPv6 its /64 (keylimit.KeyForAddr), since a subscriber's browser picks
// new addresses in its /64 at will (RFC 4941) and would lose its token.
func clientKey(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return keylimit.KeyForAddr(ap.Addr()).String()
}

// checkAccess applies the bridge's tokens and allowed rooms to a WHEP
// client, with the statuses WHEP clients understand.
func (b *Bridge) checkAccess(room, token, client string) *whepError {
	err := b.access.Check(room, token, client)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, access.ErrTokenRequired):
		return whepFail(http.StatusUnauthorized, "%v: send Authorization: Bearer <token>", err)
	}
	return whepFail(http.StatusForbidden, "%v", err)
}

// whepPost starts a session: the client's offer in, the device's answer out.
func (b *Bridge) whepPost(w http.ResponseWriter, r *http.Request, p whepPath) {
	if p.room.String() == "" {
		b.writeWHEPError(w, whepFail(http.StatusBadRequest, "POST to /whep/<room> or /whep/<room>/<stream>"))
		return
	}
	resume := r.Header.Get(whepResumeHeader)
	if resume == "" && !hasType(r, sdpType) {
		b.writeWHEPError(w, whepFail(http.StatusUnsupportedMediaType, "the offer must be sent as Content-Type: %s", sdpType))
		return
	}
	if !b.whep.allow(clientAddr(r), time.Now()) {
		b.writeWHEPError(w, whepFail(http.StatusTooManyRequests, "too many WHEP requests from %s; slow down", clientAddr(r)))
		return
	}
	token, herr := bearerToken(r)
	if herr != nil {
		b.writeWHEPError(w, herr)
		return
	}
	// The client's proof of a secret is the device's to check; the bridge
	// only bounds it (it cannot tell a right one from a wrong one).
	proof := r.Header.Get(trust.WHEPProofHeader)
	if len(proof) > trust.MaxWHEPProof {
		b.writeWHEPError(w, whepFail(http.StatusBadRequest, "%s longer than %d bytes", trust.WHEPProofHeader, trust.MaxWHEPProof))
		return
	}
	var body string
	var offer *sdpOffer
	if resume == "" {
		if body, herr = readBody(w, r, maxOfferSize); herr != nil {
			b.writeWHEPError(w, herr)
			return
		}
		var err error
		if offer, err = parseOffer(body); err != nil {
			b.writeWHEPError(w, whepFail(http.StatusBadRequest, "bad offer: %v", err))
			return
		}
	}
	if b.whep.full() {
		b.writeWHEPError(w, whepFail(http.StatusServiceUnavailable, "%v", errTableFull))
		return
	}
	// The bridge's own rules (--tokens, --allowed-room) hold for WHEP as
	// for ERS joins; checked after the offer parsed, so a malformed request
	// does not use up a token.
	if herr := b.checkAccess(p.room.String(), token, clientKey(r.RemoteAddr)); herr != nil {
		b.log.Info("WHEP request refused", "room", p.room.String(), "addr", r.RemoteAddr, "reason", herr.reason)
		b.writeWHEPError(w, herr)
		return
	}
	if resume != "" {
		b.whepResume(w, r, p, resume)
		return
	}
	s, answer, herr := b.startWHEP(r.Context(), p, whepAuth{token, proof}, body, offer)
	if herr != nil {
		b.writeWHEPError(w, herr)
		return
	}
	h := w.Header()
	h.Set("Content-Type", sdpType)
	h.Set("Location", whepSessionPrefix+s.id)
	h.Set("ETag", s.etag)
	h.Set("Accept-Patch", fragType)
	if s.sid != "" {
		h.Set(whepSessionHeader, s.sid) // what a resume names (whep_resume.go)
	}
	// The device's signature of its answer (room, stream, the hash of the
	// client's offer, the answer) and the device that made it: the
	// ersmesh WHEP player checks them, other WHEP clients ignore headers
	// they do not know.
	if answer.sig != "" {
		h.Set(whepSignatureHeader, answer.sig)
		h.Set(whepDeviceHeader, s.device.String())
	}
	// What the device will do with the client's audio (talk back), when
	// the client offered to send some to a stream that takes it.
	if answer.talk != "" {
		h.Set(whepTalkbackHeader, answer.talk)
		if answer.talkReason != "" {
			h.Set(whepTalkbackReasonHeader, answer.talkReason)
		}
	}
	for _, l := range iceServerLinks(s.ice) {
		h.Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, answer.sdp)
}

// The headers of a WHEP answer that carry the device's signature.
const (
	whepSignatureHeader = "Ersmesh-Signature"
	whepDeviceHeader    = "Ersmesh-Device"
	// The device's word on the client's audio: "ready" (it may talk) or
	// "refused", with the reason.
	whepTalkbackHeader       = "Ersmesh-Talkback"
	whepTalkbackReasonHeader = "Ersmesh-Talkback-Reason"
)

// deviceAnswer is a device's answer to a WHEP client's offer, with what
// the device said of the client's audio before it.
type deviceAnswer struct{ sdp, sig, sid, talk, talkReason string }

// whepAuth is what a WHEP client brings to prove itself to the device:
// a bearer token and a proof of a secret (trust.WHEPProofHeader).
type whepAuth struct{ token, proof string }

// startWHEP joins the device with the client's offer and waits for the
// answer; on success the session is in the table and its relay runs.
func (b *Bridge) startWHEP(rctx context.Context, p whepPath, auth whepAuth, sdp string, offer *sdpOffer) (*whepSession, deviceAnswer, *whepError) {
	ctx, cancel, conn, device, log, herr := b.dialWHEP(rctx, p)
	if herr != nil {
		return nil, deviceAnswer{}, herr
	}
	defer cancel()
	roomName := p.room.String()
	id := newSessionID()
	stun, turn := b.iceServers("whep-" + id[:8])
	ice := append(stun, turn...)
	log = log.With("whep", id[:8])
	// The client hanging up or the deadline passing must unblock Recv.
	interrupt := context.AfterFunc(ctx, conn.Interrupt)
	fail := func(e *whepError) (*whepSession, deviceAnswer, *whepError) {
		interrupt()
		// Interrupt stops reading only: the device still hears why.
		conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: "WHEP request failed: " + truncate(e.reason, 200)})
		conn.Close()
		return nil, deviceAnswer{}, e
	}
	payload, err := json.Marshal(map[string]string{"type": "offer", "sdp": sdp})
	if err != nil {
		return fail(whepFail(http.StatusInternalServerError, "encode offer: %v", err))
	}
	join := &signalwire.Message{
		Kind: signalwire.KindJoin, Session: "whep-" + id[:8], Room: roomName, Stream: p.stream,
		Transport: "srtp", Token: auth.token, SecretProof: auth.proof, ICEServers: ice, ViewerOffers: true,
	}
	// The offer follows the join at once: no round trip waits for the accept.
	offerMsg := &signalwire.Message{Kind: signalwire.KindSignal, Type: "offer", Payload: payload}
	if err := offerMsg.Validate(); err != nil {
		return fail(whepFail(http.StatusBadRequest, "bad offer: %v", err))
	}
	if err := conn.Send(join); err != nil {
		return fail(whepFail(http.StatusServiceUnavailable, "the device of room %q cannot be reached: %v", roomName, err))
	}
	if err := conn.Send(offerMsg); err != nil {
		if errors.Is(err, signalwire.ErrTooLarge) {
			return fail(whepFail(http.StatusRequestEntityTooLarge, "the offer is too large to relay"))
		}
		return fail(whepFail(http.StatusServiceUnavailable, "the device of room %q cannot be reached: %v", roomName, err))
	}
	answer, herr := awaitAnswer(ctx, conn, roomName)
	if herr != nil {
		log.Info("WHEP session refused", "status", herr.status, "reason", herr.reason)
		return fail(herr)
	}
	s := &whepSession{
		id: id, etag: `"` + newSessionID()[:16] + `"`, room: roomName, device: device, sid: answer.sid,
		offer: offer, ice: ice, conn: conn, log: log, done: make(chan struct{}),
		ufrag: offer.ufrag, answers: make(chan string, 1),
	}
	if !interrupt() {
		// The request ended just as the answer came, and conn is
		// interrupted: the client will not see the answer anyway.
		return fail(whepFail(http.StatusServiceUnavailable, "the request ended before the session started"))
	}
	if herr := b.keepWHEP(s); herr != nil {
		return fail(herr)
	}
	log.Info("WHEP session started", "device", device)
	return s, answer, nil
}

// dialWHEP opens a signalling stream to the device of p's room, within a
// context that bounds the whole request (cancel it when done).
func (b *Bridge) dialWHEP(rctx context.Context, p whepPath) (context.Context, context.CancelFunc, *signalwire.Conn, peer.ID, *slog.Logger, *whepError) {
	ctx, cancelTimeout := context.WithTimeout(rctx, whepAnswerTimeout)
	stop := context.AfterFunc(b.ctx, cancelTimeout)
	cancel := func() {
		stop()
		cancelTimeout()
	}
	roomName := p.room.String()
	log := b.log.With("room", roomName, "stream", p.stream)
	conn, device, err := b.dialDevice(ctx, roomName)
	var herr *whepError
	switch {
	case errors.Is(err, mesh.ErrNotFound):
		herr = whepFail(http.StatusNotFound, "no device serves room %q", roomName)
	case errors.Is(err, errUnreachable):
		log.Info("device unreachable", "err", err)
		b.cfg.Resolver.Forget(roomName)
		herr = whepFail(http.StatusServiceUnavailable, "the device of room %q cannot be reached", roomName)
	case err != nil:
		log.Info("room lookup failed", "err", err)
		herr = whepFail(http.StatusServiceUnavailable, "cannot look up room %q: %v", roomName, err)
	}
	if herr != nil {
		cancel()
		return nil, nil, nil, "", nil, herr
	}
	return ctx, cancel, conn, device, log, nil
}

// keepWHEP puts s in the table and starts its relay.
func (b *Bridge) keepWHEP(s *whepSession) *whepError {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return whepFail(http.StatusServiceUnavailable, "%v", errTableClosed)
	}
	b.wg.Add(1)
	b.mu.Unlock()
	if err := b.whep.add(s); err != nil {
		b.wg.Done()
		return whepFail(http.StatusServiceUnavailable, "%v", err)
	}
	go b.relayWHEP(s)
	return nil
}

// awaitAnswer reads the device's accept and answer, mapping refusals onto
// statuses.
func awaitAnswer(ctx context.Context, conn *signalwire.Conn, roomName string) (deviceAnswer, *whepError) {
	deadline, _ := ctx.Deadline()
	var talk, talkReason string
	for {
		m, err := conn.Recv(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
				return deviceAnswer{}, whepFail(http.StatusServiceUnavailable, "the device of room %q did not answer in time", roomName)
			}
			if ctx.Err() != nil {
				return deviceAnswer{}, whepFail(http.StatusServiceUnavailable, "the request ended before the device answered")
			}
			return deviceAnswer{}, whepFail(http.StatusServiceUnavailable, "lost the device of room %q: %v", roomName, err)
		}
		switch m.Kind {
		case signalwire.KindAccept, signalwire.KindPing:
		case signalwire.KindReject, signalwire.KindLeave:
			return deviceAnswer{}, refusalStatus(m, roomName)
		case signalwire.KindSignal:
			switch m.Type {
			case "answer":
				var sd struct {
					Type      string `json:"type"`
					SDP       string `json:"sdp"`
					Signature string `json:"signature"`
				}
				if json.Unmarshal(m.Payload, &sd) != nil || sd.Type != "answer" || sd.SDP == "" {
					return deviceAnswer{}, whepFail(http.StatusBadGateway, "the device sent an unusable answer")
				}
				sid := m.SID
				if checkToken(sid, maxResumeSID) != nil {
					sid = "" // not one a resume could name
				}
				return deviceAnswer{sd.SDP, sd.Signature, sid, talk, talkReason}, nil
			case "talkback":
				var tb struct{ State, Reason string }
				if json.Unmarshal(m.Payload, &tb) == nil {
					talk, talkReason = headerText(tb.State, 32), headerText(tb.Reason, 200)
				}
			case "offer":
				// A device from before WHEP ignores viewerOffers and offers.
				return deviceAnswer{}, whepFail(http.StatusServiceUnavailable, "the device of room %q does not answer offers (its software predates WHEP)", roomName)
			}
			// Candidates before the answer: the answer carries them.
		default:
			return deviceAnswer{}, whepFail(http.StatusBadGateway, "the device sent %q before its answer", m.Kind)
		}
	}
}

// refusalStatus maps a device's reject or leave onto an HTTP status.
func refusalStatus(m *signalwire.Message, roomName string) *whepError {
	reason := m.Reason
	if reason == "" {
		reason = "the device refused"
	}
	switch m.Code {
	case signalwire.CodeNotFound:
		return whepFail(http.StatusNotFound, "%s", reason)
	case signalwire.CodeUnauthorized:
		return whepFail(http.StatusUnauthorized, "%s", reason)
	case signalwire.CodeForbidden:
		return whepFail(http.StatusForbidden, "%s", reason)
	case signalwire.CodeBadOffer:
		return whepFail(http.StatusBadRequest, "bad offer: %s", reason)
	}
	return whepFail(http.StatusServiceUnavailable, "the device of room %q refused: %s", roomName, reason)
}

// relayWHEP owns s's stream after the answer: it keeps the session alive,
// drops the device's late candidates (WHEP has no way to push them to the
// client), and ends on the device's leave, a dead stream, DELETE or Close.
func (b *Bridge) relayWHEP(s *whepSession) {
	defer b.wg.Done()
	defer close(s.done)
	defer b.whep.remove(s.id)
	stopPings := s.conn.KeepAlive(signalwire.PingInterval)
	defer stopPings()
	for {
		m, err := s.conn.Recv(signalwire.IdleTimeout)
		if err != nil {
			if errors.Is(err, signalwire.ErrInterrupted) {
				s.mu.Lock()
				reason := s.reason
				s.mu.Unlock()
				s.conn.Send(&signalwire.Message{Kind: signalwire.KindLeave, Reason: reason})
				s.conn.Close()
				s.log.Info("WHEP session ended", "reason", reason)
				return
			}
			s.log.Info("WHEP session lost its device", "err", err)
			s.conn.Reset()
			return
		}
		switch m.Kind {
		case signalwire.KindLeave, signalwire.KindReject:
			if !s.isAttached() {
				// The device refused the resume (its proof, or the
				// session is gone): whepProve tells the client.
				s.mu.Lock()
				s.refusal = refusalStatus(m, s.room)
				s.mu.Unlock()
			}
			s.log.Info("device ended the WHEP session", "reason", m.Reason)
			s.conn.Close()
			return
		case signalwire.KindAccept:
			if s.attached != nil {
				s.attachOnce.Do(func() { close(s.attached) })
			}
		case signalwire.KindSignal:
			if m.Type == "answer" {
				s.takeAnswer(m) // an ICE restart's (whep_restart.go)
			}
		case signalwire.KindPing:
		default:
			s.log.Debug("unexpected message from device", "kind", m.Kind)
		}
	}
}

func (b *Bridge) whepSessionOf(w http.ResponseWriter, p whepPath) *whepSession {
	if p.session == "" {
		b.writeWHEPError(w, whepFail(http.StatusNotFound, "no such WHEP session; sessions are at %s<id>", whepSessionPrefix))
		return nil
	}
	s := b.whep.get(p.session)
	if s == nil {
		b.writeWHEPError(w, whepFail(http.StatusNotFound, "no such WHEP session (it ended, or never was)"))
	}
	return s
}

// whepGet tells whether a session is still relayed: the ersmesh player asks
// every second while it plays, to notice a bridge that died (or lost its
// session) and re-attach through another one. 204 while the session lives.
func (b *Bridge) whepGet(w http.ResponseWriter, r *http.Request, p whepPath) {
	s := b.whepSessionOf(w, p)
	if s == nil {
		return
	}
	w.Header().Set("ETag", s.etag)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// whepDelete ends a session and waits (briefly) until the device has been
// told.
func (b *Bridge) whepDelete(w http.ResponseWriter, r *http.Request, p whepPath) {
	s := b.whepSessionOf(w, p)
	if s == nil {
		return
	}
	s.end("the WHEP client ended the session")
	select {
	case <-s.done:
	case <-time.After(signalwire.WriteTimeout):
	}
	w.WriteHeader(http.StatusOK)
}

// whepPatch forwards trickled candidates (RFC 8840 fragments) to the
// device. ICE restarts are not supported: a client that needs one starts a
// new session.
func (b *Bridge) whepPatch(w http.ResponseWriter, r *http.Request, p whepPath) {
	s := b.whepSessionOf(w, p)
	if s == nil {
		return
	}
	if proof := r.Header.Get(whepProofHeader); proof != "" {
		b.whepProve(w, r, s, proof)
		return
	}
	if !s.isAttached() {
		b.writeWHEPError(w, whepFail(http.StatusConflict, "%v", errNotAttached))
		return
	}
	if !hasType(r, fragType) {
		b.writeWHEPError(w, whepFail(http.StatusUnsupportedMediaType, "trickled candidates must be sent as Content-Type: %s", fragType))
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != s.etag {
		b.writeWHEPError(w, whepFail(http.StatusPreconditionFailed, "If-Match %s does not match the session's ETag", truncate(m, 64)))
		return
	}
	body, herr := readBody(w, r, maxFragSize)
	if herr != nil {
		b.writeWHEPError(w, herr)
		return
	}
	frag, err := parseSDPFrag(body)
	if err != nil {
		b.writeWHEPError(w, whepFail(http.StatusBadRequest, "bad fragment: %v", err))
		return
	}
	s.mu.Lock()
	current := s.ufrag
	s.mu.Unlock()
	if frag.ufrag != "" && frag.ufrag != current {
		// RFC 9725 section 4.3: an ICE restart is a PATCH with If-Match: *
		// and the client's new credentials.
		if r.Header.Get("If-Match") == "*" && frag.pwd != "" {
			b.whepRestart(w, r, s, frag)
			return
		}
		if current != "" {
			b.writeWHEPError(w, whepFail(http.StatusUnprocessableEntity, "a new ice-ufrag is an ICE restart: send it with If-Match: * and the new ice-pwd"))
			return
		}
	}
	if herr := s.forward(frag); herr != nil {
		b.writeWHEPError(w, herr)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// forward sends the fragment's candidates to the device.
func (s *whepSession) forward(frag *sdpFrag) *whepError {
	if !s.takeCandidates(len(frag.candidates)) {
		return whepFail(http.StatusTooManyRequests, "more than %d candidates in one session", maxTrickled)
	}
	for _, c := range frag.candidates {
		mid := c.mid
		if mid == "" && len(s.offer.mids) > 0 {
			mid = s.offer.mids[0]
		}
		idx := s.offer.mLineIndex(mid)
		if err := s.sendCandidate(map[string]any{"candidate": c.line, "sdpMid": mid, "sdpMLineIndex": idx}); err != nil {
			return whepFail(http.StatusServiceUnavailable, "lost the device: %v", err)
		}
	}
	if frag.endOfCandidates {
		if err := s.sendCandidate(map[string]any{"candidate": ""}); err != nil {
			return whepFail(http.StatusServiceUnavailable, "lost the device: %v", err)
		}
	}
	return nil
}

func (s *whepSession) sendCandidate(c map[string]any) error {
	payload, err := json.Marshal(map[string]any{"candidate": c})
	if err != nil {
		return err
	}
	m := &signalwire.Message{Kind: signalwire.KindSignal, Type: "candidate", Payload: payload}
	if err := m.Validate(); err != nil {
		return err
	}
	return s.conn.Send(m)
}

// iceServerLinks renders ICE servers as Link headers (RFC 9725 section
// 4.6): <url>; rel="ice-server", with username, credential and
// credential-type for TURN.
func iceServerLinks(servers []signalwire.ICEServer) []string {
	var out []string
	for _, s := range servers {
		for _, u := range s.URLs {
			if strings.ContainsAny(u, "<>\"\r\n ") {
				continue // cannot be written as a URI reference
			}
			l := "<" + u + `>; rel="ice-server"`
			if s.Username != "" || s.Credential != "" {
				l += "; username=" + quoteHeader(s.Username) + "; credential=" + quoteHeader(s.Credential) + `; credential-type="password"`
			}
			out = append(out, l)
		}
	}
	return out
}

// quoteHeader writes s as an HTTP quoted-string (RFC 9110 section 5.6.4),
// dropping what a header cannot carry.
func quoteHeader(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || r > 0x7e:
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// headerText makes a device's words fit an HTTP header value: printable
// ASCII only, at most n bytes.
func headerText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
	return s[:min(len(s), n)]
}
