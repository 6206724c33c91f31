package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/node/media/ems"
	"github.com/ersmesh/ersmesh/node/udpbatch"
)

// The fmp4 transport of EMS (ERS-PROTOCOL.md §4-5): no media tracks; the
// device offers two data channels, the player asks for a stream by name on
// the command channel and receives fragmented MP4 in the EMS record framing
// on the stream channel. It carries AAC, which WebRTC media tracks cannot.
const (
	commandChannelLabel = "emsCommandChannel"
	streamChannelLabel  = "emsStreamChannel"

	// emsFailText is the text EMS answers a failed fmp4Request with.
	emsFailText = "Requested stream could not be sent!"

	// requestTimeout is how long a viewer has to send its fmp4Request once
	// the command channel is open (EvoStream's player sends it at once).
	requestTimeout = 15 * time.Second

	// maxCommandSize caps one command channel message from the viewer.
	maxCommandSize = 4 << 10
	// maxMessage is the largest data channel message we send when the
	// viewer's a=max-message-size allows it (Chromium's: 256 KiB): a
	// frame's records go in one message, and only keyframes of large
	// pictures span two. Records may span messages (§5), so a smaller
	// limit only cuts them at other places.
	maxMessage = 256 << 10
	// minMessage is the message size when the viewer said nothing we can
	// use: a size every SCTP stack takes.
	minMessage = 16 << 10
	// maxBuffered is how much may wait in a viewer's data channel before
	// it skips to the next keyframe: a slow viewer loses frames, the
	// device's memory stays bounded, and the other viewers never wait.
	maxBuffered = 1 << 20
	// sctpLinger is how long the viewer's sockets hold what they are
	// asked to send once its stream flows (udpbatch.Net.Linger): pion's
	// SCTP writes a frame packet by packet from its own goroutine, and
	// this gathers them into one system call. Against a frame every
	// 33 ms and the viewer's buffer, it is no delay anyone sees.
	sctpLinger = time.Millisecond
)

// fmp4Command is a message on emsCommandChannel, both directions.
type fmp4Command struct {
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

type fmp4Response struct {
	Name        string `json:"name"`
	Status      string `json:"status"`
	Description string `json:"description"`
}

// fmp4Viewer is one viewer's fmp4 delivery. The pion callbacks start its
// sender goroutine; detach ends it and waits.
type fmp4Viewer struct {
	log     *slog.Logger
	streams map[string]*media.Stream
	cmd     *webrtc.DataChannel
	data    *webrtc.DataChannel
	sctp    *webrtc.SCTPTransport // the association's, for its message size
	batch   *udpbatch.Net         // the PeerConnection's sockets, or nil
	limit   uint64                // maxBuffered, but for tests
	skipped atomic.Uint64         // frames skipped for back-pressure
	open    chan struct{}         // closed when the stream channel opens (and the gate, if any)
	gate    *dtlsGate             // nil, or what holds the stream back (dtlsgate.go)
	quit    chan struct{}         // closed by detach

	mu       sync.Mutex // guards requested, detached, sub and signed
	detached bool
	// signed: the viewer asked for the signed stream (docs/relay.md): a
	// SIG record goes before every unit. signing turns the stream's
	// signing on (nil: the device signs nothing), unsign off again.
	signed  bool
	signing func(stream string) (release func())
	unsign  func()
	sub     *media.FMP4Viewer
	pushed  string      // the stream started by push, before its request
	timer   *time.Timer // the request deadline
	stream  *media.Stream
	wg      sync.WaitGroup
}

// attachFMP4 adds the EMS data channels to pc. They are created before the
// offer, so the offer carries them (an SCTP m-line) and no media tracks.
// A non-nil gate holds the stream back until it opens (dtlsgate.go). A
// non-nil batch, the PeerConnection's sockets, lingers once the stream
// flows (sctpLinger). A non-nil signing is called for a viewer that asks for the signed
// stream, before it subscribes: it makes the stream sign its units until
// the returned release (relay.go).
func attachFMP4(pc *webrtc.PeerConnection, batch *udpbatch.Net, streams map[string]*media.Stream, log *slog.Logger, gate *dtlsGate, signing func(stream string) (release func())) (func(), error) {
	v, err := attachFMP4Viewer(pc, batch, streams, log, gate, signing)
	if err != nil {
		return nil, err
	}
	return v.detach, nil
}

// attachFMP4Viewer is attachFMP4 for a session, which may start the
// stream before its request (push).
func attachFMP4Viewer(pc *webrtc.PeerConnection, batch *udpbatch.Net, streams map[string]*media.Stream, log *slog.Logger, gate *dtlsGate, signing func(stream string) (release func())) (*fmp4Viewer, error) {
	v, err := newFMP4Viewer(pc, streams, log, maxBuffered)
	if err != nil {
		return nil, err
	}
	v.batch, v.gate, v.signing = batch, gate, signing
	return v, nil
}

// newFMP4Viewer is attachFMP4 with the back-pressure limit as a parameter,
// so that tests can reach it quickly.
func newFMP4Viewer(pc *webrtc.PeerConnection, streams map[string]*media.Stream, log *slog.Logger, limit uint64) (*fmp4Viewer, error) {
	ordered := true
	cmd, err := pc.CreateDataChannel(commandChannelLabel, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", commandChannelLabel, err)
	}
	data, err := pc.CreateDataChannel(streamChannelLabel, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", streamChannelLabel, err)
	}
	v := &fmp4Viewer{log: log, streams: streams, cmd: cmd, data: data, sctp: pc.SCTP(), limit: limit, open: make(chan struct{}), quit: make(chan struct{})}
	var openOnce sync.Once
	data.OnOpen(func() {
		if v.gate == nil {
			openOnce.Do(func() { close(v.open) })
			return
		}
		// The channel is open only once the DTLS certificate checked.
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.detached {
			return
		}
		v.wg.Go(func() {
			if v.gate.wait(v.quit) {
				openOnce.Do(func() { close(v.open) })
			}
		})
	})
	cmd.OnMessage(v.onCommand)
	// A viewer that opens the channels but never asks for a stream holds a
	// PeerConnection for nothing: close it after requestTimeout.
	cmd.OnOpen(func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.detached || v.timer != nil {
			return
		}
		v.timer = time.AfterFunc(requestTimeout, func() {
			v.mu.Lock()
			idle := v.sub == nil && !v.detached
			v.mu.Unlock()
			if idle {
				v.log.Warn("fmp4: viewer sent no fmp4Request; closing its connection", "after", requestTimeout)
				pc.Close()
			}
		})
	})
	return v, nil
}

// errNotRequest marks a command that is not an fmp4Request: ignored.
var errNotRequest = errors.New("not an fmp4Request")

// parseFMP4Request reads one command channel message from the viewer. It
// returns errNotRequest for other commands.
func parseFMP4Request(b []byte) (name string, err error) {
	r, err := parseRequest(b)
	return r.Name, err
}

// fmp4Request is the payload of an fmp4Request; Signed is ersmesh's
// addition (docs/relay.md), which ERS players never send.
type fmp4Request struct {
	Name   string
	Signed bool
}

func parseRequest(b []byte) (fmp4Request, error) {
	if len(b) > maxCommandSize {
		return fmp4Request{}, fmt.Errorf("command of %d bytes (limit %d)", len(b), maxCommandSize)
	}
	var c fmp4Command
	if err := json.Unmarshal(b, &c); err != nil {
		return fmp4Request{}, fmt.Errorf("malformed command: %w", err)
	}
	if c.Type != "fmp4Request" {
		return fmp4Request{}, fmt.Errorf("%w: %q", errNotRequest, c.Type)
	}
	var req struct {
		Name   *string `json:"name"`
		Signed bool    `json:"signed"`
	}
	if err := json.Unmarshal(c.Payload, &req); err != nil || req.Name == nil {
		return fmp4Request{}, errors.New("fmp4Request without a stream name")
	}
	return fmp4Request{Name: *req.Name, Signed: req.Signed}, nil
}

func (v *fmp4Viewer) onCommand(m webrtc.DataChannelMessage) {
	r, err := parseRequest(m.Data)
	if errors.Is(err, errNotRequest) {
		v.log.Debug("fmp4: ignoring command", "err", err)
		return
	}
	if err != nil {
		v.log.Warn("fmp4: bad command from viewer", "err", err)
		v.respond(fmp4Response{Status: "FAIL", Description: emsFailText + " " + err.Error() + "."})
		return
	}
	v.start(r, false)
}

// push starts the stream an ersmesh player asked for with its answer (its
// fmp4Request's payload beside the SDP), before the channels are open:
// the MOOV and the cached GOP then go out as soon as the stream channel
// opens, a round trip earlier than after the request. Such a player still
// sends the request, for devices that do not push; it is answered as a
// request of the stream already started. ERS players never push.
func (v *fmp4Viewer) push(r fmp4Request) { v.start(r, true) }

// start subscribes the viewer to the stream r names and answers on the
// command channel, unless pushed (that channel is not open yet).
func (v *fmp4Viewer) start(r fmp4Request, pushed bool) {
	respond := v.respond
	if pushed {
		respond = func(r fmp4Response) {
			if r.Status != "SUCCESS" {
				v.log.Info("fmp4: cannot push the stream the answer asked for", "name", r.Name, "why", r.Description)
			}
		}
	}
	req := r
	st, ok := v.streams[req.Name]
	if !ok {
		names := make([]string, 0, len(v.streams))
		for n := range v.streams {
			names = append(names, n)
		}
		sort.Strings(names)
		v.log.Info("fmp4: viewer asked for an unknown stream", "name", req.Name)
		respond(fmp4Response{Name: req.Name, Status: "FAIL",
			Description: fmt.Sprintf("%s Stream %q is not served by this device; it serves: %s.", emsFailText, req.Name, strings.Join(names, ", "))})
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.detached {
		return
	}
	if v.sub != nil {
		if pushed {
			return // an answer to an ICE restart: started already
		}
		if v.pushed == req.Name && r.Signed == v.signed {
			respond(fmp4Response{Name: req.Name, Status: "SUCCESS", Description: "Stream " + req.Name + " started"})
			return
		}
		respond(fmp4Response{Name: req.Name, Status: "FAIL", Description: emsFailText + " A stream is already being sent on this connection."})
		return
	}
	if r.Signed && v.signing != nil {
		// Before subscribing: the MOOV the viewer starts with is then
		// signed (its first frames may not be: it waits for a keyframe).
		v.unsign = v.signing(req.Name)
	}
	sub, err := st.SubscribeFMP4()
	if err != nil {
		respond(fmp4Response{Name: req.Name, Status: "FAIL", Description: fmt.Sprintf("%s %v.", emsFailText, err)})
		return
	}
	v.sub, v.stream, v.signed = sub, st, r.Signed
	if pushed {
		v.pushed = req.Name
	}
	respond(fmp4Response{Name: req.Name, Status: "SUCCESS", Description: "Stream " + req.Name + " started"})
	v.log.Info("fmp4: streaming", "name", req.Name)
	v.wg.Add(1)
	go v.send(sub)
}

func (v *fmp4Viewer) respond(r fmp4Response) {
	b, _ := json.Marshal(map[string]any{"type": "fmp4Response", "payload": r})
	if err := v.cmd.SendText(string(b)); err != nil {
		v.log.Debug("fmp4: send response", "err", err)
	}
}

// send copies the viewer's queue to the stream channel. It skips to the
// next keyframe whenever the channel's buffer is over maxBuffered.
func (v *fmp4Viewer) send(sub *media.FMP4Viewer) {
	defer v.wg.Done()
	v.mu.Lock()
	st, signed := v.stream, v.signed
	v.mu.Unlock()
	waitKey := false
	msg := 0 // the message size, known once the association is up
	for c := range sub.C {
		select {
		case <-v.open:
		default:
			// The stream channel is not open yet: keep only what a
			// decoder can start from.
			if !c.Key {
				waitKey = true
				continue
			}
			select {
			case <-v.open:
			case <-v.quit:
				return
			}
		}
		if signed && c.Sig == nil {
			// Made before the stream signed (the device's first
			// moments): a signed viewer starts at a signed MOOV.
			waitKey = true
			v.skipped.Add(1)
			continue
		}
		if waitKey && !c.Key {
			v.skipped.Add(1)
			continue
		}
		// A MOOV always goes: small, and nothing after it plays without it.
		isMoov := len(c.Data) > 0 && c.Data[0] == ems.TypeMoov
		if !isMoov && v.data.BufferedAmount() > v.limit {
			if !waitKey {
				v.log.Info("fmp4: viewer is slow; skipping to the next keyframe", "buffered", v.data.BufferedAmount())
			}
			waitKey = true
			v.skipped.Add(1)
			continue
		}
		waitKey = false
		if msg == 0 {
			msg = messageSize(v.sctp)
			if v.batch != nil {
				// From now on the association mostly sends the
				// stream; its set-up (ICE, DTLS, SCTP's
				// handshake) went without delay.
				v.batch.Linger(sctpLinger)
			}
		}
		err := error(nil)
		if signed {
			err = sendChunked(v.data, c.Sig, msg)
		}
		if err == nil {
			err = sendChunked(v.data, c.Data, msg)
		}
		if err != nil {
			if errors.Is(err, webrtc.ErrConnectionClosed) || v.data.ReadyState() != webrtc.DataChannelStateOpen {
				return
			}
			v.log.Debug("fmp4: send", "err", err)
		} else if st != nil {
			st.AddSent(len(c.Data))
			if signed {
				st.AddSent(len(c.Sig))
			}
		}
	}
}

// messageSize is the data channel message size for the association of
// sctp: the viewer's a=max-message-size (pion's 64 KiB when the SDP has
// none, RFC 8841 §6.1), at most maxMessage, at least minMessage. Fewer,
// larger messages save the per-message work in SCTP (one DATA chunk
// header and one partly filled packet at each message's end); the
// per-packet work, most of an fmp4 viewer's cost, stays
// (docs/media-benchmarks.md).
func messageSize(sctp *webrtc.SCTPTransport) int {
	if sctp == nil {
		return minMessage
	}
	return max(minMessage, min(int(sctp.GetCapabilities().MaxMessageSize), maxMessage))
}

// sendChunked sends b in messages of at most size bytes.
func sendChunked(dc *webrtc.DataChannel, b []byte, size int) error {
	for len(b) > 0 {
		n := min(len(b), size)
		if err := dc.Send(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// detach stops the delivery and waits for the sender.
func (v *fmp4Viewer) detach() {
	v.mu.Lock()
	if !v.detached {
		close(v.quit)
	}
	if v.timer != nil {
		v.timer.Stop()
	}
	v.detached = true
	sub, st, unsign := v.sub, v.stream, v.unsign
	v.unsign = nil
	v.mu.Unlock()
	if unsign != nil {
		unsign()
	}
	if sub != nil {
		st.UnsubscribeFMP4(sub)
	}
	v.wg.Wait()
}
