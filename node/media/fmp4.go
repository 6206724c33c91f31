package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/pkg/formats/fmp4/seekablebuffer"

	"github.com/ersmesh/ersmesh/node/media/ems"
)

const (
	videoTrackID = 1
	audioTrackID = 2
)

// fmp4Muxer makes one fragmented-MP4 media segment per video frame, with
// the audio that arrived since the previous frame, in the EMS framing
// (ISO/IEC 14496-12 boxes by mediacommon; ERS-PROTOCOL.md §5 records by
// package ems). One moof holds a video traf and an audio traf whose data
// offsets address the video bytes, then the audio bytes, of one mdat.
type fmp4Muxer struct {
	hasAudio   bool
	sampleRate int
	seq        uint32
	audioTime  uint64 // samples muxed so far: audio stays gapless whatever the jitter
	buf        seekablebuffer.Buffer
}

// newFMP4Muxer returns the muxer and the stream's MOOV record.
// audio is AAC or Opus (nil: video only).
func newFMP4Muxer(codec VideoCodec, vps, sps, pps []byte, audio *AudioFormat) (*fmp4Muxer, []byte, error) {
	var vc fmp4.Codec = &fmp4.CodecH264{SPS: sps, PPS: pps}
	mask := ems.MaskVideo
	var sp265 h265.SPS
	if codec == VideoH265 {
		if err := sp265.Unmarshal(sps); err != nil {
			return nil, nil, fmt.Errorf("parse H.265 SPS: %w", err)
		}
		// mediacommon writes an hev1 sample entry with hvcC: right for a
		// stream that, like ours, repeats VPS/SPS/PPS before each keyframe.
		vc = &fmp4.CodecH265{VPS: vps, SPS: sps, PPS: pps}
		mask |= ems.MaskH265
	} else {
		var sp h264.SPS
		if err := sp.Unmarshal(sps); err != nil {
			return nil, nil, fmt.Errorf("parse SPS: %w", err)
		}
	}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{
		ID: videoTrackID, TimeScale: clockRate,
		Codec: vc,
	}}}
	m := &fmp4Muxer{}
	switch {
	case audio == nil:
	case audio.Codec == AudioAAC && audio.AAC != nil:
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{
			ID: audioTrackID, TimeScale: uint32(audio.SampleRate),
			Codec: &fmp4.CodecMPEG4Audio{Config: *audio.AAC},
		})
		mask |= ems.MaskAudio
		m.hasAudio, m.sampleRate = true, audio.SampleRate
	case audio.Codec == AudioOpus:
		// Opus in ISO BMFF (an "Opus" sample entry with dOps): frames
		// are timed at 48 kHz whatever the input rate (RFC 7845 §4).
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{
			ID: audioTrackID, TimeScale: 48000,
			Codec: &fmp4.CodecOpus{ChannelCount: max(audio.Channels, 1)},
		})
		mask |= ems.MaskAudio | ems.MaskOpus
		m.hasAudio, m.sampleRate = true, 48000
	default:
		return nil, nil, fmt.Errorf("fMP4 cannot carry %v audio", audio.Codec)
	}
	var b seekablebuffer.Buffer
	if err := init.Marshal(&b); err != nil {
		return nil, nil, fmt.Errorf("marshal init segment: %w", err)
	}
	hdr, err := ems.MoovHeader(mask, sps)
	if codec == VideoH265 {
		if err := fixHvcCConstraints(b.Bytes(), sps); err != nil {
			return nil, nil, err
		}
		ptl := sp265.ProfileTierLevel
		hdr, err = ems.MoovHeaderH265(mask, ptl.GeneralProfileSpace<<6|ptl.GeneralTierFlag<<5|ptl.GeneralProfileIdc&0x1f, ptl.GeneralLevelIdc), nil
	}
	if err != nil {
		return nil, nil, err
	}
	moov, err := ems.AppendMoov(nil, hdr, b.Bytes())
	if err != nil {
		return nil, nil, err
	}
	return m, moov, nil
}

// segment muxes one video frame and the pending audio frames.
func (m *fmp4Muxer) segment(nalus [][]byte, key bool, pts, dur time.Duration, audio []AudioFrame) ([]byte, error) {
	avcc, err := h264.AVCC(nalus).Marshal()
	if err != nil {
		return nil, fmt.Errorf("AVCC: %w", err)
	}
	m.seq++
	part := fmp4.Part{SequenceNumber: m.seq, Tracks: []*fmp4.PartTrack{{
		ID:       videoTrackID,
		BaseTime: uint64(ticks(pts, clockRate)),
		Samples: []*fmp4.PartSample{{
			Duration:        uint32(ticks(dur, clockRate)),
			IsNonSyncSample: !key,
			Payload:         avcc,
		}},
	}}}
	if m.hasAudio {
		at := &fmp4.PartTrack{ID: audioTrackID, BaseTime: m.audioTime}
		for _, a := range audio {
			at.Samples = append(at.Samples, &fmp4.PartSample{Duration: uint32(a.Samples), Payload: a.Data})
			m.audioTime += uint64(a.Samples)
		}
		// An audio traf with no samples still tells the player the track
		// goes on; the EMS player expects the same records every time.
		part.Tracks = append(part.Tracks, at)
	}
	m.buf.Reset()
	if err := part.Marshal(&m.buf); err != nil {
		return nil, fmt.Errorf("marshal segment: %w", err)
	}
	seg := m.buf.Bytes()
	if len(seg) < 8 {
		return nil, fmt.Errorf("segment of %d bytes", len(seg))
	}
	moofLen := int(binary.BigEndian.Uint32(seg))
	out := make([]byte, 0, len(seg)+6*ems.HeaderSize)
	return ems.AppendSegment(out, seg, moofLen, len(avcc))
}

// fixHvcCConstraints writes the SPS's general_constraint_indicator_flags
// into the init segment's hvcC. mediacommon v1.14.0 copies the SPS's raw
// bytes 7-12: one byte early (the NAL header takes 2 bytes, the VPS id and
// sub-layer byte 1, profile 1, compatibility flags 4: the constraints are
// bytes 8-13) and blind to emulation prevention bytes (x265's SPS has
// them there: 60 00 00 03 00 90 …), so the codec string a player builds
// from hvcC would be wrong.
func fixHvcCConstraints(init, sps []byte) error {
	raw := h264.EmulationPreventionRemove(sps)
	i := bytes.Index(init, []byte("hvcC"))
	// After the type: configurationVersion, the profile byte and four bytes
	// of compatibility flags, then the six constraint bytes.
	if i < 0 || len(raw) < 15 || i+4+12 > len(init) {
		return fmt.Errorf("init segment without a complete hvcC box")
	}
	copy(init[i+4+6:i+4+12], raw[8:14])
	return nil
}
