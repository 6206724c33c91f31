package media

import (
	"time"

	"github.com/bluenviron/mediacommon/pkg/codecs/mpeg4audio"
)

// VideoFrame is one H.264 or H.265 access unit (AU.Codec) on the source's clock.
type VideoFrame struct {
	AU AccessUnit
	// PTS counts from the source's start and never goes back; sources that
	// loop keep counting.
	PTS time.Duration
	// Duration is the frame's display time when the source knows it (a
	// file's frame rate); 0 lets the stream estimate it.
	Duration time.Duration
}

// AudioFrame is one coded audio frame (an AAC access unit, an Opus packet,
// a run of G.711 samples) on the source's clock.
type AudioFrame struct {
	Data []byte
	PTS  time.Duration
	// Samples is the frame's length in samples (1024 for AAC-LC).
	Samples int
}

// AudioCodec names the codec of a stream's audio.
type AudioCodec int

// Audio codecs a source may deliver.
const (
	AudioNone AudioCodec = iota
	AudioAAC             // MPEG-4 AAC: fmp4 only, WebRTC tracks cannot carry it
	AudioOpus            // RFC 7587
	AudioPCMU            // G.711 µ-law, RFC 3551
	AudioPCMA            // G.711 A-law, RFC 3551
)

func (c AudioCodec) String() string {
	switch c {
	case AudioNone:
		return "none"
	case AudioAAC:
		return "AAC"
	case AudioOpus:
		return "Opus"
	case AudioPCMU:
		return "PCMU"
	case AudioPCMA:
		return "PCMA"
	}
	return "unknown"
}

// AudioFormat describes a stream's audio track.
type AudioFormat struct {
	Codec      AudioCodec
	SampleRate int
	Channels   int
	AAC        *mpeg4audio.AudioSpecificConfig // for AudioAAC
}

// VideoCodec names the codec of a stream's video.
type VideoCodec int

// Video codecs a source may deliver. Both pass through as they come: the
// device never transcodes.
const (
	VideoH264 VideoCodec = iota
	VideoH265            // HEVC: fmp4 as hev1 with hvcC, srtp as RFC 7798
)

func (c VideoCodec) String() string {
	switch c {
	case VideoH264:
		return "H.264"
	case VideoH265:
		return "H.265"
	}
	return "unknown"
}
