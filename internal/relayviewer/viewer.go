package relayviewer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/bridge/socketio"
	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/internal/sioclient"
	"github.com/ersmesh/ersmesh/relay"
	"github.com/ersmesh/ersmesh/trust"
)

// Timings of docs/relay.md §2-3 (Options.Slow scales them).
const (
	stallAfter    = 600 * time.Millisecond // no unit for this long: report stall
	connectLimit  = 5 * time.Second        // assignment to first unit
	staleLimit    = 20 * time.Second       // first unit to the assignment's seq
	watchEvery    = 50 * time.Millisecond
	maxCache      = 300      // units a relay keeps for new children, whole GOPs
	maxCacheBytes = 16 << 20 // and bytes
	childQueue    = 512      // units waiting for one child's channel
	maxBuffered   = 1 << 20
	dcChunk       = 16 << 10
)

const streamLabel = "emsStreamChannel"

// Tamper is what a hostile relay does to the units it forwards.
type Tamper int

// Tampering a test relay can do.
const (
	TamperNone   Tamper = iota
	TamperFlip          // flips a byte of every unit's media
	TamperDrop          // drops every fifth frame that is not a keyframe
	TamperReplay        // sends every fifth unit a second time, later
)

// Options say what to watch and how.
type Options struct {
	Bridge string // the bridge's base URL, http://host:port
	Room   string
	Stream string
	// MaxChildren is how many children the viewer offers to relay to once
	// it plays (relayReady); 0: it does not relay (SetMaxChildren changes
	// it later).
	MaxChildren int
	// API builds the PeerConnections; default LoopbackAPI's.
	API *webrtc.API
	// Secret is the room secret, proven to the device when it challenges
	// (never to a relay).
	Secret string
	// JoinRelay, if set, is announced in the join instead of the
	// certificate's fingerprint: a bridge rewriting the join, for tests;
	// "-" announces none (a player that cannot be relayed).
	JoinRelay string
	// Slow multiplies the protocol's timings (stall, connect, stale): a
	// process slowed down many times (the race detector on a busy
	// machine) would otherwise report healthy parents. Default 1.
	Slow float64
	Log  *slog.Logger
}

// LoopbackAPI returns an API whose PeerConnections gather only loopback
// UDP candidates: many viewers in one process, on one machine.
func LoopbackAPI() *webrtc.API {
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// Arrival is one unit appended: verified and new.
type Arrival struct {
	Seq uint64
	At  time.Time
	Key bool
}

// Missing lists the seqs between a viewer's first and last arrival that
// it never appended. A MOOV's seq is not a frame, and the device's own
// seq gaps skip it, so only gaps of more than one count.
func Missing(arr []Arrival) []uint64 {
	var out []uint64
	for i := 1; i < len(arr); i++ {
		for s := arr[i-1].Seq + 1; s < arr[i].Seq; s++ {
			out = append(out, s)
		}
	}
	return out
}

// unitBytes is a verified unit as a relay forwards it.
type unitBytes struct {
	raw       []byte
	seq       uint64
	key, moov bool
}

// upstream is where the viewer receives the stream from: the device (id
// "") or a parent.
type upstream struct {
	id        string
	pc        *webrtc.PeerConnection
	reader    relay.Reader
	link      *relay.Link
	want      string // the parent's fingerprint
	assignSeq uint64
	assigned  time.Time
	first     time.Time
	last      time.Time
	fresh     bool // reached assignSeq
	stalled   bool // a stall was reported and not yet answered
	closed    bool
}

// child is one link to a child.
type child struct {
	id, fp string
	from   uint64 // the child's highest appended seq, from its answer
	pc     *webrtc.PeerConnection
	q      chan *unitBytes
	live   bool // its channel is open: units go to q
	skip   bool // q overflowed: wait for a keyframe
	quit   chan struct{}
}

// Viewer is a joined viewer. Its run goroutine owns the Socket.IO client's
// reading; mu guards everything the data channel callbacks touch.
type Viewer struct {
	opts   Options
	log    *slog.Logger
	api    *webrtc.API
	c      *sioclient.Client
	device peer.ID
	nonce  string
	cert   webrtc.Certificate
	fp     string
	ver    *relay.Verifier

	mu        sync.Mutex
	sid       string
	up        *upstream
	children  map[string]*child
	moovUnit  *unitBytes
	cache     []*unitBytes // units from the oldest keyframe kept (whole GOPs)
	cacheSize int
	arrivals  []Arrival
	depth     int
	parent    string
	reports   []string
	links     int  // upstream links so far
	playing   bool // a keyframe was appended
	offered   bool // and the relayReady it makes is sent
	maxKids   int
	tamper    Tamper
	frozen    bool // forwards nothing: a hung relay
	forwarded int
	replay    *unitBytes
	closed    bool
	endErr    error // why the session ended; nil while it goes on

	ended   chan error // the device ended the session (remove), buffered
	quit    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once
}

// Open joins the room and returns once the device placed the viewer:
// served directly (its offer came) or assigned a parent. A refusal (the
// room is full) is an error with the device's words.
func Open(ctx context.Context, opts Options) (_ *Viewer, err error) {
	if opts.Slow < 1 {
		opts.Slow = 1
	}
	v := &Viewer{opts: opts, log: opts.Log, api: opts.API, children: map[string]*child{}, maxKids: opts.MaxChildren,
		ended: make(chan error, 1), quit: make(chan struct{})}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.api == nil {
		v.api = LoopbackAPI()
	}
	if err := v.makeCert(); err != nil {
		return nil, err
	}
	v.nonce = trust.NewNonce()
	v.c, err = sioclient.Dial(ctx, opts.Bridge, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			v.Close()
		}
	}()
	announce := v.fp
	switch opts.JoinRelay {
	case "":
	case "-":
		announce = ""
	default:
		announce = opts.JoinRelay
	}
	join := ersproto.JoinArgs(opts.Room, ersproto.Join{StreamName: opts.Stream, Transport: ersproto.TransportFMP4, Nonce: v.nonce, Relay: announce})
	for v.device == "" {
		args, err := v.c.EmitAck(ctx, ersproto.EventJoin, join...)
		if err != nil {
			return nil, fmt.Errorf("relayviewer: join: %w", err)
		}
		if len(args) > 0 && string(args[0]) != "null" {
			var reason string
			json.Unmarshal(args[0], &reason)
			return nil, fmt.Errorf("relayviewer: join refused: %s", reason)
		}
		var room ersproto.Room
		if len(args) > 1 {
			json.Unmarshal(args[1], &room)
		}
		if d := room.Device(); d != "" {
			if v.device, err = peer.Decode(d); err != nil {
				return nil, fmt.Errorf("relayviewer: device id %q: %w", d, err)
			}
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("relayviewer: no device in room %q: %w", opts.Room, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
	if v.ver, err = relay.NewVerifier(v.device, opts.Stream); err != nil {
		return nil, err
	}
	// The first message of the session places us.
	for {
		m, err := v.next(ctx)
		if err != nil {
			return nil, err
		}
		if m.Type == ersproto.TypeChallenge {
			v.handle(m)
			continue
		}
		if m.Type != ersproto.TypeOffer && m.Type != relay.TypeAssign {
			continue
		}
		if err := v.handle(m); err != nil {
			return nil, err
		}
		break
	}
	v.wg.Add(2)
	go v.run()
	go v.watch()
	return v, nil
}

func (v *Viewer) makeCert() error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	c, err := webrtc.GenerateCertificate(k)
	if err != nil {
		return err
	}
	fps, err := c.GetFingerprints()
	if err != nil || len(fps) == 0 {
		return fmt.Errorf("relayviewer: certificate fingerprint: %v", err)
	}
	v.cert = *c
	v.fp = trust.NormalizeFingerprint(fps[0].Algorithm + " " + fps[0].Value)
	return nil
}

// next returns the next message event; a remove event is the session's end.
func (v *Viewer) next(ctx context.Context) (ersproto.Message, error) {
	for {
		p, err := v.c.Next(ctx)
		if err != nil {
			return ersproto.Message{}, err
		}
		if p.Type == socketio.PacketError {
			return ersproto.Message{}, fmt.Errorf("relayviewer: bridge error packet: %s", p.Data)
		}
		if p.Type != socketio.PacketEvent {
			continue
		}
		ev, err := sioclient.DecodeEvent(p)
		if err != nil {
			return ersproto.Message{}, err
		}
		if ev.Name == ersproto.EventRemove {
			var r ersproto.Remove
			if len(ev.Args) > 0 {
				json.Unmarshal(ev.Args[0], &r)
			}
			return ersproto.Message{}, fmt.Errorf("relayviewer: the device ended the session: %s", r.Reason)
		}
		if ev.Name != ersproto.EventMessage || len(ev.Args) == 0 {
			continue
		}
		if m, err := ersproto.ParseMessage(ev.Args[0]); err == nil {
			return m, nil
		}
	}
}

// run handles the device's messages until the socket closes.
func (v *Viewer) run() {
	defer v.wg.Done()
	for {
		m, err := v.next(context.Background())
		if err != nil {
			v.mu.Lock()
			v.endErr = err
			v.mu.Unlock()
			select {
			case v.ended <- err:
			default:
			}
			return
		}
		if err := v.handle(m); err != nil {
			v.log.Warn("relayviewer: message", "type", m.Type, "err", err)
		}
	}
}

// emit sends one message to the device in our session.
func (v *Viewer) emit(typ string, payload any) {
	b, err := json.Marshal(payload)
	if err != nil {
		return
	}
	v.mu.Lock()
	sid := v.sid
	v.mu.Unlock()
	m := ersproto.Message{To: v.device.String(), SID: sid, Broadcaster: v.device.String(), RoomType: ersproto.RoomTypeVideo,
		Type: typ, Payload: b, Prefix: ersproto.PrefixWebkit}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := v.c.Emit(ctx, ersproto.EventMessage, m); err != nil {
		v.log.Debug("relayviewer: emit", "type", typ, "err", err)
	}
}

// handle acts on one message from the device.
func (v *Viewer) handle(m ersproto.Message) error {
	v.mu.Lock()
	if v.sid == "" {
		v.sid = m.SID
	}
	v.mu.Unlock()
	switch m.Type {
	case ersproto.TypeChallenge:
		var c struct{ Challenge, Room string }
		if err := m.Decode(&c); err != nil {
			return err
		}
		if c.Room != v.opts.Room {
			return fmt.Errorf("relayviewer: a challenge for room %q", c.Room)
		}
		v.emit(ersproto.TypeAuth, ersproto.Auth{Fingerprint: v.fp, Proof: trust.Proof(v.opts.Secret, c.Room, c.Challenge, v.fp)})
	case ersproto.TypeOffer:
		return v.onOffer(m)
	case ersproto.TypeCandidate:
		var p ersproto.CandidatePayload
		if m.Decode(&p) != nil || p.Candidate.Candidate == "" {
			return nil
		}
		v.mu.Lock()
		u := v.up
		v.mu.Unlock()
		if u != nil && u.id == "" {
			u.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: p.Candidate.Candidate, SDPMid: p.Candidate.SDPMid, SDPMLineIndex: p.Candidate.SDPMLineIndex})
		}
	case relay.TypeAssign:
		return parsed(m.Payload, v.onAssign)
	case relay.TypeChild:
		return parsed(m.Payload, v.onChild)
	case relay.TypeSignal:
		return parsed(m.Payload, v.onSignal)
	case relay.TypeEnd:
		return parsed(m.Payload, func(e *relay.End) error { v.onEnd(e); return nil })
	}
	return nil
}

// parsed parses a relay payload and hands it to f.
func parsed[T relay.Payload](b []byte, f func(*T) error) error {
	p, err := relay.Parse[T](b)
	if err != nil {
		return err
	}
	return f(p)
}

// newPC makes a PeerConnection with the join's certificate.
func (v *Viewer) newPC() (*webrtc.PeerConnection, error) {
	return v.api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{v.cert}})
}

// complete sets a local description and waits for its candidates: the
// Go viewer sends complete descriptions, no trickle.
func complete(pc *webrtc.PeerConnection, sd webrtc.SessionDescription) (string, error) {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(sd); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		return "", errors.New("ICE gathering took over 5 s")
	}
	return pc.LocalDescription().SDP, nil
}

// answerTo applies offer and returns the complete answer.
func answerTo(pc *webrtc.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	return complete(pc, ans)
}

// onOffer answers the device's signed offer: a direct session.
func (v *Viewer) onOffer(m ersproto.Message) error {
	var sd ersproto.SessionDescription
	if err := m.Decode(&sd); err != nil {
		return err
	}
	if err := trust.VerifyOffer(v.device, v.opts.Room, v.opts.Stream, v.nonce, sd.SDP, sd.Signature); err != nil {
		return fmt.Errorf("relayviewer: the device's offer: %w", err)
	}
	pc, err := v.newPC()
	if err != nil {
		return err
	}
	u := &upstream{pc: pc, link: v.ver.NewLink(), assigned: time.Now()}
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		switch dc.Label() {
		case "emsCommandChannel":
			dc.OnOpen(func() {
				b, _ := json.Marshal(map[string]any{"type": "fmp4Request", "payload": map[string]any{"name": v.opts.Stream, "signed": true}})
				dc.SendText(string(b))
			})
		case streamLabel:
			dc.OnMessage(func(msg webrtc.DataChannelMessage) { v.onData(u, msg.Data) })
		}
	})
	v.setUpstream(u, 1, "")
	sdp, err := answerTo(pc, sd.SDP)
	if err != nil {
		return err
	}
	v.emit(ersproto.TypeAnswer, map[string]string{"type": "answer", "sdp": sdp})
	return nil
}

// setUpstream replaces the viewer's upstream, closing the old one.
func (v *Viewer) setUpstream(u *upstream, depth int, parent string) {
	v.mu.Lock()
	old := v.up
	var oldPC *webrtc.PeerConnection
	if old != nil {
		old.closed, oldPC = true, old.pc
	}
	v.up, v.depth, v.parent = u, depth, parent
	v.links++
	v.mu.Unlock()
	if oldPC != nil {
		go oldPC.Close()
	}
}

// onAssign takes a parent the device assigned.
func (v *Viewer) onAssign(a *relay.Assign) error {
	if err := relay.VerifyAssign(v.device, v.opts.Room, v.nonce, a); err != nil {
		return err // a bridge tampering: ignored, not reported
	}
	if a.Self != v.fp || a.Stream != v.opts.Stream {
		return fmt.Errorf("relayviewer: an assignment for %q, %q", a.Self, a.Stream)
	}
	epoch, err := relay.ParseEpoch(a.Epoch)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.ver.SetEpoch(epoch)
	v.mu.Unlock()
	v.setUpstream(&upstream{id: a.Link, want: a.Fingerprint, assignSeq: a.Seq, assigned: time.Now(), link: v.ver.NewLink()}, a.Depth, a.Parent)
	return nil
}

// onSignal takes the other end's description or candidate for a link.
func (v *Viewer) onSignal(s *relay.Signal) error {
	v.mu.Lock()
	u := v.up
	if u != nil && u.id != s.Link {
		u = nil
	}
	ch := v.children[s.Link]
	v.mu.Unlock()
	switch {
	case u != nil && s.Description != nil:
		return v.answerParent(u, s.Description)
	case u != nil && s.Candidate != nil && u.pc != nil && s.Candidate.Candidate != "":
		return u.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: s.Candidate.Candidate, SDPMid: s.Candidate.SDPMid, SDPMLineIndex: s.Candidate.SDPMLineIndex})
	case ch != nil && s.Description != nil:
		if s.Description.Type != "answer" {
			return fmt.Errorf("relayviewer: a child sent a %s", s.Description.Type)
		}
		if err := relay.CheckFingerprints(s.Description.SDP, ch.fp); err != nil {
			v.dropChild(ch)
			return err
		}
		v.mu.Lock()
		ch.from = s.From
		v.mu.Unlock()
		return ch.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.Description.SDP})
	case ch != nil && s.Candidate != nil && s.Candidate.Candidate != "":
		return ch.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: s.Candidate.Candidate, SDPMid: s.Candidate.SDPMid, SDPMLineIndex: s.Candidate.SDPMLineIndex})
	}
	return nil
}

// answerParent answers the parent's offer on link u.
func (v *Viewer) answerParent(u *upstream, d *relay.Description) error {
	if d.Type != "offer" || u.pc != nil {
		return fmt.Errorf("relayviewer: a parent sent a %s", d.Type)
	}
	if err := relay.CheckFingerprints(d.SDP, u.want); err != nil {
		v.fail(u, relay.ProblemFailed, err.Error())
		return err
	}
	pc, err := v.newPC()
	if err != nil {
		return err
	}
	v.mu.Lock()
	if v.up != u || u.closed {
		v.mu.Unlock()
		pc.Close()
		return nil
	}
	u.pc = pc
	v.mu.Unlock()
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() != streamLabel {
			return
		}
		dc.OnMessage(func(msg webrtc.DataChannelMessage) { v.onData(u, msg.Data) })
		dc.OnClose(func() { v.fail(u, relay.ProblemClosed, "the parent closed the stream channel") })
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed {
			v.fail(u, relay.ProblemFailed, "the link's connection failed")
		}
	})
	sdp, err := answerTo(pc, d.SDP)
	if err != nil {
		return err
	}
	v.mu.Lock()
	from := v.ver.Appended()
	v.mu.Unlock()
	v.emit(relay.TypeSignal, relay.Signal{Link: u.id, Description: &relay.Description{Type: "answer", SDP: sdp}, From: from})
	return nil
}

// fail reports a bad parent and closes the link (a stall keeps it open:
// units may come back, or the device assigns another parent).
func (v *Viewer) fail(u *upstream, code, detail string) {
	v.mu.Lock()
	if u.closed || v.up != u || u.id == "" || v.closed {
		v.mu.Unlock()
		return
	}
	if code == relay.ProblemStall {
		u.stalled = true
	} else {
		u.closed = true
	}
	v.reports = append(v.reports, code)
	pc := u.pc
	v.mu.Unlock()
	v.log.Info("relayviewer: reporting the parent", "link", u.id, "problem", code, "detail", detail)
	if code != relay.ProblemStall && pc != nil {
		go pc.Close()
	}
	v.emit(relay.TypeReport, relay.Report{Link: u.id, Problem: code, Detail: detail})
}

// onData verifies what arrives from u and plays and forwards it.
func (v *Viewer) onData(u *upstream, data []byte) {
	var bad *relay.Problem
	ready := 0
	v.mu.Lock()
	if v.up != u || u.closed || v.closed {
		v.mu.Unlock()
		return
	}
	err := u.reader.Feed(data, func(unit relay.Unit) error {
		vd, err := u.link.Check(unit)
		if err != nil {
			return err
		}
		now := time.Now()
		if u.first.IsZero() {
			u.first = now
		}
		u.last, u.stalled = now, false
		if unit.Seq >= u.assignSeq {
			u.fresh = true
		}
		ub := &unitBytes{raw: unit.Raw, seq: unit.Seq, key: unit.Key(), moov: unit.Moov()}
		switch {
		case vd.Init:
			v.moovUnit, v.cache, v.cacheSize = ub, nil, 0
			v.forward(ub)
		case vd.Append:
			v.arrivals = append(v.arrivals, Arrival{Seq: unit.Seq, At: now, Key: ub.key})
			v.keep(ub)
			v.forward(ub)
			if ub.key && !v.playing {
				v.playing = true
				ready = v.maxKids
			}
		}
		return nil
	})
	v.mu.Unlock()
	if err != nil {
		if !errors.As(err, &bad) {
			bad = &relay.Problem{Code: relay.ProblemMalformed, Detail: err.Error()}
		}
		if u.id == "" {
			v.log.Error("relayviewer: the device's own stream fails its checks", "err", err)
		}
		v.fail(u, bad.Code, bad.Detail)
		return
	}
	if ready > 0 {
		v.emit(relay.TypeReady, relay.Ready{MaxChildren: ready})
	}
	if ready > 0 {
		v.mu.Lock()
		v.offered = true
		v.mu.Unlock()
	}
}

// keep adds an appended unit to the cache for new children, dropping whole
// GOPs from the front beyond its bounds. Under v.mu.
func (v *Viewer) keep(ub *unitBytes) {
	if len(v.cache) == 0 && !ub.key {
		return // a GOP the cache outgrew: wait for the next keyframe
	}
	v.cache = append(v.cache, ub)
	v.cacheSize += len(ub.raw)
	for len(v.cache) > maxCache || v.cacheSize > maxCacheBytes {
		next := 0
		for i := 1; i < len(v.cache); i++ {
			if v.cache[i].key {
				next = i
				break
			}
		}
		if next == 0 {
			v.cache, v.cacheSize = nil, 0
			return
		}
		for _, u := range v.cache[:next] {
			v.cacheSize -= len(u.raw)
		}
		v.cache = append([]*unitBytes(nil), v.cache[next:]...)
	}
}

// startFor is where in the cache a child that has appended up to from
// starts: the newest keyframe at or before from+1 (the oldest kept if from
// is older still); for a new child (from 0), the newest keyframe. Under
// v.mu.
func (v *Viewer) startFor(from uint64) int {
	start := -1
	for i, u := range v.cache {
		if !u.key {
			continue
		}
		if from == 0 || u.seq <= from+1 || start < 0 {
			start = i
		}
		if from != 0 && u.seq > from+1 {
			break
		}
	}
	return max(start, 0)
}

// forward queues ub for every child whose channel is open, tampering if
// asked to. Under v.mu.
func (v *Viewer) forward(ub *unitBytes) {
	if len(v.children) == 0 || v.frozen {
		return
	}
	v.forwarded++
	out := []*unitBytes{ub}
	if v.tamper != TamperNone && !ub.moov {
		switch v.tamper {
		case TamperFlip:
			raw := append([]byte(nil), ub.raw...)
			// A byte inside the moof box: the framing stays whole, the
			// hash does not.
			raw[relay.SigRecordSize+8+12] ^= 0x55
			out = []*unitBytes{{raw: raw, seq: ub.seq, key: ub.key}}
		case TamperDrop:
			if !ub.key && v.forwarded%5 == 0 {
				out = nil
			}
		case TamperReplay:
			if v.replay != nil && v.forwarded%5 == 0 {
				out = append(out, v.replay)
			}
			v.replay = ub
		}
	}
	for _, ch := range v.children {
		if !ch.live {
			continue
		}
		for _, o := range out {
			ch.enqueue(o)
		}
	}
}

// enqueue queues ub, or drops it while the queue is full and until the
// next keyframe. Under v.mu.
func (ch *child) enqueue(ub *unitBytes) {
	if ch.skip && !ub.key && !ub.moov {
		return
	}
	select {
	case ch.q <- ub:
		ch.skip = false
	default:
		ch.skip = true
	}
}

// onChild makes a link to a child the device assigned and offers it.
func (v *Viewer) onChild(c *relay.Child) error {
	if err := relay.VerifyChild(v.device, v.opts.Room, v.opts.Stream, v.nonce, c); err != nil {
		return err
	}
	pc, err := v.newPC()
	if err != nil {
		return err
	}
	ordered := true
	dc, err := pc.CreateDataChannel(streamLabel, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		pc.Close()
		return err
	}
	ch := &child{id: c.Link, fp: c.Fingerprint, pc: pc, q: make(chan *unitBytes, childQueue), quit: make(chan struct{})}
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		pc.Close()
		return nil
	}
	v.children[c.Link] = ch
	v.mu.Unlock()
	dc.OnOpen(func() {
		v.mu.Lock()
		if v.closed || v.children[ch.id] != ch {
			v.mu.Unlock()
			return
		}
		// The child starts with the MOOV and the units from the keyframe
		// it needs, then the live units.
		if v.moovUnit != nil {
			ch.enqueue(v.moovUnit)
			for _, ub := range v.cache[v.startFor(ch.from):] {
				ch.enqueue(ub)
			}
		}
		ch.live = true
		v.wg.Add(1)
		v.mu.Unlock()
		go v.send(ch, dc)
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			v.dropChild(ch)
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		v.dropChild(ch)
		return err
	}
	sdp, err := complete(pc, offer)
	if err != nil {
		v.dropChild(ch)
		return err
	}
	v.emit(relay.TypeSignal, relay.Signal{Link: c.Link, Description: &relay.Description{Type: "offer", SDP: sdp}})
	return nil
}

// send writes ch's queue to its channel until the child is dropped.
func (v *Viewer) send(ch *child, dc *webrtc.DataChannel) {
	defer v.wg.Done()
	skip := false
	for {
		var ub *unitBytes
		select {
		case ub = <-ch.q:
		case <-ch.quit:
			return
		}
		if dc.BufferedAmount() > maxBuffered && !ub.key && !ub.moov {
			skip = true
		}
		if skip && !ub.key && !ub.moov {
			continue
		}
		skip = false
		for b := ub.raw; len(b) > 0; {
			n := min(len(b), dcChunk)
			if err := dc.Send(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}
}

// dropChild ends a child's link.
func (v *Viewer) dropChild(ch *child) {
	v.mu.Lock()
	if v.children[ch.id] != ch {
		v.mu.Unlock()
		return
	}
	delete(v.children, ch.id)
	close(ch.quit)
	v.mu.Unlock()
	go ch.pc.Close()
}

// onEnd ends a link the device says is over.
func (v *Viewer) onEnd(e *relay.End) {
	v.mu.Lock()
	ch := v.children[e.Link]
	var pc *webrtc.PeerConnection
	if u := v.up; u != nil && u.id == e.Link {
		u.closed, pc = true, u.pc
	}
	v.mu.Unlock()
	if ch != nil {
		v.dropChild(ch)
	}
	if pc != nil {
		go pc.Close()
	}
}

// watch reports a parent that stalls, does not connect, or never reaches
// the live edge.
func (v *Viewer) watch() {
	defer v.wg.Done()
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-v.quit:
			return
		case <-t.C:
		}
		now := time.Now()
		slow := func(d time.Duration) time.Duration { return time.Duration(float64(d) * v.opts.Slow) }
		v.mu.Lock()
		u := v.up
		code, detail := "", ""
		switch {
		case u == nil || u.id == "" || u.closed:
		case u.first.IsZero() && now.Sub(u.assigned) > slow(connectLimit):
			code, detail = relay.ProblemFailed, fmt.Sprintf("no unit within %v of the assignment", slow(connectLimit))
		case !u.first.IsZero() && !u.fresh && now.Sub(u.first) > slow(staleLimit):
			code, detail = relay.ProblemStale, fmt.Sprintf("no unit reached seq %d", u.assignSeq)
		case !u.first.IsZero() && now.Sub(u.last) > slow(stallAfter):
			// Again after as long, if the silence lasts.
			code, detail = relay.ProblemStall, fmt.Sprintf("no unit for %v", now.Sub(u.last).Round(time.Millisecond))
			u.last = now
		}
		v.mu.Unlock()
		if code != "" {
			v.fail(u, code, detail)
		}
	}
}

// SetMaxChildren offers the device n children (relayReady), or takes the
// offer back (0); before the viewer plays it only records n.
func (v *Viewer) SetMaxChildren(n int) {
	v.mu.Lock()
	v.maxKids = n
	playing := v.playing
	v.mu.Unlock()
	if playing {
		v.emit(relay.TypeReady, relay.Ready{MaxChildren: n})
		v.mu.Lock()
		v.offered = true
		v.mu.Unlock()
	}
}

// SetTamper makes the viewer a hostile relay from now on: what it does to
// the units it forwards to its children.
func (v *Viewer) SetTamper(t Tamper) {
	v.mu.Lock()
	v.tamper = t
	v.mu.Unlock()
}

// Freeze makes the viewer a hung relay: it keeps its connections and its
// session but forwards nothing more, as a process that stopped or a
// network that silently drops its packets.
func (v *Viewer) Freeze() {
	v.mu.Lock()
	v.frozen = true
	v.mu.Unlock()
}

// Playing reports whether a keyframe was appended (and the offer to
// relay it makes, if any, has gone to the bridge).
func (v *Viewer) Playing() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.playing && (v.offered || v.maxKids == 0)
}

// Arrivals returns every unit appended so far, in order.
func (v *Viewer) Arrivals() []Arrival {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Arrival(nil), v.arrivals...)
}

// Stats is where the viewer sits in the tree.
type Stats struct {
	Depth    int    // 1: served by the device
	Parent   string // the parent's label
	Children int
	Links    int      // upstream links so far (re-attachments + 1)
	Reports  []string // problems this viewer reported about its parents
}

// Stats returns the viewer's place in the tree.
func (v *Viewer) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return Stats{Depth: v.depth, Parent: v.parent, Children: len(v.children), Links: v.links, Reports: append([]string(nil), v.reports...)}
}

// Err is why the session ended, or nil while it goes on.
func (v *Viewer) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.endErr
}

// Ended delivers why the session ended (the device's leave, the bridge
// gone), once.
func (v *Viewer) Ended() <-chan error { return v.ended }

// Close drops everything at once, as a tab that is closed or a machine
// that loses power: no leave; the bridge sees the socket go.
func (v *Viewer) Close() {
	v.closeMu.Do(func() {
		v.mu.Lock()
		v.closed = true
		var pcs []*webrtc.PeerConnection
		if v.up != nil && v.up.pc != nil {
			pcs = append(pcs, v.up.pc)
		}
		for id, ch := range v.children {
			delete(v.children, id)
			close(ch.quit)
			pcs = append(pcs, ch.pc)
		}
		v.mu.Unlock()
		close(v.quit)
		if v.c != nil {
			v.c.Close()
		}
		for _, pc := range pcs {
			pc.Close()
		}
		v.wg.Wait()
	})
}

// Leave tells the bridge the viewer leaves, then closes.
func (v *Viewer) Leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	v.c.Emit(ctx, ersproto.EventLeave)
	cancel()
	v.Close()
}
