package media

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// rtpIngest turns RTP packets of an SDP-described session (an RTSP camera,
// an RTP push) into frames, with gortsplib's depacketizers: H.264 video and
// one audio track of AAC, Opus or G.711.
type rtpIngest struct {
	w Writer

	videoMedia *description.Media
	vformat    format.Format // h264 or h265
	h264       *format.H264
	vdec       *rtph264.Decoder
	h265       *format.H265
	vdec265    *rtph265.Decoder

	audioMedia  *description.Media
	audioFormat format.Format
	audio       *AudioFormat
	adec        func(*rtp.Packet) ([][]byte, error)
}

// newRTPIngest picks the tracks it can serve from medias. What it skips it
// reports in skipped, for the log.
func newRTPIngest(medias []*description.Media) (in *rtpIngest, skipped []string, err error) {
	in = &rtpIngest{}
	for _, m := range medias {
		for _, f := range m.Formats {
			switch f := f.(type) {
			case *format.H264:
				if in.vformat != nil {
					continue
				}
				in.videoMedia, in.h264, in.vformat = m, f, f
				if in.vdec, err = f.CreateDecoder(); err != nil {
					return nil, nil, fmt.Errorf("H.264 depacketizer: %w", err)
				}
			case *format.H265:
				if in.vformat != nil {
					continue
				}
				in.videoMedia, in.h265, in.vformat = m, f, f
				if in.vdec265, err = f.CreateDecoder(); err != nil {
					return nil, nil, fmt.Errorf("H.265 depacketizer: %w", err)
				}
			case *format.MPEG4Audio:
				if in.audio != nil || f.Config == nil {
					if f.Config == nil {
						skipped = append(skipped, "AAC in LATM")
					}
					continue
				}
				d, err := f.CreateDecoder()
				if err != nil {
					return nil, nil, fmt.Errorf("AAC depacketizer: %w", err)
				}
				cfg := *f.Config
				in.audioMedia, in.audioFormat, in.adec = m, f, d.Decode
				in.audio = &AudioFormat{Codec: AudioAAC, SampleRate: cfg.SampleRate, Channels: cfg.ChannelCount, AAC: &cfg}
			case *format.Opus:
				if in.audio != nil {
					continue
				}
				d, err := f.CreateDecoder()
				if err != nil {
					return nil, nil, fmt.Errorf("Opus depacketizer: %w", err)
				}
				in.audioMedia, in.audioFormat = m, f
				in.adec = func(p *rtp.Packet) ([][]byte, error) {
					b, err := d.Decode(p)
					return [][]byte{b}, err
				}
				in.audio = &AudioFormat{Codec: AudioOpus, SampleRate: 48000, Channels: max(f.ChannelCount, 1)}
			case *format.G711:
				if in.audio != nil {
					continue
				}
				if f.SampleRate != 8000 || f.ChannelCount != 1 {
					skipped = append(skipped, fmt.Sprintf("G.711 at %d Hz, %d channels (browsers take 8 kHz mono)", f.SampleRate, f.ChannelCount))
					continue
				}
				d, err := f.CreateDecoder()
				if err != nil {
					return nil, nil, fmt.Errorf("G.711 depacketizer: %w", err)
				}
				in.audioMedia, in.audioFormat = m, f
				in.adec = func(p *rtp.Packet) ([][]byte, error) {
					b, err := d.Decode(p)
					return [][]byte{b}, err
				}
				codec := AudioPCMA
				if f.MULaw {
					codec = AudioPCMU
				}
				in.audio = &AudioFormat{Codec: codec, SampleRate: 8000, Channels: 1}
			default:
				skipped = append(skipped, f.Codec())
			}
		}
	}
	if in.vformat == nil {
		what := "nothing"
		if len(skipped) > 0 {
			what = strings.Join(skipped, ", ")
		}
		return nil, skipped, fmt.Errorf("%w: no H.264 or H.265 video track (found: %s)", ErrBadSource, what)
	}
	return in, skipped, nil
}

func (in *rtpIngest) start(w Writer) {
	in.w = w
	if in.audio != nil {
		w.SetAudio(*in.audio)
	}
}

// video handles one video packet; pts is on the session's clock.
func (in *rtpIngest) video(pkt *rtp.Packet, pts time.Duration) {
	if in.h265 != nil {
		in.video265(pkt, pts)
		return
	}
	au, err := in.vdec.Decode(pkt)
	if err != nil {
		// More packets needed, or a loss: the decoder resynchronises.
		return
	}
	idr := h264.IDRPresent(au)
	if idr {
		// Cameras often send SPS and PPS only in the SDP: a keyframe must
		// carry them for a viewer who starts there.
		au = withParams(au, in.h264.SPS, in.h264.PPS)
	}
	nalus := make([][]byte, 0, len(au))
	for _, n := range au {
		if len(n) > 0 {
			nalus = append(nalus, n)
		}
	}
	if len(nalus) == 0 {
		return
	}
	in.w.WriteVideo(VideoFrame{AU: AccessUnit{NALUs: nalus, IDR: idr}, PTS: pts})
}

// video265 is video for an H.265 track (RFC 7798 depacketized by
// gortsplib): random access pictures get the SDP's parameter sets when the
// camera sends them out of band only.
func (in *rtpIngest) video265(pkt *rtp.Packet, pts time.Duration) {
	au, err := in.vdec265.Decode(pkt)
	if err != nil {
		return
	}
	nalus := make([][]byte, 0, len(au)+3)
	idr := false
	for _, n := range au {
		if len(n) >= 2 {
			nalus = append(nalus, n)
			idr = idr || isIRAP265(n)
		}
	}
	if len(nalus) == 0 {
		return
	}
	if idr {
		nalus = withParams265(nalus, in.h265.VPS, in.h265.SPS, in.h265.PPS)
	}
	in.w.WriteVideo(VideoFrame{AU: AccessUnit{NALUs: nalus, IDR: idr, Codec: VideoH265}, PTS: pts})
}

// withParams265 puts VPS, SPS and PPS (those given and missing from au)
// before a random access picture, so that fmp4's init segment and srtp
// viewers' decoders can start there.
func withParams265(au [][]byte, vps, sps, pps []byte) [][]byte {
	has := map[h265.NALUType]bool{}
	for _, n := range au {
		has[h265Type(n)] = true
	}
	var pre [][]byte
	for _, p := range []struct {
		t h265.NALUType
		b []byte
	}{{h265.NALUType_VPS_NUT, vps}, {h265.NALUType_SPS_NUT, sps}, {h265.NALUType_PPS_NUT, pps}} {
		if !has[p.t] && len(p.b) >= 2 {
			pre = append(pre, p.b)
		}
	}
	if len(pre) == 0 {
		return au
	}
	return append(pre, au...)
}

func withParams(au [][]byte, sps, pps []byte) [][]byte {
	var hasSPS, hasPPS bool
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			hasSPS = true
		case h264.NALUTypePPS:
			hasPPS = true
		}
	}
	var pre [][]byte
	if !hasSPS && len(sps) > 0 {
		pre = append(pre, sps)
	}
	if !hasPPS && len(pps) > 0 {
		pre = append(pre, pps)
	}
	if len(pre) == 0 {
		return au
	}
	return append(pre, au...)
}

// audio handles one audio packet.
func (in *rtpIngest) audioPacket(pkt *rtp.Packet, pts time.Duration) {
	frames, err := in.adec(pkt)
	if err != nil {
		return
	}
	for i, f := range frames {
		if len(f) == 0 {
			continue
		}
		var samples int
		switch in.audio.Codec {
		case AudioAAC:
			samples = 1024
		case AudioOpus:
			samples = opusSamples(f)
		default:
			samples = len(f) // G.711: one byte per sample, mono
		}
		if samples == 0 {
			continue
		}
		in.w.WriteAudio(AudioFrame{Data: f, Samples: samples, PTS: pts + time.Duration(i*samples)*time.Second/time.Duration(in.audio.SampleRate)})
	}
}

// opusSamples is the length of an Opus packet at 48 kHz, from its TOC byte
// (RFC 6716 §3.1); 0 for a malformed packet.
func opusSamples(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	toc := p[0]
	cfg := toc >> 3
	var frame int // in samples at 48 kHz
	switch {
	case cfg < 12: // SILK: 10, 20, 40, 60 ms
		frame = []int{480, 960, 1920, 2880}[cfg&3]
	case cfg < 16: // hybrid: 10, 20 ms
		frame = []int{480, 960}[cfg&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = []int{120, 240, 480, 960}[cfg&3]
	}
	switch toc & 3 {
	case 0:
		return frame
	case 1, 2:
		return 2 * frame
	default:
		if len(p) < 2 {
			return 0
		}
		return int(p[1]&0x3f) * frame
	}
}

var errNoPackets = errors.New("no RTP packets")
