package ersviewer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/sioclient"
)

// Options say what to watch and how.
type Options struct {
	Bridge string // the bridge's base URL, http://host:port
	Room   string
	Stream string
	// Policy is the ICE transport policy: webrtc.ICETransportPolicyRelay
	// forces media through TURN.
	Policy webrtc.ICETransportPolicy
	// Packets is how many RTP packets to receive before Play returns
	// (default 50).
	Packets int
	// TURNTransport, if set ("udp" or "tcp"), keeps only the TURN URLs
	// with that ?transport=, as a browser behind a firewall that blocks
	// the other would end up using.
	TURNTransport string
	// Servers, if set, receives the STUN and TURN servers the bridge
	// handed out, also when Play fails (a device that refuses, say).
	Servers *Result
	// Settings, if set, tunes the PeerConnection (interfaces, ports).
	Settings *webrtc.SettingEngine
}

// ICEServer is an RTCIceServer as the bridge sends it.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Result is what a viewing produced.
type Result struct {
	STUN, TURN []ICEServer // what the bridge handed out
	Device     string      // the device's peer ID, from the join ack
	Packets    int         // RTP packets received
	Codec      string      // the track's MIME type
	// Local and Remote are the selected candidate pair's ends.
	Local, Remote webrtc.ICECandidateStats
}

type message struct {
	To          string          `json:"to,omitempty"`
	From        string          `json:"from,omitempty"`
	SID         string          `json:"sid,omitempty"`
	Broadcaster string          `json:"broadcaster,omitempty"`
	RoomType    string          `json:"roomType,omitempty"`
	Type        string          `json:"type"`
	Payload     json.RawMessage `json:"payload,omitempty"`
}

// Play joins the room, answers the device's offer and returns once
// opts.Packets RTP packets have arrived, or ctx ends.
func Play(ctx context.Context, opts Options) (*Result, error) {
	if opts.Packets <= 0 {
		opts.Packets = 50
	}
	c, err := sioclient.Dial(ctx, opts.Bridge, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res := &Result{}

	// The bridge sends stunservers and turnservers on connect, before any
	// offer.
	for _, name := range []string{"stunservers", "turnservers"} {
		ev, err := c.NextEvent(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("viewer: waiting for %s: %w", name, err)
		}
		var list []ICEServer
		if len(ev.Args) > 0 {
			if err := json.Unmarshal(ev.Args[0], &list); err != nil {
				return nil, fmt.Errorf("viewer: bad %s: %w", name, err)
			}
		}
		if name == "stunservers" {
			res.STUN = list
		} else {
			res.TURN = list
		}
		if opts.Servers != nil {
			opts.Servers.STUN, opts.Servers.TURN = res.STUN, res.TURN
		}
	}

	// Join until a device answers: the room's record may not have spread
	// yet; the player asks again too.
	for res.Device == "" {
		args, err := c.EmitAck(ctx, "join", opts.Room, map[string]string{"streamName": opts.Stream, "transport": "srtp"})
		if err != nil {
			return nil, fmt.Errorf("viewer: join: %w", err)
		}
		if len(args) > 0 && string(args[0]) != "null" {
			return nil, fmt.Errorf("viewer: join refused: %s", args[0])
		}
		var desc struct {
			Clients map[string]json.RawMessage `json:"clients"`
		}
		if len(args) > 1 {
			json.Unmarshal(args[1], &desc)
		}
		for id := range desc.Clients {
			res.Device = id
		}
		if res.Device == "" {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("viewer: no device in room %q: %w", opts.Room, ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
	}

	var pc *webrtc.PeerConnection
	defer func() {
		if pc != nil {
			pc.Close()
		}
	}()
	var session message
	got := make(chan error, 1)
	for {
		ev, err := nextMessage(ctx, c, got)
		switch {
		case errors.Is(err, errDone):
			if err := <-got; err != nil {
				return nil, err
			}
			if err := selectedPair(pc, res); err != nil {
				return nil, err
			}
			return res, nil
		case err != nil:
			return nil, fmt.Errorf("viewer: %w (offer=%v)", err, pc != nil)
		}
		var m message
		if len(ev.Args) == 0 || json.Unmarshal(ev.Args[0], &m) != nil {
			continue
		}
		switch m.Type {
		case "offer":
			if pc != nil {
				pc.Close()
			}
			session = m
			pc, err = answer(c, opts, res, m, got)
			if err != nil {
				return nil, err
			}
		case "candidate":
			if pc == nil || m.SID != session.SID {
				continue
			}
			var p struct {
				Candidate *webrtc.ICECandidateInit `json:"candidate"`
			}
			if json.Unmarshal(m.Payload, &p) == nil && p.Candidate != nil && p.Candidate.Candidate != "" {
				pc.AddICECandidate(*p.Candidate)
			}
		}
	}
}

// errDone says the media side finished (got has its result).
var errDone = errors.New("done")

// nextMessage waits for the next "message" event, or for got to have a
// result, polling so that both are watched without a second goroutine.
func nextMessage(ctx context.Context, c *sioclient.Client, got chan error) (sioclient.Event, error) {
	for {
		select {
		case err := <-got:
			got <- err // for the caller
			return sioclient.Event{}, errDone
		default:
		}
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		ev, err := c.NextEvent(wctx, "message")
		cancel()
		if err == nil {
			return ev, nil
		}
		if ctx.Err() != nil {
			return ev, ctx.Err()
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return ev, fmt.Errorf("bridge: %w", err)
		}
	}
}

func answer(c *sioclient.Client, opts Options, res *Result, offer message, got chan<- error) (*webrtc.PeerConnection, error) {
	var servers []webrtc.ICEServer
	for _, s := range append(append([]ICEServer{}, res.STUN...), res.TURN...) {
		urls := s.URLs
		if opts.TURNTransport != "" && s.Username != "" {
			urls = nil
			for _, u := range s.URLs {
				if strings.HasSuffix(u, "?transport="+opts.TURNTransport) {
					urls = append(urls, u)
				}
			}
			if len(urls) == 0 {
				continue
			}
		}
		servers = append(servers, webrtc.ICEServer{URLs: urls, Username: s.Username, Credential: s.Credential})
	}
	var api *webrtc.API
	if opts.Settings != nil {
		api = webrtc.NewAPI(webrtc.WithSettingEngine(*opts.Settings))
	} else {
		api = webrtc.NewAPI()
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: servers, ICETransportPolicy: opts.Policy})
	if err != nil {
		return nil, fmt.Errorf("viewer: %w", err)
	}
	reply := func(typ string, payload any) {
		b, _ := json.Marshal(payload)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Emit(ctx, "message", message{To: offer.From, SID: offer.SID, Broadcaster: offer.From, RoomType: "video", Type: typ, Payload: b})
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
		reply("candidate", map[string]any{"candidate": ic.ToJSON()})
	})
	var once sync.Once
	finish := func(err error) { once.Do(func() { got <- err }) }
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		res.Codec = tr.Codec().MimeType
		for n := 0; n < opts.Packets; n++ {
			if _, _, err := tr.ReadRTP(); err != nil {
				finish(fmt.Errorf("viewer: track ended after %d packets: %w", n, err))
				return
			}
			res.Packets = n + 1
		}
		finish(nil)
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed {
			finish(errors.New("viewer: peer connection failed"))
		}
	})
	var sd webrtc.SessionDescription
	if err := json.Unmarshal(offer.Payload, &sd); err != nil {
		pc.Close()
		return nil, fmt.Errorf("viewer: offer payload: %w", err)
	}
	if err := pc.SetRemoteDescription(sd); err != nil {
		pc.Close()
		return nil, fmt.Errorf("viewer: apply offer: %w", err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(ans)
	}
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("viewer: answer: %w", err)
	}
	cmu.Lock()
	reply("answer", pc.LocalDescription())
	for _, c := range early {
		reply("candidate", map[string]any{"candidate": c})
	}
	answered = true
	cmu.Unlock()
	return pc, nil
}

// selectedPair fills res with the nominated, succeeded candidate pair.
func selectedPair(pc *webrtc.PeerConnection, res *Result) error {
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
