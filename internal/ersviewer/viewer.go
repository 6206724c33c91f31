package ersviewer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/bridge/socketio"
	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/internal/sioclient"
	"github.com/ersmesh/ersmesh/trust"
)

// Options say what to watch and how.
type Options struct {
	Bridge string // the bridge's base URL, http://host:port
	Room   string
	Stream string
	// Policy is the ICE transport policy: webrtc.ICETransportPolicyRelay
	// forces media through TURN.
	Policy webrtc.ICETransportPolicy
	// Packets is how many RTP packets Play receives before it returns
	// (default 50).
	Packets int
	// TURNTransport, if set ("udp" or "tcp"), keeps only the TURN URLs
	// with that ?transport=, as a browser behind a firewall that blocks
	// the other would end up using; "tls" keeps the turns: URLs.
	TURNTransport string
	// Servers, if set, receives the STUN and TURN servers the bridge
	// handed out, also when Play fails (a device that refuses, say).
	Servers *Result
	// Settings, if set, tunes the PeerConnection (interfaces, ports).
	Settings *webrtc.SettingEngine
	// API, if set, builds the PeerConnection instead (Settings is then
	// not used): load tools share one among many viewers.
	API *webrtc.API
	// OnTrack, if set, gets every track the device sends (Open); it runs
	// on pion's goroutine and may read the track until it ends. Play sets
	// its own.
	OnTrack func(*webrtc.TrackRemote)
	// Transport is srtp (default) or fmp4; an fmp4 viewer gets the data
	// channels in OnDataChannel (and must send the fmp4Request itself).
	Transport string
	// OnDataChannel, if set, gets the device's data channels (Open).
	OnDataChannel func(*webrtc.DataChannel)
	// Resumable joins with a resume key, as the player does, so that the
	// session can be re-attached through another bridge (Session.Resume).
	Resumable bool
}

// ICEServer is an RTCIceServer as the bridge sends it.
type ICEServer = ersproto.ICEServer

// Result is what a viewing produced.
type Result struct {
	STUN, TURN []ICEServer // what the bridge handed out
	Device     string      // the device's peer ID, from the join ack
	Packets    int         // RTP packets received
	Codec      string      // the track's MIME type
	// Local and Remote are the selected candidate pair's ends.
	Local, Remote webrtc.ICECandidateStats
}

// Session is a viewing in progress: a Socket.IO session with the bridge and
// the PeerConnection that answered the device's offer. A goroutine relays
// the device's later messages (candidates, a new offer) until Close.
type Session struct {
	STUN, TURN []ICEServer // what the bridge handed out
	Device     string      // the device's peer ID, from the join ack

	opts   Options
	failed chan error     // the first failure after Open, buffered
	relays sync.WaitGroup // the relay goroutine of each bridge connection
	key    *ecdsa.PrivateKey

	mu    sync.Mutex // guards c (replaced by Resume), pc and offer (by a new offer)
	c     *sioclient.Client
	pc    *webrtc.PeerConnection
	offer ersproto.Message
}

// Play joins the room, answers the device's offer and returns once
// opts.Packets RTP packets have arrived, or ctx ends.
func Play(ctx context.Context, opts Options) (*Result, error) {
	if opts.Packets <= 0 {
		opts.Packets = 50
	}
	res := &Result{}
	got := make(chan error, 1)
	var once sync.Once
	finish := func(err error) { once.Do(func() { got <- err }) }
	opts.OnTrack = func(tr *webrtc.TrackRemote) {
		res.Codec = tr.Codec().MimeType
		for n := 0; n < opts.Packets; n++ {
			if _, _, err := tr.ReadRTP(); err != nil {
				finish(fmt.Errorf("viewer: track ended after %d packets: %w", n, err))
				return
			}
			res.Packets = n + 1
		}
		finish(nil)
	}
	s, err := Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	res.STUN, res.TURN, res.Device = s.STUN, s.TURN, s.Device
	select {
	case err = <-got:
	case err = <-s.Failed():
	case <-ctx.Done():
		err = fmt.Errorf("viewer: %w (offer=true)", ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	if err := selectedPair(s.PeerConnection(), res); err != nil {
		return nil, err
	}
	return res, nil
}

// Open joins the room, answers the device's offer and returns the session,
// whose tracks go to opts.OnTrack.
func Open(ctx context.Context, opts Options) (_ *Session, err error) {
	c, err := sioclient.Dial(ctx, opts.Bridge, nil)
	if err != nil {
		return nil, err
	}
	s := &Session{c: c, opts: opts, failed: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// The bridge sends stunservers and turnservers on connect, before any
	// offer; TURN credentials come in a second turnservers once a device
	// accepted the join, before its ack (see next).
	for _, name := range []string{ersproto.EventSTUNServers, ersproto.EventTURNServers} {
		ev, err := c.NextEvent(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("viewer: waiting for %s: %w", name, err)
		}
		if err := s.takeServers(ev); err != nil {
			return nil, err
		}
	}

	// Join until a device answers: the room's record may not have spread
	// yet; the player asks again too.
	transport := opts.Transport
	if transport == "" {
		transport = ersproto.TransportSRTP
	}
	data := ersproto.Join{StreamName: opts.Stream, Transport: transport}
	if opts.Resumable {
		// The join's nonce is the key's hash, which the device's signed
		// offer then binds (trust/resume.go).
		if s.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
		if data.ResumeKey, err = trust.ResumeKeyText(s.key); err != nil {
			return nil, err
		}
		data.Nonce = trust.ResumeNonce(data.ResumeKey)
	}
	join := ersproto.JoinArgs(opts.Room, data)
	for s.Device == "" {
		args, err := c.EmitAck(ctx, ersproto.EventJoin, join...)
		if err != nil {
			return nil, fmt.Errorf("viewer: join: %w", err)
		}
		if len(args) > 0 && string(args[0]) != "null" {
			return nil, fmt.Errorf("viewer: join refused: %s", args[0])
		}
		var room ersproto.Room
		if len(args) > 1 {
			json.Unmarshal(args[1], &room)
		}
		if s.Device = room.Device(); s.Device == "" {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("viewer: no device in room %q: %w", opts.Room, ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
	}

	// The first offer; candidates before it have no session to go to.
	for {
		m, err := s.next(ctx, c, true)
		if err != nil {
			return nil, fmt.Errorf("viewer: %w (offer=false)", err)
		}
		if m.Type == ersproto.TypeOffer {
			if err := s.answer(m); err != nil {
				return nil, err
			}
			break
		}
	}
	s.relays.Add(1)
	go s.relay(c)
	return s, nil
}

// takeServers records a stunservers or turnservers event.
func (s *Session) takeServers(ev sioclient.Event) error {
	var list []ICEServer
	if len(ev.Args) > 0 {
		if err := json.Unmarshal(ev.Args[0], &list); err != nil {
			return fmt.Errorf("viewer: bad %s: %w", ev.Name, err)
		}
	}
	if ev.Name == ersproto.EventSTUNServers {
		s.STUN = list
	} else {
		s.TURN = list
	}
	if s.opts.Servers != nil {
		s.opts.Servers.STUN, s.opts.Servers.TURN = s.STUN, s.TURN
	}
	return nil
}

// next returns the next message event from bridge connection c. Before
// the first offer (servers true) it also takes the turnservers the bridge
// sends with an accepted join; after it, STUN and TURN stay as they were
// (they are read without a lock).
func (s *Session) next(ctx context.Context, c *sioclient.Client, servers bool) (ersproto.Message, error) {
	for {
		p, err := c.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ersproto.Message{}, ctx.Err()
			}
			return ersproto.Message{}, fmt.Errorf("bridge: %w", err)
		}
		if p.Type == socketio.PacketError {
			return ersproto.Message{}, fmt.Errorf("bridge: socket.io error packet: %s", p.Data)
		}
		if p.Type != socketio.PacketEvent {
			continue
		}
		ev, err := sioclient.DecodeEvent(p)
		if err != nil {
			return ersproto.Message{}, fmt.Errorf("bridge: %w", err)
		}
		if ev.Name == ersproto.EventTURNServers && servers {
			if err := s.takeServers(ev); err != nil {
				return ersproto.Message{}, err
			}
			continue
		}
		if ev.Name != ersproto.EventMessage || len(ev.Args) == 0 {
			continue
		}
		if m, err := ersproto.ParseMessage(ev.Args[0]); err == nil {
			return m, nil
		}
	}
}

// relay handles the device's messages through bridge connection c after
// the first offer, until c ends (Close, Resume, or the bridge is gone: the
// media goes on, and a resumable session may be re-attached).
func (s *Session) relay(c *sioclient.Client) {
	defer s.relays.Done()
	for {
		m, err := s.next(context.Background(), c, false)
		if err != nil {
			if !errors.Is(err, sioclient.ErrClosed) {
				s.fail(fmt.Errorf("viewer: %w", err))
			}
			return
		}
		switch m.Type {
		case ersproto.TypeOffer:
			s.mu.Lock()
			restart := s.pc != nil && m.SID == s.offer.SID && m.From == s.offer.From
			s.mu.Unlock()
			answer := s.answer
			if restart {
				answer = s.reanswer // an ICE restart of the same session
			}
			if err := answer(m); err != nil {
				s.fail(err)
				return
			}
		case ersproto.TypeCandidate:
			s.mu.Lock()
			pc, sid := s.pc, s.offer.SID
			s.mu.Unlock()
			var p ersproto.CandidatePayload
			if pc == nil || m.SID != sid || m.Decode(&p) != nil || p.Candidate.Candidate == "" {
				continue
			}
			pc.AddICECandidate(webrtc.ICECandidateInit{
				Candidate: p.Candidate.Candidate, SDPMid: p.Candidate.SDPMid, SDPMLineIndex: p.Candidate.SDPMLineIndex,
			})
		}
	}
}

// fail reports the session's first failure.
func (s *Session) fail(err error) {
	select {
	case s.failed <- err:
	default:
	}
}

// Failed delivers the session's failure: the peer connection failed, an
// offer could not be answered, or the bridge went away.
func (s *Session) Failed() <-chan error { return s.failed }

// PeerConnection is the current one: a new offer replaces it.
func (s *Session) PeerConnection() *webrtc.PeerConnection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pc
}

// Leave tells the bridge the viewer leaves (the ERS "leave" event), which
// ends the device's session at once; Close without it only drops the socket.
func (s *Session) Leave(ctx context.Context) error {
	return s.client().Emit(ctx, "leave")
}

func (s *Session) client() *sioclient.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c
}

// emit sends m to the device through the current bridge.
func (s *Session) emit(m ersproto.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.client().Emit(ctx, ersproto.EventMessage, m)
}

// Close leaves the bridge and closes the peer connection; it waits for the
// relay goroutine.
func (s *Session) Close() error {
	err := s.client().Close() // ends the relay: NextEvent returns ErrClosed
	s.relays.Wait()
	s.mu.Lock()
	pc := s.pc
	s.pc = nil
	s.mu.Unlock()
	if pc != nil {
		pc.Close()
	}
	return err
}

// answer replaces the peer connection with one that answers offer.
func (s *Session) answer(offer ersproto.Message) error {
	opts := s.opts
	var servers []webrtc.ICEServer
	for _, is := range append(append([]ICEServer{}, s.STUN...), s.TURN...) {
		urls := is.URLs
		if opts.TURNTransport != "" && is.Username != "" {
			urls = nil
			for _, u := range is.URLs {
				tls := strings.HasPrefix(u, "turns:")
				if opts.TURNTransport == "tls" && tls || !tls && strings.HasSuffix(u, "?transport="+opts.TURNTransport) {
					urls = append(urls, u)
				}
			}
			if len(urls) == 0 {
				continue
			}
		}
		servers = append(servers, webrtc.ICEServer{URLs: urls, Username: is.Username, Credential: is.Credential})
	}
	api := opts.API
	if api == nil && opts.Settings != nil {
		api = webrtc.NewAPI(webrtc.WithSettingEngine(*opts.Settings))
	} else if api == nil {
		api = webrtc.NewAPI()
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: servers, ICETransportPolicy: opts.Policy})
	if err != nil {
		return fmt.Errorf("viewer: %w", err)
	}
	if opts.OnDataChannel != nil {
		pc.OnDataChannel(opts.OnDataChannel)
	}
	s.mu.Lock()
	old := s.pc
	s.pc, s.offer = pc, offer
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	reply := func(typ string, payload any) {
		if m, err := ersproto.Reply(offer, typ, payload); err == nil {
			s.emit(m)
		}
	}
	// Candidates found before the answer is out wait for it: a device
	// cannot use a candidate that arrives before the answer, as pion
	// gathers (and calls back) while SetLocalDescription still runs.
	var cmu sync.Mutex
	answered := false
	var early []webrtc.ICECandidateInit
	pc.OnICECandidate(func(ic *webrtc.ICECandidate) {
		if ic == nil {
			return
		}
		cmu.Lock()
		defer cmu.Unlock()
		if !answered {
			early = append(early, ic.ToJSON())
			return
		}
		reply(ersproto.TypeCandidate, map[string]any{"candidate": ic.ToJSON()})
	})
	if opts.OnTrack != nil {
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { opts.OnTrack(tr) })
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed {
			s.fail(errors.New("viewer: peer connection failed"))
		}
	})
	if err := applyOffer(pc, offer); err != nil {
		return err
	}
	cmu.Lock()
	reply(ersproto.TypeAnswer, pc.LocalDescription())
	for _, c := range early {
		reply(ersproto.TypeCandidate, map[string]any{"candidate": c})
	}
	answered = true
	cmu.Unlock()
	return nil
}

// selectedPair fills res with the nominated, succeeded candidate pair.
func selectedPair(pc *webrtc.PeerConnection, res *Result) error {
	if pc == nil {
		return errors.New("viewer: no peer connection")
	}
	stats := pc.GetStats()
	for _, s := range stats {
		p, ok := s.(webrtc.ICECandidatePairStats)
		if !ok || !p.Nominated || p.State != webrtc.StatsICECandidatePairStateSucceeded {
			continue
		}
		l, lok := stats[p.LocalCandidateID].(webrtc.ICECandidateStats)
		r, rok := stats[p.RemoteCandidateID].(webrtc.ICECandidateStats)
		if lok && rok {
			res.Local, res.Remote = l, r
			return nil
		}
	}
	return errors.New("viewer: no selected candidate pair in the stats")
}

// reanswer applies a new offer of the same session (an ICE restart) to the
// current peer connection and answers it.
func (s *Session) reanswer(offer ersproto.Message) error {
	s.mu.Lock()
	pc := s.pc
	s.mu.Unlock()
	if err := applyOffer(pc, offer); err != nil {
		return err
	}
	m, err := ersproto.Reply(offer, ersproto.TypeAnswer, pc.LocalDescription())
	if err != nil {
		return err
	}
	return s.emit(m)
}

// applyOffer sets offer as pc's remote description and answers it.
func applyOffer(pc *webrtc.PeerConnection, offer ersproto.Message) error {
	var sd webrtc.SessionDescription
	if err := json.Unmarshal(offer.Payload, &sd); err != nil {
		return fmt.Errorf("viewer: offer payload: %w", err)
	}
	if err := pc.SetRemoteDescription(sd); err != nil {
		return fmt.Errorf("viewer: apply offer: %w", err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(ans)
	}
	if err != nil {
		return fmt.Errorf("viewer: answer: %w", err)
	}
	return nil
}

// RestartICE asks the device for an ICE restart, as the player does when
// its path changed; the device's new offer is applied to the same peer
// connection.
func (s *Session) RestartICE(ctx context.Context) error {
	s.mu.Lock()
	offer := s.offer
	s.mu.Unlock()
	m, err := ersproto.Reply(offer, ersproto.TypeRestart, struct{}{})
	if err != nil {
		return err
	}
	return s.client().Emit(ctx, ersproto.EventMessage, m)
}

// ErrSessionGone is Resume's error when the device no longer knows the
// session (it restarted, or ended it): only a new session plays again.
var ErrSessionGone = errors.New("viewer: the device no longer knows the session")

// Resume re-attaches the session through bridge, as the player does when
// its bridge is gone: the current bridge connection is closed, the new
// bridge asks the device to resume the session, and the device's challenge
// is answered with the session's resume key. The peer connection, and the
// media, are not touched. The session must have been opened Resumable.
func (s *Session) Resume(ctx context.Context, bridge string) error {
	if s.key == nil {
		return errors.New("viewer: the session was opened without a resume key (Options.Resumable)")
	}
	s.client().Close()
	s.relays.Wait()
	s.mu.Lock()
	offer := s.offer
	s.mu.Unlock()
	c, err := sioclient.Dial(ctx, bridge, nil)
	if err != nil {
		return err
	}
	type ack struct {
		args []json.RawMessage
		err  error
	}
	acked := make(chan ack, 1)
	actx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		args, err := c.EmitAck(ctx, ersproto.EventResume, s.opts.Room, ersproto.Join{SID: offer.SID})
		acked <- ack{args, err}
		stop()
	}()
	// The device's challenge comes before the ack, which waits for the
	// proof.
	for {
		m, err := s.next(actx, c, false)
		if err != nil {
			break
		}
		var ch ersproto.Challenge
		if m.Type != ersproto.TypeResumeChallenge || m.SID != offer.SID || m.Decode(&ch) != nil {
			continue
		}
		sig, err := trust.SignResume(s.key, s.opts.Room, offer.SID, ch.Challenge)
		if err != nil {
			break
		}
		if p, err := ersproto.Reply(offer, ersproto.TypeResumeProof, ersproto.ResumeProof{Signature: sig}); err == nil {
			c.Emit(ctx, ersproto.EventMessage, p)
		}
	}
	a := <-acked
	if a.err == nil && len(a.args) > 0 && string(a.args[0]) != "null" {
		var text string
		json.Unmarshal(a.args[0], &text)
		a.err = fmt.Errorf("viewer: resume refused: %s", a.args[0])
		if strings.HasPrefix(text, "not-found") {
			a.err = fmt.Errorf("%w: %s", ErrSessionGone, text)
		}
	}
	if a.err != nil {
		c.Close()
		return a.err
	}
	s.mu.Lock()
	s.c = c
	s.mu.Unlock()
	s.relays.Add(1)
	go s.relay(c)
	return nil
}
