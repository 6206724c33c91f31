package media

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/pkg/codecs/h265"
)

// Limits of the Annex-B reader. A camera's frame is well below these; they
// stop a garbage or hostile input from growing memory without bound.
const (
	MaxNALUSize   = 4 << 20
	MaxNALUsPerAU = 64
)

// ErrNotAnnexB is returned when an input does not start like an H.264
// Annex-B elementary stream.
var ErrNotAnnexB = errors.New("not an H.264 Annex-B stream")

// AccessUnit is one coded picture: its NAL units, without start codes.
type AccessUnit struct {
	NALUs [][]byte
	IDR   bool
	// Codec is the video codec of the NAL units; the zero value is H.264.
	Codec VideoCodec
}

// AnnexB returns the access unit in Annex-B form (4-byte start codes), the
// form pion's H.264 packetizer takes.
func (au AccessUnit) AnnexB() []byte {
	n := 0
	for _, nalu := range au.NALUs {
		n += 4 + len(nalu)
	}
	out := make([]byte, 0, n)
	for _, nalu := range au.NALUs {
		out = append(out, 0, 0, 0, 1)
		out = append(out, nalu...)
	}
	return out
}

// AUReader splits an H.264 Annex-B byte stream (a file, a pipe from a
// camera's encoder) into access units. It works on streams of any length:
// nothing but the current NAL unit is buffered.
type AUReader struct {
	r       *bufio.Reader
	started bool
	pending []byte // the next access unit's first NAL unit, already read
	eof     bool
	codec   VideoCodec // decided by the first NAL unit (see detectCodec)
	decided bool
}

// NewAUReader reads Annex-B from r.
func NewAUReader(r io.Reader) *AUReader {
	return &AUReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// readNALU returns the next NAL unit without its start code.
func (a *AUReader) readNALU() ([]byte, error) {
	if !a.started {
		// Skip to the first start code; anything before it is not video.
		zeros := 0
		for read := 0; ; read++ {
			b, err := a.r.ReadByte()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return nil, fmt.Errorf("%w: no start code found", ErrNotAnnexB)
				}
				return nil, err
			}
			if read > 4096 {
				return nil, fmt.Errorf("%w: no start code in the first 4 KiB", ErrNotAnnexB)
			}
			if b == 0 {
				zeros++
				continue
			}
			if b == 1 && zeros >= 2 {
				break
			}
			return nil, fmt.Errorf("%w: data before the first start code", ErrNotAnnexB)
		}
		a.started = true
	}
	if a.eof {
		return nil, io.EOF
	}
	var nalu []byte
	zeros := 0
	for {
		b, err := a.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				a.eof = true
				nalu = trimZeros(nalu, zeros)
				if len(nalu) == 0 {
					return nil, io.EOF
				}
				return nalu, nil
			}
			return nil, err
		}
		if b == 1 && zeros >= 2 {
			// A start code ends this NAL unit; its zeros are not part of it.
			return trimZeros(nalu, zeros), nil
		}
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
		if len(nalu) >= MaxNALUSize {
			return nil, fmt.Errorf("NAL unit larger than %d bytes", MaxNALUSize)
		}
		nalu = append(nalu, b)
	}
}

func trimZeros(nalu []byte, zeros int) []byte {
	if zeros > len(nalu) {
		zeros = len(nalu)
	}
	return nalu[:len(nalu)-zeros]
}

// startsAU reports whether nalu begins a new access unit when the current
// one already holds a picture (H.264 §7.4.1.2.3).
// detectCodec tells H.265 from H.264 by a stream's first NAL unit. An
// H.265 elementary stream starts with a VPS, SPS, PPS, AUD or prefix SEI,
// whose two-byte headers (type<<1, then layer 0 and TemporalId 1) read
// 0x40 0x01, 0x42 0x01, 0x44 0x01, 0x46 0x01 or 0x4e 0x01. As H.264 NAL
// headers those first bytes are types 0 (unspecified), 2 (data partition
// A), 4 (partition C) or 6 and 14 with nal_ref_idc 2 (an SEI is never a
// reference; 14 is an MVC prefix), none of which starts an H.264 stream.
func detectCodec(nalu []byte) VideoCodec {
	if len(nalu) >= 2 && nalu[1] == 0x01 {
		switch nalu[0] {
		case 0x40, 0x42, 0x44, 0x46, 0x4e:
			return VideoH265
		}
	}
	return VideoH264
}

// h265Type is an H.265 NAL unit's type (RFC 7798 section 1.1.4).
func h265Type(nalu []byte) h265.NALUType { return h265.NALUType((nalu[0] >> 1) & 0x3f) }

// startsAU265 follows H.265 section 7.4.2.4.4: parameter sets, an AUD, a
// prefix SEI or a slice with first_slice_segment_in_pic_flag begin an
// access unit.
func startsAU265(nalu []byte) bool {
	switch t := h265Type(nalu); {
	case t == h265.NALUType_VPS_NUT, t == h265.NALUType_SPS_NUT, t == h265.NALUType_PPS_NUT,
		t == h265.NALUType_AUD_NUT, t == h265.NALUType_PREFIX_SEI_NUT, t >= 41 && t <= 44, t >= 48 && t <= 55:
		return true
	case t <= h265.NALUType_RSV_IRAP_VCL23:
		return len(nalu) > 2 && nalu[2]&0x80 != 0
	}
	return false
}

// isIRAP265 reports a random access picture (BLA, IDR, CRA): a viewer can
// start decoding there.
func isIRAP265(nalu []byte) bool {
	t := h265Type(nalu)
	return t >= h265.NALUType_BLA_W_LP && t <= h265.NALUType_CRA_NUT
}

func startsAU(nalu []byte) bool {
	switch h264.NALUType(nalu[0] & 0x1f) {
	case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeSEI:
		return true
	case h264.NALUTypeNonIDR, h264.NALUTypeIDR:
		// first_mb_in_slice is the first ue(v) of the slice header; it is 0,
		// coded as a single 1 bit, exactly when a new picture starts.
		return len(nalu) > 1 && nalu[1]&0x80 != 0
	}
	return false
}

func isVCL(nalu []byte) bool {
	t := h264.NALUType(nalu[0] & 0x1f)
	return t >= h264.NALUTypeNonIDR && t <= h264.NALUTypeIDR
}

// ReadAU returns the next access unit, or io.EOF at the end of the stream.
func (a *AUReader) ReadAU() (AccessUnit, error) {
	au := AccessUnit{Codec: a.codec}
	hasPicture := false
	add := func(nalu []byte) error {
		if len(au.NALUs) >= MaxNALUsPerAU {
			return fmt.Errorf("access unit with more than %d NAL units", MaxNALUsPerAU)
		}
		au.NALUs = append(au.NALUs, nalu)
		if a.codec == VideoH265 {
			if h265Type(nalu) <= h265.NALUType_RSV_IRAP_VCL23 {
				hasPicture = true
			}
			if isIRAP265(nalu) {
				au.IDR = true
			}
			return nil
		}
		if isVCL(nalu) {
			hasPicture = true
		}
		if h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeIDR {
			au.IDR = true
		}
		return nil
	}
	if a.pending != nil {
		if err := add(a.pending); err != nil {
			return AccessUnit{}, err
		}
		a.pending = nil
	}
	for {
		nalu, err := a.readNALU()
		if errors.Is(err, io.EOF) {
			if hasPicture {
				return au, nil
			}
			return AccessUnit{}, io.EOF
		}
		if err != nil {
			return AccessUnit{}, err
		}
		if len(nalu) == 0 {
			continue
		}
		if nalu[0]&0x80 != 0 {
			return AccessUnit{}, fmt.Errorf("%w: NAL unit with forbidden_zero_bit set", ErrNotAnnexB)
		}
		if !a.decided {
			a.codec, a.decided = detectCodec(nalu), true
			au.Codec = a.codec
		}
		if a.codec == VideoH265 && len(nalu) < 2 {
			return AccessUnit{}, fmt.Errorf("%w: H.265 NAL unit of %d byte", ErrNotAnnexB, len(nalu))
		}
		starts := startsAU(nalu)
		if a.codec == VideoH265 {
			starts = startsAU265(nalu)
		}
		if hasPicture && starts {
			a.pending = nalu
			return au, nil
		}
		if err := add(nalu); err != nil {
			return AccessUnit{}, err
		}
	}
}
