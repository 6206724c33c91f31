package bridge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/internal/testutil/testmesh"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/media"
)

// whepMesh is a real mesh on loopback: a bootstrap, a device serving room
// "lobby" (stream "cam"), and a bridge serving HTTP.
type whepMesh struct {
	boot    []multiaddr.Multiaddr
	bridgeN *mesh.Host
	dev     *node.Device
	bridge  *Bridge
	url     string // http://127.0.0.1:port
}

func newWHEPMesh(t *testing.T, tuneDevice func(*node.Config), whep WHEPConfig) *whepMesh {
	t.Helper()
	_, boot := testmesh.Bootstrap(t)
	wm := &whepMesh{boot: boot}
	wm.bridgeN = testmesh.Host(t, boot, nil)
	wm.dev = startDevice(t, wm.boot, "lobby", tuneDevice)
	wm.bridge, wm.url = startBridge(t, wm.bridgeN, whep)
	return wm
}

// startDevice runs a device on its own mesh node serving room with stream
// "cam"; it returns once the room is published.
func startDevice(t *testing.T, boot []multiaddr.Multiaddr, room string, tune func(*node.Config)) *node.Device {
	d, _ := startDeviceNode(t, boot, room, tune)
	return d
}

func startDeviceNode(t *testing.T, boot []multiaddr.Multiaddr, room string, tune func(*node.Config)) (*node.Device, *mesh.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := testutil.Logger(t)
	n := testmesh.Host(t, boot, nil)
	stream, err := media.NewSampleStream("cam", log)
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.Config{
		Mesh: n, Rooms: []string{room},
		Streams:         map[string]*media.Stream{"cam": stream},
		IncludeLoopback: true,
		Logger:          log,
	}
	if tune != nil {
		tune(&cfg)
	}
	d, err := node.New(ctx, cfg)
	if err != nil {
		stream.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, n
}

func startBridge(t *testing.T, n *mesh.Host, whep WHEPConfig) (*Bridge, string) {
	t.Helper()
	return startBridgeWith(t, n, func(c *Config) { c.WHEP = whep })
}

// startBridgeWith serves a bridge on loopback, its Config tuned by tune.
func startBridgeWith(t *testing.T, n *mesh.Host, tune func(*Config)) (*Bridge, string) {
	t.Helper()
	cfg := Config{
		Host: n.Libp2p(), Resolver: mesh.NewResolver(n, mesh.ResolverOptions{}),
		STUNServers: []string{"stun:127.0.0.1:9"},
		Logger:      testutil.Logger(t),
	}
	if tune != nil {
		tune(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, testutil.Serve(t, b)
}

// whepClient is a pion PeerConnection receiving video, as any WHEP player.
type whepClient struct {
	pc      *webrtc.PeerConnection
	packets chan int
}

func newWHEPClient(t *testing.T) *whepClient {
	t.Helper()
	return newWHEPClientWith(t, webrtc.Configuration{}, nil)
}

// newWHEPClientWith is newWHEPClient with the PeerConnection's
// configuration (a DTLS certificate) and, when mic is not nil, an audio
// section that sends mic (sendrecv, as a player that talks back).
func newWHEPClientWith(t *testing.T, conf webrtc.Configuration, mic webrtc.TrackLocal) *whepClient {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	if mic == nil {
		_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	} else {
		_, err = pc.AddTransceiverFromTrack(mic, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &whepClient{pc: pc, packets: make(chan int, 1)}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			for { // the stream's own audio: read for the interceptors
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
			}
		}
		if tr.Codec().MimeType != webrtc.MimeTypeH264 {
			t.Errorf("track codec %s, want H.264", tr.Codec().MimeType)
		}
		n := 0
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			if n++; n == 50 {
				c.packets <- n
			}
		}
	})
	return c
}

// offer returns the client's offer; complete waits for its ICE gathering
// (a client that does not trickle), else it has no candidates at all.
func (c *whepClient) offer(t *testing.T, complete bool) string {
	t.Helper()
	o, err := c.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	if !complete {
		return o.SDP
	}
	<-gathered
	return c.pc.LocalDescription().SDP
}

func (c *whepClient) waitVideo(t *testing.T) {
	t.Helper()
	select {
	case <-c.packets:
	case <-time.After(15 * time.Second):
		t.Fatal("no video within 15 s")
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url, contentType, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after 10 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWHEPPionClientPlays is the whole WHEP flow with an independent
// client: a pion PeerConnection POSTs a complete offer to the bridge, which
// finds the device over the DHT and relays over libp2p; the device's answer
// comes back with 201, video flows device → client, and DELETE frees the
// device's session.
func TestWHEPPionClientPlays(t *testing.T) {
	wm := newWHEPMesh(t, nil, WHEPConfig{})
	c := newWHEPClient(t)
	resp := do(t, "POST", wm.url+"/whep/lobby/cam", "application/sdp", c.offer(t, true), "Authorization", "Bearer sometoken")
	if resp.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.status, resp.body)
	}
	if ct := resp.header.Get("Content-Type"); ct != "application/sdp" {
		t.Errorf("Content-Type %q", ct)
	}
	loc := resp.header.Get("Location")
	if !strings.HasPrefix(loc, "/whep/session/") {
		t.Fatalf("Location %q", loc)
	}
	if links := resp.header.Values("Link"); len(links) != 1 || links[0] != `<stun:127.0.0.1:9>; rel="ice-server"` {
		t.Errorf("Link headers %q, want the bridge's STUN server", links)
	}
	if resp.header.Get("ETag") == "" || resp.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("missing ETag or CORS headers: %v", resp.header)
	}
	if !strings.Contains(resp.body, "a=candidate:") {
		t.Fatalf("answer carries no candidates:\n%s", resp.body)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: resp.body}); err != nil {
		t.Fatal(err)
	}
	c.waitVideo(t)

	vs := wm.dev.Viewers()
	if len(vs) != 1 || !vs[0].Answering || vs[0].Stream != "cam" {
		t.Fatalf("device viewers %+v, want one answering session on cam", vs)
	}
	if n := wm.bridge.whep.len(); n != 1 {
		t.Fatalf("bridge has %d WHEP sessions, want 1", n)
	}
	if r := do(t, "DELETE", wm.url+loc, "", ""); r.status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	waitFor(t, "the device freed the session", func() bool { return len(wm.dev.Viewers()) == 0 })
	if n := wm.bridge.whep.len(); n != 0 {
		t.Errorf("bridge still has %d WHEP sessions after DELETE", n)
	}
	if r := do(t, "DELETE", wm.url+loc, "", ""); r.status != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", r.status)
	}
}

// sdpFragOf writes candidates as an RFC 8840 fragment.
func sdpFragOf(ufrag, pwd, mid string, cands []string, end bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:%s\r\n", ufrag, pwd, mid)
	for _, c := range cands {
		fmt.Fprintf(&b, "a=%s\r\n", c)
	}
	if end {
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.String()
}

// TestWHEPTrickle: a client that offers before gathering sends its
// candidates with PATCH; they must reach the device.
func TestWHEPTrickle(t *testing.T) {
	wm := newWHEPMesh(t, nil, WHEPConfig{})
	c := newWHEPClient(t)
	cands := make(chan string, 16)
	c.pc.OnICECandidate(func(ic *webrtc.ICECandidate) {
		if ic == nil {
			close(cands)
			return
		}
		cands <- ic.ToJSON().Candidate
	})
	offer := c.offer(t, false)
	if strings.Contains(offer, "a=candidate:") {
		t.Fatal("the offer should have no candidates")
	}
	resp := do(t, "POST", wm.url+"/whep/lobby", "application/sdp", offer)
	if resp.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.status, resp.body)
	}
	loc, etag := wm.url+resp.header.Get("Location"), resp.header.Get("ETag")
	var ufrag, pwd, mid string
	for _, l := range strings.Split(offer, "\r\n") {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			ufrag = l[len("a=ice-ufrag:"):]
		case strings.HasPrefix(l, "a=ice-pwd:"):
			pwd = l[len("a=ice-pwd:"):]
		case strings.HasPrefix(l, "a=mid:") && mid == "":
			mid = l[len("a=mid:"):]
		}
	}
	var all []string
	for cand := range cands {
		all = append(all, cand)
	}
	if len(all) == 0 {
		t.Fatal("the client gathered no candidates")
	}

	// Refusals first: none of them may end the session.
	frag := sdpFragOf(ufrag, pwd, mid, all, true)
	for _, tc := range []struct {
		name, ctype, body, ifMatch string
		want                       int
	}{
		{"wrong content type", "application/sdp", frag, etag, http.StatusUnsupportedMediaType},
		{"stale etag", fragType, frag, `"nope"`, http.StatusPreconditionFailed},
		{"ice restart", fragType, sdpFragOf("otherufrag", "otherpwd0123456789012345", mid, all, false), etag, http.StatusUnprocessableEntity},
		{"garbage", fragType, "a=candidate:1 1 udp\r\n", etag, http.StatusBadRequest},
	} {
		r := do(t, "PATCH", loc, tc.ctype, tc.body, "If-Match", tc.ifMatch)
		if r.status != tc.want || strings.TrimSpace(r.body) == "" {
			t.Errorf("%s: %d %q, want %d with a reason", tc.name, r.status, r.body, tc.want)
		}
	}
	if r := do(t, "PATCH", loc, fragType, frag, "If-Match", etag); r.status != http.StatusNoContent {
		t.Fatalf("PATCH: %d %s", r.status, r.body)
	}
	waitFor(t, "the device has the trickled candidates", func() bool {
		vs := wm.dev.Viewers()
		return len(vs) == 1 && vs[0].RemoteCandidates == len(all)
	})
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: resp.body}); err != nil {
		t.Fatal(err)
	}
	c.waitVideo(t)
	if r := do(t, "PATCH", wm.url+"/whep/session/0123456789abcdef0123456789abcdef", fragType, frag); r.status != http.StatusNotFound {
		t.Errorf("PATCH to an unknown session: %d, want 404", r.status)
	}
	// A client flooding its device with candidates is stopped.
	flood := sdpFragOf(ufrag, pwd, mid, []string{all[0]}, false)
	status := 0
	for i := 0; i <= maxTrickled && status != http.StatusTooManyRequests; i++ {
		r := do(t, "PATCH", loc, fragType, flood)
		status = r.status
		if status != http.StatusNoContent && status != http.StatusTooManyRequests {
			t.Fatalf("PATCH %d: %d %s", i, r.status, r.body)
		}
	}
	if status != http.StatusTooManyRequests {
		t.Errorf("no 429 after %d trickled candidates", maxTrickled)
	}
}

// tokenCheck is a device's Authorize hook: token "good" opens the room.
func tokenCheck(room, stream, token string) error {
	switch token {
	case "good":
		return nil
	case "":
		return node.ErrUnauthorized
	}
	return node.ErrForbidden
}

// TestWHEPErrors checks every refusal: its status, and a plain-text reason.
func TestWHEPErrors(t *testing.T) {
	wm := newWHEPMesh(t, func(c *node.Config) { c.Authorize = tokenCheck }, WHEPConfig{Burst: 100})
	// A device that published room "ghost" and then died: its record is
	// still in the DHT, but nobody answers at its address.
	ghost, ghostNode := startDeviceNode(t, wm.boot, "ghost", nil)
	ghost.Close()
	ghostNode.Close()

	c := newWHEPClient(t)
	offer := c.offer(t, true)
	audioOnly := testutil.AudioOnlyOffer(t).SDP
	good := []string{"Authorization", "Bearer good"}
	for _, tc := range []struct {
		name, method, path, ctype, body string
		header                          []string
		want                            int
		reason                          string
	}{
		{"unknown room", "POST", "/whep/nobody-here", sdpType, offer, good, 404, `no device serves room "nobody-here"`},
		{"unknown stream", "POST", "/whep/lobby/nope", sdpType, offer, good, 404, `stream "nope" not found`},
		{"invalid room name", "POST", "/whep/bad%20room", sdpType, offer, good, 400, "bad room name"},
		{"too many path segments", "POST", "/whep/lobby/cam/extra", sdpType, offer, good, 400, "WHEP URLs are"},
		{"no token", "POST", "/whep/lobby/cam", sdpType, offer, nil, 401, "needs a token"},
		{"not a bearer token", "POST", "/whep/lobby/cam", sdpType, offer, []string{"Authorization", "Basic Zm9vOmJhcg=="}, 401, "Bearer"},
		{"wrong token", "POST", "/whep/lobby/cam", sdpType, offer, []string{"Authorization", "Bearer bad"}, 403, "does not open"},
		{"not sdp", "POST", "/whep/lobby/cam", sdpType, "hello", good, 400, "bad offer"},
		{"sdp without media", "POST", "/whep/lobby/cam", sdpType, "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", good, 400, "no media section"},
		{"offer the device cannot use", "POST", "/whep/lobby/cam", sdpType, audioOnly, good, 400, "does not receive video"},
		{"wrong content type", "POST", "/whep/lobby/cam", "application/json", offer, good, 415, "application/sdp"},
		{"no content type", "POST", "/whep/lobby/cam", "", offer, good, 415, "application/sdp"},
		{"too large", "POST", "/whep/lobby/cam", sdpType, "v=0\r\n" + strings.Repeat("a=x\r\n", maxOfferSize/5), good, 413, "larger than"},
		{"device unreachable", "POST", "/whep/ghost", sdpType, offer, nil, 503, "cannot be reached"},
		{"wrong method", "GET", "/whep/lobby", "", "", nil, 405, "not allowed"},
		{"delete unknown session", "DELETE", "/whep/session/0123456789abcdef0123456789abcdef", "", "", nil, 404, "no such WHEP session"},
		{"delete a room", "DELETE", "/whep/lobby", "", "", nil, 404, "no such WHEP session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, wm.url+tc.path, tc.ctype, tc.body, tc.header...)
			if r.status != tc.want {
				t.Fatalf("status %d (%q), want %d", r.status, r.body, tc.want)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			if !strings.Contains(r.body, tc.reason) {
				t.Errorf("reason %q does not say %q", r.body, tc.reason)
			}
			if tc.want == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// The good token still works after all that, and nothing leaked.
	r := do(t, "POST", wm.url+"/whep/lobby/cam", sdpType, offer, good...)
	if r.status != http.StatusCreated {
		t.Fatalf("POST with the good token: %d %s", r.status, r.body)
	}
	waitFor(t, "only the good session is left on the device", func() bool { return len(wm.dev.Viewers()) == 1 })

	// A bridge that relays one session at most refuses the second.
	_, small := startBridge(t, wm.bridgeN, WHEPConfig{MaxSessions: 1})
	if r := do(t, "POST", small+"/whep/lobby/cam", sdpType, offer, good...); r.status != http.StatusCreated {
		t.Fatalf("first POST to the small bridge: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", small+"/whep/lobby/cam", sdpType, offer, good...); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "as many WHEP sessions") {
		t.Errorf("second POST to the small bridge: %d %q, want 503", r.status, r.body)
	}

	// A tight rate limit on a second bridge of the same mesh.
	_, url := startBridge(t, wm.bridgeN, WHEPConfig{Burst: 2, RatePerMinute: 1})
	for i, want := range []int{400, 400, 429} {
		r := do(t, "POST", url+"/whep/lobby", sdpType, "not sdp")
		if r.status != want {
			t.Fatalf("POST %d: %d %q, want %d", i+1, r.status, r.body, want)
		}
		if want == 429 && (r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "too many")) {
			t.Errorf("429 without Retry-After or reason: %v %q", r.header, r.body)
		}
	}
}

// TestWHEPPreflight: a page on another site must be allowed to POST an
// offer with a token, and read the headers it needs.
func TestWHEPPreflight(t *testing.T) {
	wm := newWHEPMesh(t, nil, WHEPConfig{})
	r := do(t, "OPTIONS", wm.url+"/whep/lobby", "", "",
		"Origin", "https://player.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization, content-type")
	if r.status != http.StatusNoContent {
		t.Fatalf("OPTIONS: %d %s", r.status, r.body)
	}
	h := r.header
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":   "*",
		"Access-Control-Allow-Methods":  "POST",
		"Access-Control-Allow-Headers":  "Authorization",
		"Access-Control-Expose-Headers": "Location",
		"Accept-Post":                   "application/sdp",
	} {
		if !strings.Contains(h.Get(name), want) {
			t.Errorf("%s: %q, want it to contain %q", name, h.Get(name), want)
		}
	}
	if !strings.Contains(h.Get("Access-Control-Allow-Headers"), "If-Match") || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Link") {
		t.Errorf("preflight headers %v", h)
	}
}

// TestWHEPBridgeCloseEndsSessions: a bridge going away tells the device.
func TestWHEPBridgeCloseEndsSessions(t *testing.T) {
	wm := newWHEPMesh(t, nil, WHEPConfig{})
	c := newWHEPClient(t)
	r := do(t, "POST", wm.url+"/whep/lobby", sdpType, c.offer(t, true))
	if r.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	if len(wm.dev.Viewers()) != 1 {
		t.Fatalf("device viewers %+v", wm.dev.Viewers())
	}
	if err := wm.bridge.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the device ended the session", func() bool { return len(wm.dev.Viewers()) == 0 })
}

// TestWHEPAbandonedSessionExpires: a client that closes its PeerConnection
// and never DELETEs must not leave a session behind on the device or the
// bridge.
func TestWHEPAbandonedSessionExpires(t *testing.T) {
	wm := newWHEPMesh(t, nil, WHEPConfig{})
	c := newWHEPClient(t)
	r := do(t, "POST", wm.url+"/whep/lobby/cam", sdpType, c.offer(t, true))
	if r.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: r.body}); err != nil {
		t.Fatal(err)
	}
	c.waitVideo(t)
	c.pc.Close()
	waitFor(t, "the device ended the abandoned session", func() bool { return len(wm.dev.Viewers()) == 0 })
	waitFor(t, "the bridge forgot the abandoned session", func() bool { return wm.bridge.whep.len() == 0 })
	if r := do(t, "DELETE", wm.url+r.header.Get("Location"), "", ""); r.status != http.StatusNotFound {
		t.Errorf("DELETE of the expired session: %d, want 404", r.status)
	}
}
