package ersviewer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/bridge/socketio"
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

// event is a Socket.IO event from the bridge.
type event struct {
	Name string            `json:"name"`
	Args []json.RawMessage `json:"args"`
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

// client is one Socket.IO 0.9 session. Its read loop owns reads; writes
// take wmu.
type client struct {
	ws     *websocket.Conn
	wmu    sync.Mutex
	events chan event
	acks   chan []json.RawMessage
	done   chan struct{}
	err    error
}

func dial(ctx context.Context, base string) (*client, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/socket.io/1/?t=1", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("socket.io handshake: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("socket.io handshake: %s %q %v", resp.Status, body, err)
	}
	sid, _, _ := strings.Cut(string(body), ":")
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/socket.io/1/websocket/"+sid, nil)
	if err != nil {
		return nil, fmt.Errorf("socket.io websocket: %w", err)
	}
	ws.SetReadLimit(1 << 20)
	c := &client{ws: ws, events: make(chan event, 64), acks: make(chan []json.RawMessage, 4), done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		p, err := socketio.ParsePacket(b)
		if err != nil {
			c.err = err
			return
		}
		switch p.Type {
		case socketio.PacketHeartbeat:
			c.send("2::")
		case socketio.PacketEvent:
			var ev event
			if json.Unmarshal([]byte(p.Data), &ev) == nil {
				select {
				case c.events <- ev:
				default: // the test is not reading; drop rather than block
				}
			}
		case socketio.PacketAck:
			_, data, _ := strings.Cut(p.Data, "+")
			var args []json.RawMessage
			json.Unmarshal([]byte(data), &args)
			select {
			case c.acks <- args:
			default:
			}
		}
	}
}

func (c *client) send(packet string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, []byte(packet))
}

func (c *client) emit(id, name string, args ...any) error {
	b, err := json.Marshal(map[string]any{"name": name, "args": args})
	if err != nil {
		return err
	}
	plus := ""
	if id != "" {
		plus = "+"
	}
	return c.send("5:" + id + plus + "::" + string(b))
}

func (c *client) close() {
	c.ws.CloseNow()
	<-c.done
}

// Play joins the room, answers the device's offer and returns once
// opts.Packets RTP packets have arrived, or ctx ends.
func Play(ctx context.Context, opts Options) (*Result, error) {
	if opts.Packets <= 0 {
		opts.Packets = 50
	}
	c, err := dial(ctx, opts.Bridge)
	if err != nil {
		return nil, err
	}
	defer c.close()
	res := &Result{}

	// The bridge sends stunservers and turnservers on connect, before any
	// offer.
	var pc *webrtc.PeerConnection
	defer func() {
		if pc != nil {
			pc.Close()
		}
	}()
	var session message
	got := make(chan error, 1)
	joined := false
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("viewer: %w (stage: joined=%v, offer=%v)", ctx.Err(), joined, pc != nil)
		case <-c.done:
			return nil, fmt.Errorf("viewer: bridge closed the socket: %w", c.err)
		case err := <-got:
			if err != nil {
				return nil, err
			}
			if err := selectedPair(pc, res); err != nil {
				return nil, err
			}
			return res, nil
		case args := <-c.acks:
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
				// Nobody serves the room yet (the record may not have
				// spread): ask again, as the player does.
				time.Sleep(500 * time.Millisecond)
				if err := c.emit("1", "join", opts.Room, map[string]string{"streamName": opts.Stream, "transport": "srtp"}); err != nil {
					return nil, err
				}
			}
		case ev := <-c.events:
			switch ev.Name {
			case "stunservers", "turnservers":
				var list []ICEServer
				if len(ev.Args) > 0 {
					if err := json.Unmarshal(ev.Args[0], &list); err != nil {
						return nil, fmt.Errorf("viewer: bad %s: %w", ev.Name, err)
					}
				}
				if ev.Name == "stunservers" {
					res.STUN = list
					if opts.Servers != nil {
						opts.Servers.STUN = list
					}
				} else {
					res.TURN = list
					if opts.Servers != nil {
						opts.Servers.TURN = list
					}
					// Both lists are in: join.
					joined = true
					if err := c.emit("1", "join", opts.Room, map[string]string{"streamName": opts.Stream, "transport": "srtp"}); err != nil {
						return nil, err
					}
				}
			case "message":
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
	}
}

func answer(c *client, opts Options, res *Result, offer message, got chan<- error) (*webrtc.PeerConnection, error) {
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
		c.emit("", "message", message{To: offer.From, SID: offer.SID, Broadcaster: offer.From, RoomType: "video", Type: typ, Payload: b})
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
