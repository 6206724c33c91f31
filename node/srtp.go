package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/node/udpbatch"
	"github.com/ersmesh/ersmesh/signalwire"
)

// aacOnSRTPNote is what an srtp viewer of an AAC stream is told, in the
// offer's session information line (RFC 8866 §5.4) the player shows.
const aacOnSRTPNote = "This stream's audio is AAC, which WebRTC media tracks cannot carry: video only. Use transport fmp4 to hear it."

// attachSRTP adds the stream's sendonly tracks to pc, as EMS offers them:
// H.264 video and Opus/PCMU/PCMA audio, the viewer's own tracks, written
// by its own writer goroutine from the stream's shared packets. It returns
// a note for the viewer when audio cannot be sent, and the function that detaches the viewer. A
// non-nil gate drops every packet until it opens (dtlsgate.go). The writer
// sends each frame's packets to pc's sockets in one batch when batch (pc's
// own udpbatch.Net, see peerAPI) is not nil.
//
// With talk, the audio section also receives the viewer's voice
// (talkback.go): an Opus audio track's section is sendrecv, or a recvonly
// one is added.
func attachSRTP(pc *webrtc.PeerConnection, batch *udpbatch.Net, stream *media.Stream, log *slog.Logger, gate *dtlsGate, talk bool) (note string, detach func(), err error) {
	// The video track announces the stream's codec, which its source's
	// first frame tells: a camera just opened may take a moment.
	ctx, cancel := context.WithTimeout(context.Background(), codecWait)
	codec, werr := stream.WaitVideoCodec(ctx)
	cancel()
	if werr == nil && codec == media.VideoH265 {
		log.Info("srtp viewer of an H.265 stream: the offer's track is H.265 (RFC 7798); the browser must list it in its answer")
	}
	v, err := stream.SubscribeRTP()
	if err != nil {
		return "", nil, err
	}
	detach = func() { stream.UnsubscribeRTP(v) }
	if batch != nil {
		v.SetSendBatch(batch)
	}
	v.SetSenderReports(pc.WriteRTCP)
	tracks := []webrtc.TrackLocal{v.Track()}
	if a := v.AudioTrack(); a != nil {
		tracks = append(tracks, a)
	} else if f := stream.Audio(); f != nil && f.Codec == media.AudioAAC {
		log.Info("srtp viewer gets video only: the stream's audio is AAC; transport fmp4 carries it")
		note = aacOnSRTPNote
	}
	// An Opus audio section can carry the viewer's Opus back; one of
	// another codec (PCMU) cannot, and talkback gets its own.
	opusAudio := len(tracks) == 2 && stream.Audio() != nil && stream.Audio().Codec == media.AudioOpus
	for i, t := range tracks {
		if gate != nil {
			t = gatedTrack{t, gate}
		}
		dir := webrtc.RTPTransceiverDirectionSendonly
		if talk && t.Kind() == webrtc.RTPCodecTypeAudio && opusAudio {
			dir = webrtc.RTPTransceiverDirectionSendrecv
		}
		tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: dir})
		if err != nil {
			detach()
			return "", nil, fmt.Errorf("add %s track: %w", t.Kind(), err)
		}
		sender := tr.Sender()
		video := i == 0
		// RTCP must be read for the interceptors (NACK, reports) to see
		// it; a viewer's keyframe request is answered from the GOP cache,
		// and passed on to a source that can make one (a camera).
		// The loop ends when the PeerConnection closes.
		go func() {
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				if !video {
					continue
				}
				for _, p := range pkts {
					switch p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						v.RequestKeyframe()
						stream.RequestKeyframe()
					}
				}
			}
		}()
	}
	if talk && !opusAudio {
		if err := addTalkReceiver(pc); err != nil {
			detach()
			return "", nil, fmt.Errorf("add talkback receiver: %w", err)
		}
	}
	return note, detach, nil
}

// codecWait bounds how long an srtp offer waits for a stream whose source
// has not delivered a frame yet; the track is H.264 after it.
const codecWait = 3 * time.Second

// errNoH265 is the refusal of an answer that leaves out H.265 for an H.265
// stream: the device passes video through and cannot send H.264 instead.
// The player recognises the "unsupported codec:" prefix and stops there
// rather than rejoin.
var errNoH265 = errors.New("unsupported codec: this camera sends H.265 (HEVC) and this browser's WebRTC cannot receive it " +
	"(its answer lists no H.265). Use a browser that decodes H.265 (Safari, or Chrome/Edge 136+ with a hardware decoder), " +
	"or transport fmp4 where its Media Source Extensions play H.265")

// explainAnswerError turns pion's refusal of an answer without the stream's
// codec into words for the viewer.
func explainAnswerError(st *media.Stream, err error) error {
	if st == nil || !errors.Is(err, webrtc.ErrUnsupportedCodec) && !strings.Contains(err.Error(), webrtc.ErrUnsupportedCodec.Error()) {
		return err
	}
	if c, ok := st.VideoCodec(); ok && c == media.VideoH265 {
		return refuse(signalwire.CodeUnsupported, "%v", errNoH265)
	}
	return err
}
