package media

import (
	"bytes"
	"fmt"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/pkg/codecs/mpeg4audio"
)

// OpenMP4 reads an MP4 file (ISO/IEC 14496-12, 14496-15) with go-mp4: its
// first H.264 track and first AAC track, looped. The file is held in
// memory (MaxFileSize). Files with B-frames are refused: viewers would see
// frames out of order, and WebRTC decoders expect none.
func OpenMP4(path string) (Source, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrBadSource, path, fmt.Sprintf(format, a...))
	}
	r := bytes.NewReader(b)
	info, err := mp4.Probe(r)
	if err != nil {
		return nil, bad("not an MP4 file: %v", err)
	}
	var video, audio *mp4.Track
	for _, t := range info.Tracks {
		switch {
		case t.Codec == mp4.CodecAVC1 && video == nil && !t.Encrypted:
			video = t
		case t.Codec == mp4.CodecMP4A && audio == nil && !t.Encrypted:
			audio = t
		}
	}
	var hevc *mp4HEVC
	if video == nil {
		if hevc, err = mp4HEVCTrack(r); err != nil {
			return nil, bad("%v", err)
		}
		for _, t := range info.Tracks {
			if hevc != nil && t.TrackID == hevc.trackID && !t.Encrypted {
				video = t
			}
		}
	}
	if video == nil || len(video.Samples) == 0 || video.Timescale == 0 {
		return nil, bad("no H.264 or H.265 video track")
	}
	for _, s := range video.Samples {
		if s.CompositionTimeOffset != 0 {
			return nil, bad("the video has B-frames; re-encode without them (ffmpeg -bf 0)")
		}
	}
	var sps, pps []byte
	if hevc == nil {
		if sps, pps, err = mp4AVCParams(r); err != nil {
			return nil, bad("%v", err)
		}
	}
	samples, err := mp4Samples(b, video)
	if err != nil {
		return nil, bad("video: %v", err)
	}
	var aus []AccessUnit
	for i, s := range samples {
		nalus, err := h264.AVCCUnmarshal(s)
		if err != nil {
			return nil, bad("video sample %d: %v", i, err)
		}
		if len(nalus) > MaxNALUsPerAU {
			return nil, bad("video sample %d has %d NAL units", i, len(nalus))
		}
		if hevc != nil {
			idr := false
			for _, n := range nalus {
				if len(n) < 2 {
					return nil, bad("video sample %d has an H.265 NAL unit of %d byte", i, len(n))
				}
				idr = idr || isIRAP265(n)
			}
			if idr {
				nalus = withParams265(nalus, hevc.vps, hevc.sps, hevc.pps)
			}
			aus = append(aus, AccessUnit{NALUs: nalus, IDR: idr, Codec: VideoH265})
			continue
		}
		idr := h264.IDRPresent(nalus)
		if idr {
			nalus = withParams(nalus, sps, pps)
		}
		aus = append(aus, AccessUnit{NALUs: nalus, IDR: idr})
	}
	for len(aus) > 0 && !aus[0].IDR {
		aus = aus[1:]
	}
	if len(aus) == 0 {
		return nil, bad("no keyframe")
	}
	var total uint64
	for _, s := range video.Samples {
		total += uint64(s.TimeDelta)
	}
	frame := time.Duration(total * uint64(time.Second) / uint64(video.Timescale) / uint64(len(video.Samples)))
	if frame <= 0 {
		frame = time.Second / 30
	}
	src := &LoopSource{Name: path, Video: aus, FrameDuration: frame}
	if audio != nil {
		cfg, err := mp4AACConfig(r)
		if err != nil {
			return nil, bad("audio: %v", err)
		}
		frames, err := mp4Samples(b, audio)
		if err != nil {
			return nil, bad("audio: %v", err)
		}
		for _, f := range frames {
			src.Audio = append(src.Audio, AudioFrame{Data: f, Samples: 1024})
		}
		src.AudioFormat = &AudioFormat{Codec: AudioAAC, SampleRate: cfg.SampleRate, Channels: cfg.ChannelCount, AAC: cfg}
	}
	return src, nil
}

// mp4Samples slices a track's samples out of the file, chunk by chunk.
func mp4Samples(file []byte, t *mp4.Track) ([][]byte, error) {
	out := make([][]byte, 0, len(t.Samples))
	i := 0
	for _, c := range t.Chunks {
		off := c.DataOffset
		for range c.SamplesPerChunk {
			if i >= len(t.Samples) {
				return nil, fmt.Errorf("chunks list more samples than the track has")
			}
			n := uint64(t.Samples[i].Size)
			if off+n > uint64(len(file)) || off+n < off {
				return nil, fmt.Errorf("sample %d lies outside the file", i)
			}
			out = append(out, file[off:off+n])
			off += n
			i++
		}
	}
	if i != len(t.Samples) {
		return nil, fmt.Errorf("chunks hold %d of %d samples", i, len(t.Samples))
	}
	return out, nil
}

var stsdPath = mp4.BoxPath{mp4.BoxTypeMoov(), mp4.BoxTypeTrak(), mp4.BoxTypeMdia(), mp4.BoxTypeMinf(), mp4.BoxTypeStbl(), mp4.BoxTypeStsd()}

func mp4AVCParams(r *bytes.Reader) (sps, pps []byte, err error) {
	boxes, err := mp4.ExtractBoxWithPayload(r, nil, append(append(mp4.BoxPath{}, stsdPath...), mp4.BoxTypeAvc1(), mp4.BoxTypeAvcC()))
	if err != nil || len(boxes) == 0 {
		return nil, nil, fmt.Errorf("no avcC box (H.264 parameters): %v", err)
	}
	c, ok := boxes[0].Payload.(*mp4.AVCDecoderConfiguration)
	if !ok || len(c.SequenceParameterSets) == 0 || len(c.PictureParameterSets) == 0 {
		return nil, nil, fmt.Errorf("avcC without SPS and PPS")
	}
	return c.SequenceParameterSets[0].NALUnit, c.PictureParameterSets[0].NALUnit, nil
}

func mp4AACConfig(r *bytes.Reader) (*mpeg4audio.AudioSpecificConfig, error) {
	boxes, err := mp4.ExtractBoxWithPayload(r, nil, append(append(mp4.BoxPath{}, stsdPath...), mp4.BoxTypeMp4a(), mp4.BoxTypeEsds()))
	if err != nil || len(boxes) == 0 {
		return nil, fmt.Errorf("no esds box (AAC parameters): %v", err)
	}
	esds, ok := boxes[0].Payload.(*mp4.Esds)
	if !ok {
		return nil, fmt.Errorf("unreadable esds box")
	}
	for _, d := range esds.Descriptors {
		if d.Tag == mp4.DecSpecificInfoTag {
			var cfg mpeg4audio.AudioSpecificConfig
			if err := cfg.Unmarshal(d.Data); err != nil {
				return nil, fmt.Errorf("AudioSpecificConfig: %w", err)
			}
			if cfg.Type != mpeg4audio.ObjectTypeAACLC {
				return nil, fmt.Errorf("AAC object type %d; browsers' MSE path here takes AAC-LC", cfg.Type)
			}
			return &cfg, nil
		}
	}
	return nil, fmt.Errorf("esds without an AudioSpecificConfig")
}

// mp4HEVC is an MP4's H.265 track: its id and its hvcC parameter sets.
type mp4HEVC struct {
	trackID       uint32
	vps, sps, pps []byte
}

// mp4HEVCTrack finds the first track whose sample entry is hvc1 or hev1
// (go-mp4's Probe names only AVC and AAC); nil when there is none.
func mp4HEVCTrack(r *bytes.Reader) (*mp4HEVC, error) {
	traks, err := mp4.ExtractBox(r, nil, mp4.BoxPath{mp4.BoxTypeMoov(), mp4.BoxTypeTrak()})
	if err != nil {
		return nil, fmt.Errorf("reading tracks: %w", err)
	}
	stsd := mp4.BoxPath{mp4.BoxTypeMdia(), mp4.BoxTypeMinf(), mp4.BoxTypeStbl(), mp4.BoxTypeStsd()}
	for _, tr := range traks {
		var boxes []*mp4.BoxInfoWithPayload
		for _, entry := range []mp4.BoxType{mp4.BoxTypeHvc1(), mp4.BoxTypeHev1()} {
			b, err := mp4.ExtractBoxWithPayload(r, tr, append(append(mp4.BoxPath{}, stsd...), entry, mp4.BoxTypeHvcC()))
			if err != nil {
				return nil, fmt.Errorf("reading hvcC: %w", err)
			}
			boxes = append(boxes, b...)
		}
		if len(boxes) == 0 {
			continue
		}
		c, ok := boxes[0].Payload.(*mp4.HvcC)
		if !ok {
			return nil, fmt.Errorf("unreadable hvcC box")
		}
		h := &mp4HEVC{}
		for _, a := range c.NaluArrays {
			if len(a.Nalus) == 0 {
				continue
			}
			switch h265.NALUType(a.NaluType) {
			case h265.NALUType_VPS_NUT:
				h.vps = a.Nalus[0].NALUnit
			case h265.NALUType_SPS_NUT:
				h.sps = a.Nalus[0].NALUnit
			case h265.NALUType_PPS_NUT:
				h.pps = a.Nalus[0].NALUnit
			}
		}
		tk, err := mp4.ExtractBoxWithPayload(r, tr, mp4.BoxPath{mp4.BoxTypeTkhd()})
		if err != nil || len(tk) == 0 {
			return nil, fmt.Errorf("H.265 track without tkhd: %v", err)
		}
		th, ok := tk[0].Payload.(*mp4.Tkhd)
		if !ok {
			return nil, fmt.Errorf("unreadable tkhd box")
		}
		h.trackID = th.TrackID
		return h, nil
	}
	return nil, nil
}
