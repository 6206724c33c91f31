package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/node/talkback"
	"github.com/ersmesh/ersmesh/node/udpbatch"
	"github.com/ersmesh/ersmesh/room"
	"github.com/ersmesh/ersmesh/signalwire"
)

// DefaultRecordTTL is how long a room record stays valid: short, so that a
// camera that goes offline vanishes from lookups within minutes.
const DefaultRecordTTL = 2 * time.Minute

// ICE timeouts of viewer sessions (see newWebRTCAPI).
const (
	iceDisconnectedTimeout = 4 * time.Second
	iceFailedTimeout       = 6 * time.Second // after disconnected
	// A viewer in the ERS flow can ask for an ICE restart (resume.go):
	// give its requests time to arrive through a bridge.
	iceFailedTimeoutRestartable = 21 * time.Second
	iceKeepalive                = 2 * time.Second
)

// Config is what a device serves and how.
type Config struct {
	Mesh      *mesh.Host
	Rooms     []string                 // room names to publish (open "name" or owned "name@peerID")
	Streams   map[string]*media.Stream // by stream name; the device owns and closes them
	RecordTTL time.Duration            // default DefaultRecordTTL
	// Authorize, when set, decides whether a viewer's join may watch:
	// return nil, or ErrUnauthorized / ErrForbidden (wrapped or not) to
	// refuse. See auth.go.
	Authorize func(room, stream, token string) error
	// ConnectTimeout is how long a viewer that sent its own offer (WHEP)
	// has to connect; default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// IncludeLoopback offers 127.0.0.1 candidates too: needed when device and
	// browser share a machine with no other interface (the demo, tests).
	IncludeLoopback bool
	// Secrets maps room names to room secrets: a viewer of such a room
	// must prove it knows the secret (package trust) before the device
	// creates a PeerConnection for it. Bridges never see a secret.
	Secrets map[string]string
	// Limits bound the signalling streams bridges may open (limits.go).
	Limits Limits
	// Proofs bound the wrong room-secret proofs checked (trust.go).
	Proofs ProofLimits
	// OnEvent, when set, receives the device's events (events.go). It is
	// called on the device's and pion's goroutines and must not block:
	// package node/webhook queues.
	OnEvent func(Event)
	// Talkback maps stream names to the sinks viewers may talk to
	// (talkback.go); streams not in it have no talkback.
	Talkback map[string]talkback.Sink
	// TalkSecrets maps stream names to talk secrets: where a stream has
	// one, only viewers who proved it may talk (the room secret alone
	// does not do); elsewhere the room secret is what lets a viewer talk.
	TalkSecrets map[string]string
	// Relay caps the viewers the device serves itself and shapes the tree
	// of viewers that relay its fmp4 streams to the others (relay.go).
	Relay  RelayConfig
	Logger *slog.Logger
}

// Device serves rooms to viewers.
type Device struct {
	cfg        Config
	log        *slog.Logger
	api        *peerAPI
	apiRestart *peerAPI           // for viewers that can ask for ICE restarts: a longer ICE failed timeout
	batches    *udpbatch.Counters // both APIs' PeerConnections' batched sends, for the metrics
	key        crypto.PrivKey     // signs offers (package trust)
	publisher  *mesh.Publisher
	guard      *streamGuard    // admits signalling streams (limits.go)
	protector  *mesh.Protector // keeps bridges with viewers from being trimmed
	trust      trustCounters   // refusals on grounds of trust (trust.go)
	proofs     *proofGuard     // backoff on wrong room-secret proofs (trust.go)
	whepProofs proofMemory     // WHEP proofs used lately (whepauth.go)
	ice        *icePolicy      // what bridges may make the device contact (icepolicy.go)
	names      *localNames     // resolves viewers' mDNS candidates, one resolver for all (localnames.go)

	// ctl serialises the changes of rooms (StartRoom, StopRoom, Close)
	// and guards starting; it is never held across network I/O.
	ctl      sync.Mutex
	starting map[string]*roomStart // rooms whose record StartRoom is publishing
	roomsMu  sync.Mutex            // guards rooms and secrets, read by every join
	rooms    map[string]bool       // by canonical room name
	secrets  map[string]string     // by canonical room name

	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex // guards closed, viewers and the WaitGroup's Add against Close's Wait
	closed  bool
	wg      sync.WaitGroup
	viewers map[*session]struct{} // every running session, for Viewers
	// resumable holds the sessions a viewer may re-attach, by WebRTC
	// session id (resume.go).
	resumable map[string]*session

	// relay is the relay tree (relay.go); relayReports and relayBans
	// count children's reports and the parents banned for them.
	relay        *relayTree
	relayReports atomic.Uint64
	relayBans    atomic.Uint64

	talk     talkCounters
	floorsMu sync.Mutex                 // guards floors
	floors   map[string]*talkback.Floor // talkback floors by stream name
}

// New validates cfg, publishes the rooms and starts accepting viewers.
// cfg.Rooms may be empty: rooms can be started later (StartRoom).
func New(ctx context.Context, cfg Config) (*Device, error) {
	if cfg.Mesh == nil {
		return nil, errors.New("device needs a mesh node")
	}
	if len(cfg.Streams) == 0 {
		return nil, errors.New("device needs at least one stream")
	}
	if cfg.RecordTTL <= 0 {
		cfg.RecordTTL = DefaultRecordTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rooms := make(map[string]bool, len(cfg.Rooms))
	for _, r := range cfg.Rooms {
		name, err := room.ParseName(r)
		if err != nil {
			return nil, err
		}
		if owner, ok := name.Owner(); ok && owner != cfg.Mesh.ID() {
			return nil, fmt.Errorf("room %q is owned by %s, not by this device (%s)", r, owner, cfg.Mesh.ID())
		}
		rooms[name.String()] = true
	}
	secrets := make(map[string]string, len(cfg.Secrets))
	for r, sec := range cfg.Secrets {
		name, err := room.ParseName(r)
		if err != nil {
			return nil, fmt.Errorf("room secret: %w", err)
		}
		if !rooms[name.String()] {
			return nil, fmt.Errorf("room secret for %q, which this device does not serve", r)
		}
		if sec == "" {
			return nil, fmt.Errorf("empty secret for room %q", r)
		}
		secrets[name.String()] = sec
	}
	key := cfg.Mesh.Libp2p().Peerstore().PrivKey(cfg.Mesh.ID())
	if key == nil {
		return nil, errors.New("device: the mesh node has no private key to sign offers with")
	}
	api, err := newWebRTCAPI(cfg.IncludeLoopback, iceFailedTimeout)
	if err != nil {
		return nil, err
	}
	apiRestart, err := newWebRTCAPI(cfg.IncludeLoopback, iceFailedTimeoutRestartable)
	if err != nil {
		return nil, err
	}
	batches := &udpbatch.Counters{}
	api.batches, apiRestart.batches = batches, batches
	d := &Device{cfg: cfg, log: cfg.Logger, api: api, apiRestart: apiRestart, batches: batches, rooms: rooms, secrets: secrets, key: key, viewers: make(map[*session]struct{}), resumable: make(map[string]*session), floors: map[string]*talkback.Floor{},
		guard: newStreamGuard(cfg.Limits, cfg.Logger), proofs: newProofGuard(cfg.Proofs, cfg.Logger),
		ice: newICEPolicy(cfg.IncludeLoopback), names: &localNames{includeLoopback: cfg.IncludeLoopback}, protector: mesh.NewProtector(cfg.Mesh.Libp2p(), viewerProtectTag)}
	d.starting = make(map[string]*roomStart)
	d.relay = newRelayTree(d)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for r, sec := range secrets {
		d.warnWeakSecret(r, sec)
	}
	for st, sec := range cfg.TalkSecrets {
		if weakSecret(sec) {
			d.log.Warn("talk secret is short: a bridge that relayed one proof can test guesses offline; use ersmesh secret for a 128-bit one", "stream", st, "length", len(sec))
		}
	}
	// The handler goes in before the rooms are published, so that no bridge
	// that finds a room meets a device that does not answer yet.
	cfg.Mesh.Libp2p().SetStreamHandler(signalwire.ProtocolID, d.handleStream)
	d.publisher, err = cfg.Mesh.Publish(ctx, cfg.Rooms, cfg.RecordTTL)
	if err != nil {
		cfg.Mesh.Libp2p().RemoveStreamHandler(signalwire.ProtocolID)
		d.cancel()
		return nil, fmt.Errorf("publish rooms: %w", err)
	}
	d.log.Info("device serving", "peer", cfg.Mesh.ID(), "rooms", cfg.Rooms, "streams", streamNames(cfg.Streams))
	for _, r := range d.Rooms() {
		d.emit(Event{Type: EventStarted, Room: r})
	}
	return d, nil
}

func newWebRTCAPI(includeLoopback bool, failedTimeout time.Duration) (*peerAPI, error) {
	m := &webrtc.MediaEngine{}
	// Only what the device sends and takes back (media.RegisterCodecs).
	if err := media.RegisterCodecs(m); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	// NACK retransmission and RTCP reports, and nothing else per packet
	// (docs/media-benchmarks.md); the interceptors are each
	// PeerConnection's (peerAPI).
	media.RegisterFeedback(m)
	se := webrtc.SettingEngine{}
	// Browsers hide their host candidates behind mDNS names. pion's agent
	// would open an mDNS resolver per PeerConnection (sockets, buffers
	// and a reader of every mDNS packet, per viewer): the device resolves
	// them itself with one (localnames.go) and hands pion the addresses.
	// Nor does it publish its own candidates as mDNS names: bridges and
	// browsers elsewhere could not resolve them.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(includeLoopback)
	// Every packet to every viewer is encrypted: AES-128-GCM first, whose
	// 10 rounds cost less than the 14 of AES-256-GCM that pion prefers.
	// The device, DTLS server to a viewer that answers its offer, chooses
	// the first of its list the viewer offers; the others remain for
	// viewers without it.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	// A viewer whose path died (a network change, a firewall that now
	// drops UDP) is better served by a fresh session, which gathers new
	// paths, than by half a minute of frozen video: fail after about ten
	// seconds of silence instead of pion's thirty.
	se.SetICETimeouts(iceDisconnectedTimeout, failedTimeout, iceKeepalive)
	// The device offers, so it is the controlling agent and chooses the
	// pair. pion waits before it accepts a pair whose candidate is not a
	// host one (2 s for a relay, 1 s peer reflexive, 0.5 s server
	// reflexive), in case a better pair succeeds meanwhile: every viewer
	// behind a NAT or forced through TURN paid that wait before its first
	// frame. Without it the best pair that has succeeded is taken at once;
	// a relayed pair still loses to a direct one whose check is under way
	// when the relayed one answers (pion nominates on a check only the
	// best pair not failed), and direct checks, sent first and on the
	// shorter path, answer first (docs/media-benchmarks.md).
	se.SetSrflxAcceptanceMinWait(0)
	se.SetPrflxAcceptanceMinWait(0)
	se.SetRelayAcceptanceMinWait(0)
	// SNAP (draft-ietf-tsvwg-sctp-snap): the offer carries the SCTP INIT
	// (a=sctp-init), and a viewer whose answer carries its own starts the
	// fmp4 transport's SCTP association without its two round trips.
	// Viewers that do not know it ignore the line and shake hands as
	// before.
	se.EnableSctpSnap(true)
	// No HelloVerify cookie: a round trip less before every viewer's
	// DTLS is up. The cookie keeps a ClientHello forged with another's
	// address from drawing the certificate flight there; ICE does that
	// already: DTLS starts once a candidate pair's check was answered
	// with the session's ICE password (consent), and its packets go over
	// that pair only (TestDTLSFlightOnlyAfterICEConsent).
	se.SetDTLSInsecureSkipHelloVerify(true)
	return &peerAPI{m: m, se: se}, nil
}

func (d *Device) handleStream(s network.Stream) {
	// Over its limits, a peer's new stream is reset before anything is
	// read from it; its other sessions, and other peers', carry on.
	release, ok := d.guard.admit(s.Conn().RemotePeer())
	if !ok {
		s.Reset()
		return
	}
	defer release()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		s.Reset()
		return
	}
	d.wg.Add(1)
	d.mu.Unlock()
	defer d.wg.Done()
	conn := signalwire.NewConn(s)
	from := s.Conn().RemotePeer()
	first, err := conn.Recv(signalwire.JoinTimeout)
	if err != nil {
		d.log.Warn("signalling stream without a valid join", "bridge", from, "err", err)
		conn.Reset()
		return
	}
	if first.Kind == signalwire.KindResume {
		d.resume(conn, from, first)
		return
	}
	sess := &session{dev: d, conn: conn, bridge: from,
		attach: make(chan *attachment, 1), quit: make(chan struct{}), talkQuit: make(chan struct{}), done: make(chan struct{})}
	sess.ctx, sess.cancel = context.WithCancelCause(d.ctx)
	d.mu.Lock()
	d.viewers[sess] = struct{}{}
	d.mu.Unlock()
	defer close(sess.done)
	defer sess.cancel(nil)
	defer func() {
		d.mu.Lock()
		delete(d.viewers, sess)
		d.mu.Unlock()
	}()
	defer sess.limitLifetime(d.guard.lim.UnconnectedTimeout)()
	sess.run(first)
}

// Close stops publishing (the records then expire), ends every viewer
// session, waits for them and closes the streams.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.cfg.Mesh.Libp2p().RemoveStreamHandler(signalwire.ProtocolID)
	err := d.publisher.Close()
	d.ctl.Lock()
	// As StopRoom: a room's stop, then its viewers' closing. A room still
	// being started never started: its StartRoom is cut short and returns
	// ErrDeviceClosed.
	for _, r := range d.Rooms() {
		if st := d.starting[r]; st != nil {
			st.cancel()
			d.roomsMu.Lock()
			delete(d.rooms, r)
			delete(d.secrets, r)
			d.roomsMu.Unlock()
			continue
		}
		d.emit(Event{Type: EventStopped, Room: r, Reason: "device shutting down"})
	}
	clear(d.starting)
	d.cancel()
	d.ctl.Unlock()
	d.wg.Wait()
	d.names.Close()
	for _, s := range d.cfg.Streams {
		s.Close()
	}
	return err
}

func streamNames(m map[string]*media.Stream) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	return names
}
