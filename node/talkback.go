package node

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/talkback"
	"github.com/ersmesh/ersmesh/signalwire"
)

// Talk back (issue #16): a viewer's microphone to the device's sink for
// the stream (Config.Talkback). The device's offer carries an audio
// section that receives Opus; any viewer may send on it, but only one that
// proved the room secret is heard, and one at a time (talkback.Floor). The
// device tells the viewer what became of its audio in "talkback" signal
// messages (docs/protocol.md).

// talkIdle is how long without a packet ends a talk spurt and frees the
// floor: the player stops sending when the button is let go
// (replaceTrack(null)), so silence is the release.
const talkIdle = 800 * time.Millisecond

// Talkback states told to the viewer.
const (
	talkTalking  = "talking"  // the viewer holds the floor; the sink hears it
	talkBusy     = "busy"     // another viewer holds the floor
	talkRefused  = "refused"  // the viewer may not talk (no room secret proven)
	talkReleased = "released" // the viewer's spurt ended
	talkFailed   = "failed"   // the sink could not be opened, or the codec is not Opus
	talkReady    = "ready"    // (WHEP, before the answer) the viewer may talk
)

// talkCounters are the device's talkback counts, for metrics.
type talkCounters struct {
	spurts  atomic.Uint64 // spurts started
	refused atomic.Uint64 // spurts refused: no proven secret
	busy    atomic.Uint64 // spurts refused: floor held by another viewer
}

// talkbackOf reports whether the session's stream has a talkback sink.
func (s *session) talkSink() talkback.Sink {
	return s.dev.cfg.Talkback[s.stream]
}

// addTalkReceiver makes pc able to receive the viewer's audio: a recvonly
// Opus section (fmp4 sessions, srtp sessions without an audio track of
// their own; srtp audio tracks are sendrecv, see attachSRTP).
func addTalkReceiver(pc *webrtc.PeerConnection) error {
	_, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	return err
}

// onTalkTrack starts reading a viewer's audio track; the session's run
// goroutine waits for the reader when its PeerConnection closes.
func (s *session) onTalkTrack(tr *webrtc.TrackRemote, sink talkback.Sink) {
	s.talkMu.Lock()
	defer s.talkMu.Unlock()
	if s.talkClosed {
		return
	}
	s.talkWG.Go(func() { s.talk(tr, sink) })
}

// closeTalk ends the talk readers (pc is closed) and waits for them.
func (s *session) closeTalk() {
	s.talkMu.Lock()
	if !s.talkClosed {
		s.talkClosed = true
		close(s.talkQuit)
	}
	s.talkMu.Unlock()
	s.talkWG.Wait()
}

// talk reads the viewer's audio until the track ends, writing the spurts
// it may speak to sink. It owns its spurt.
func (s *session) talk(tr *webrtc.TrackRemote, sink talkback.Sink) {
	if s.gate != nil && !s.gate.wait(s.talkQuit) {
		return // not the certificate that proved the secret: nothing is heard
	}
	s.mu.Lock()
	name := s.stat.Session // the viewer's id at its bridge: what others are told
	s.mu.Unlock()
	floor := s.dev.floor(s.stream)
	opus := strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeOpus)
	var spurt *talkback.Spurt
	told := "" // what the viewer was last told in this spurt
	end := func() {
		if spurt == nil {
			return
		}
		if err := spurt.Close(); err != nil {
			s.log.Warn("talkback sink", "err", err)
		}
		spurt = nil
		floor.Release(s)
		s.talkEvent(EventTalkbackStopped)
		s.tell(talkReleased, "", "")
	}
	defer end()
	for {
		tr.SetReadDeadline(time.Now().Add(talkIdle))
		p, _, err := tr.ReadRTP()
		if err != nil {
			var ne net.Error
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
				end()
				told = ""
				continue
			}
			return // the PeerConnection closed
		}
		if spurt != nil {
			if err := spurt.WriteRTP(p); err != nil {
				s.log.Warn("talkback sink", "err", err)
				end()
				told = talkFailed
			}
			continue
		}
		switch {
		case told != "" && told != talkBusy:
			// Told already: dropped until the viewer pauses. A viewer
			// told busy keeps asking, and gets the floor once it is free.
		case !s.mayTalk:
			s.dev.talk.refused.Add(1)
			s.log.Info("talkback refused", "reason", s.talkWhy)
			s.tell(talkRefused, "", s.talkWhy)
			told = talkRefused
		case !opus:
			s.tell(talkFailed, "", "talkback takes Opus audio only")
			told = talkFailed
		default:
			ok, holder := floor.Take(s, name)
			if !ok {
				if told != talkBusy {
					s.dev.talk.busy.Add(1)
					s.tell(talkBusy, holder, "another viewer is talking")
					told = talkBusy
				}
				break
			}
			spurt, err = talkback.Start(sink)
			if err != nil {
				floor.Release(s)
				s.log.Warn("talkback sink could not be opened", "sink", sink.String(), "err", err)
				s.tell(talkFailed, "", "the camera's speaker could not be opened")
				told = talkFailed
				break
			}
			s.dev.talk.spurts.Add(1)
			s.talkEvent(EventTalkbackStarted)
			s.tell(talkTalking, name, "")
			told = talkTalking
			if err := spurt.WriteRTP(p); err != nil {
				s.log.Warn("talkback sink", "err", err)
			}
		}
	}
}

// tell sends the viewer a talkback state.
func (s *session) tell(state, holder, reason string) {
	payload, _ := json.Marshal(map[string]string{"state": state, "holder": holder, "reason": reason})
	s.send(&signalwire.Message{Kind: signalwire.KindSignal, Type: "talkback", SID: s.sid, Payload: payload})
}

// talkEvent emits a talkback event of the session.
func (s *session) talkEvent(typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.viewerEvent(typ)
}

// floor is the talkback floor of a stream.
func (d *Device) floor(stream string) *talkback.Floor {
	d.floorsMu.Lock()
	defer d.floorsMu.Unlock()
	f := d.floors[stream]
	if f == nil {
		f = &talkback.Floor{}
		d.floors[stream] = f
	}
	return f
}
