package bridge

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/talkback"
	"github.com/ersmesh/ersmesh/trust"
)

// Talk back over WHEP (issue #16): a WHEP client proves a secret in its
// POST's Ersmesh-Secret-Proof header, bound to its offer's DTLS
// fingerprint and the time; the device hears the client's sendrecv audio
// only then.

const (
	whepRoomSecret = "room-secret-for-whep-tests"
	whepTalkSecret = "talk-secret-for-whep-tests"
)

// talkMesh is a WHEP mesh whose stream "cam" talks back to a command sink
// (tee into a file), in room "lobby" protected by whepRoomSecret when
// roomSecret; with talkSecret the stream has its own talk secret.
// stopped gets the device's talkbackStopped events.
func newTalkWHEPMesh(t *testing.T, roomSecret, talkSecret bool) (wm *whepMesh, heard string, stopped chan node.Event) {
	t.Helper()
	heard = filepath.Join(t.TempDir(), "heard.ogg")
	sink, err := talkback.ParseSink("exec:tee " + heard)
	if err != nil {
		t.Fatal(err)
	}
	stopped = make(chan node.Event, 8)
	wm = newWHEPMesh(t, func(c *node.Config) {
		c.Talkback = map[string]talkback.Sink{"cam": sink}
		if roomSecret {
			c.Secrets = map[string]string{"lobby": whepRoomSecret}
		}
		if talkSecret {
			c.TalkSecrets = map[string]string{"cam": whepTalkSecret}
		}
		c.OnEvent = func(ev node.Event) {
			if ev.Type == node.EventTalkbackStopped {
				select {
				case stopped <- ev:
				default:
				}
			}
		}
	}, WHEPConfig{})
	return wm, heard, stopped
}

// whepTalker is a pion WHEP client with a certificate of its own and a
// sendrecv Opus audio section: a player that talks back.
type whepTalker struct {
	*whepClient
	mic *webrtc.TrackLocalStaticSample
	fp  string // its certificate's fingerprint
}

func newWHEPTalker(t *testing.T) *whepTalker {
	t.Helper()
	cert, fp := testutil.DTLSCert(t)
	mic, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "whep-talker")
	if err != nil {
		t.Fatal(err)
	}
	c := newWHEPClientWith(t, webrtc.Configuration{Certificates: []webrtc.Certificate{cert}}, mic)
	return &whepTalker{whepClient: c, mic: mic, fp: fp}
}

// proof is the Ersmesh-Secret-Proof header for the client's offer
// (fingerprint fp) made at when, with the room and talk secrets given.
func whepProof(fp string, when time.Time, room, talk string) string {
	ms := when.UnixMilli()
	p := trust.WHEPProof{UnixMilli: ms}
	if room != "" {
		p.Room = trust.WHEPProofMAC(room, "lobby", "cam", fp, ms)
	}
	if talk != "" {
		p.Talk = trust.WHEPProofMAC(talk, "lobby", "cam", fp, ms)
	}
	return p.String()
}

// post POSTs offer with the proof header (none when proof is "").
func (wm *whepMesh) postWithProof(t *testing.T, offer, proof string) response {
	t.Helper()
	if proof == "" {
		return do(t, "POST", wm.url+"/whep/lobby/cam", "application/sdp", offer)
	}
	return do(t, "POST", wm.url+"/whep/lobby/cam", "application/sdp", offer, trust.WHEPProofHeader, proof)
}

// play applies the answer and waits for video.
func (c *whepTalker) play(t *testing.T, answer string) {
	t.Helper()
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	c.waitVideo(t)
}

// talk sends the Opus packets, 20 ms apart.
func (c *whepTalker) talk(packets [][]byte) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for _, p := range packets {
		c.mic.WriteSample(pionmedia.Sample{Data: p, Duration: 20 * time.Millisecond})
		<-tick.C
	}
}

// answerAudioDir is the direction of the answer's audio section, as the
// device wrote it ("" when it has none it takes part in).
var audioDirRe = regexp.MustCompile(`(?s)m=audio [1-9].*?a=(sendrecv|recvonly|sendonly|inactive)`)

func answerAudioDir(sdp string) string {
	if m := audioDirRe.FindStringSubmatch(sdp); m != nil {
		return m[1]
	}
	return ""
}

// silence is Opus silence, for clients whose audio must not be heard.
func silence(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte{0xf8, 0xff, 0xfe} // a CELT fullband 20 ms frame of silence
	}
	return out
}

// TestWHEPTalkbackToCommandSink: a pion WHEP client that proved the talk
// secret sends a 1 kHz tone on its sendrecv audio section, through a real
// bridge and mesh; the device's exec: sink gets Ogg Opus that decodes to
// the tone.
func TestWHEPTalkbackToCommandSink(t *testing.T) {
	testutil.NeedFFmpeg(t, "to make and decode the tone")
	tone := testutil.ToneOpusPackets(t, 2)
	wm, heard, stopped := newTalkWHEPMesh(t, true, true)
	c := newWHEPTalker(t)
	offer := c.offer(t, true)
	resp := wm.postWithProof(t, offer, whepProof(c.fp, time.Now(), whepRoomSecret, whepTalkSecret))
	if resp.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.status, resp.body)
	}
	if got := resp.header.Get("Ersmesh-Talkback"); got != "ready" {
		t.Fatalf("Ersmesh-Talkback %q (%s), want ready", got, resp.header.Get("Ersmesh-Talkback-Reason"))
	}
	if dir := answerAudioDir(resp.body); dir != "recvonly" && dir != "sendrecv" {
		t.Fatalf("the answer's audio section is %q: the device does not receive", dir)
	}
	c.play(t, resp.body)
	c.talk(tone)
	select {
	case ev := <-stopped:
		if ev.Stream != "cam" {
			t.Fatalf("talkbackStopped %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no talkbackStopped: the device never heard the client")
	}
	// The spurt's command has exited once its stop is told.
	testutil.CheckTone(t, testutil.DecodePCM(t, 48000, "-i", heard), 48000)
}

// TestWHEPTalkbackProofAttacks plays the hostile bridge (and a client
// without the right secret) against the device.
func TestWHEPTalkbackProofAttacks(t *testing.T) {
	wm, heard, _ := newTalkWHEPMesh(t, true, true)
	wantRefused := func(t *testing.T, resp response, why string) {
		t.Helper()
		if resp.status != http.StatusUnauthorized || !strings.Contains(resp.body, why) {
			t.Fatalf("got %d %q, want 401 saying %q", resp.status, resp.body, why)
		}
	}

	t.Run("proof moved to another session", func(t *testing.T) {
		// The bridge keeps an honest client's proof and sends it with an
		// offer of its own (its own certificate).
		honest, bridge := newWHEPTalker(t), newWHEPTalker(t)
		honest.offer(t, true)
		proof := whepProof(honest.fp, time.Now(), whepRoomSecret, whepTalkSecret)
		wantRefused(t, wm.postWithProof(t, bridge.offer(t, true), proof), "wrong room secret")
	})

	t.Run("proof replayed", func(t *testing.T) {
		c := newWHEPTalker(t)
		offer := c.offer(t, true)
		proof := whepProof(c.fp, time.Now(), whepRoomSecret, whepTalkSecret)
		if r := wm.postWithProof(t, offer, proof); r.status != http.StatusCreated {
			t.Fatalf("first use: %d %s", r.status, r.body)
		}
		// The bridge POSTs the same offer and proof again.
		wantRefused(t, wm.postWithProof(t, offer, proof), "used before")
	})

	t.Run("proof replayed later", func(t *testing.T) {
		// Recorded long ago (or made with a clock far off): refused
		// however right its MACs.
		c := newWHEPTalker(t)
		offer := c.offer(t, true)
		wantRefused(t, wm.postWithProof(t, offer, whepProof(c.fp, time.Now().Add(-trust.WHEPProofWindow-time.Minute), whepRoomSecret, whepTalkSecret)), "from the device's clock")
	})

	t.Run("no proof", func(t *testing.T) {
		c := newWHEPTalker(t)
		wantRefused(t, wm.postWithProof(t, c.offer(t, true), ""), "protected by a room secret")
	})

	t.Run("room secret only", func(t *testing.T) {
		// May watch, may not talk: the stream has a talk secret.
		c := newWHEPTalker(t)
		resp := wm.postWithProof(t, c.offer(t, true), whepProof(c.fp, time.Now(), whepRoomSecret, ""))
		if resp.status != http.StatusCreated {
			t.Fatalf("POST: %d %s", resp.status, resp.body)
		}
		if got, why := resp.header.Get("Ersmesh-Talkback"), resp.header.Get("Ersmesh-Talkback-Reason"); got != "refused" || !strings.Contains(why, "talk secret") {
			t.Fatalf("Ersmesh-Talkback %q %q, want refused for want of the talk secret", got, why)
		}
		if dir := answerAudioDir(resp.body); dir == "recvonly" || dir == "sendrecv" {
			t.Fatalf("the answer's audio section is %q: the device would receive", dir)
		}
		c.play(t, resp.body)
		c.talk(silence(50))
	})

	t.Run("wrong talk secret", func(t *testing.T) {
		c := newWHEPTalker(t)
		wantRefused(t, wm.postWithProof(t, c.offer(t, true), whepProof(c.fp, time.Now(), whepRoomSecret, "guess")), "wrong talk secret")
	})

	t.Run("bridge answers with its own certificate", func(t *testing.T) {
		// The bridge sends an honest client's offer and proof, its own
		// certificate's fingerprint swapped for the client's, and talks:
		// the proof holds, but DTLS with the device never completes.
		honest, bridge := newWHEPTalker(t), newWHEPTalker(t)
		honest.offer(t, true)
		proof := whepProof(honest.fp, time.Now(), whepRoomSecret, whepTalkSecret)
		offer := fingerprintRe.ReplaceAllString(bridge.offer(t, true), "a=fingerprint:"+honest.fp)
		if trust.SDPFingerprint(offer) != honest.fp {
			t.Fatal("the fingerprint was not swapped")
		}
		resp := wm.postWithProof(t, offer, proof)
		if resp.status != http.StatusCreated {
			t.Fatalf("POST: %d %s", resp.status, resp.body)
		}
		if err := bridge.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: resp.body}); err != nil {
			t.Fatal(err)
		}
		bridge.talk(silence(100))
		select {
		case <-bridge.packets:
			t.Fatal("the bridge got video with another client's proof")
		default:
		}
	})

	time.Sleep(time.Second) // the idle time that would end a spurt
	if _, err := os.Stat(heard); err == nil {
		t.Fatal("audio of a client that may not talk reached the sink")
	}
	refused := wm.dev.TrustRefusals()
	for _, reason := range []string{"wrong_proof", "replayed_proof", "stale_proof"} {
		if refused[reason] == 0 {
			t.Errorf("no %s refusal counted: %v", reason, refused)
		}
	}
}

// fingerprintRe is an SDP's fingerprint line.
var fingerprintRe = regexp.MustCompile(`a=fingerprint:[^\r\n]*`)

// An open room's WHEP client without a proof watches but is not heard.
func TestWHEPTalkbackWithoutProof(t *testing.T) {
	wm, heard, _ := newTalkWHEPMesh(t, false, true)
	c := newWHEPTalker(t)
	resp := wm.postWithProof(t, c.offer(t, true), "")
	if resp.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.status, resp.body)
	}
	if got := resp.header.Get("Ersmesh-Talkback"); got != "refused" {
		t.Fatalf("Ersmesh-Talkback %q, want refused", got)
	}
	c.play(t, resp.body)
	c.talk(silence(75))
	time.Sleep(time.Second)
	if _, err := os.Stat(heard); err == nil {
		t.Fatal("a client without a proof was heard")
	}
}
