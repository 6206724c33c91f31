package ems

import (
	"errors"
	"fmt"
)

// Record types, ERS-PROTOCOL.md §5.
const (
	TypeBegin byte = 249 // start of a media segment, empty
	TypeMoov  byte = 250 // codec header, then the initialization segment
	TypeMoof  byte = 251 // the segment's moof box
	TypeVideo byte = 252 // the video sample bytes of the segment's mdat
	TypeAudio byte = 253 // the audio sample bytes of the segment's mdat
	TypeMdat  byte = 254 // the 8-byte mdat box header
	TypeEnd   byte = 255 // end of a media segment, empty
)

// HeaderSize is the size of a record header: type and 24-bit length.
const HeaderSize = 4

// MaxPayload is the largest payload a 24-bit length can describe.
const MaxPayload = 1<<24 - 1

// Track masks of the MOOV codec byte (its low nibble; the high nibble is 0xF).
const (
	MaskVideo byte = 1
	MaskAudio byte = 2
	// MaskH265 is ersmesh's extension (EMS defines only AVC): the video
	// track is H.265, header bytes 1-2 are the SPS's
	// general_profile_space<<6|general_tier_flag<<5|general_profile_idc
	// and general_level_idc, byte 3 is 0, and the full codec string
	// (hev1.…) is read from the init segment's hvcC. An H.264 stream's
	// MOOV never sets it, so it stays byte-identical to EMS's.
	MaskH265 byte = 4
	// MaskOpus is ersmesh's extension too: with MaskAudio, the audio
	// track is Opus (an "Opus" sample entry with a dOps box, codec string
	// "opus") instead of AAC. An AAC stream's MOOV never sets it.
	MaskOpus byte = 8
)

// ErrTooLarge is returned for a payload a record cannot carry.
var ErrTooLarge = errors.New("ems: record payload larger than 16 MiB")

// AppendRecord appends one record to dst.
func AppendRecord(dst []byte, typ byte, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return dst, fmt.Errorf("%w (type %d, %d bytes)", ErrTooLarge, typ, len(payload))
	}
	n := len(payload)
	dst = append(dst, typ, byte(n>>16), byte(n>>8), byte(n))
	return append(dst, payload...), nil
}

// MoovHeader is the 4-byte prefix of a MOOV payload: 0xF0|mask, then the
// AVC profile_idc, constraint flags and level_idc (bytes 1-3 of the SPS),
// from which the player builds its codec string avc1.PPCCLL.
func MoovHeader(mask byte, sps []byte) ([4]byte, error) {
	if len(sps) < 4 {
		return [4]byte{}, errors.New("ems: SPS too short for a codec header")
	}
	return [4]byte{0xF0 | mask&0x0F, sps[1], sps[2], sps[3]}, nil
}

// AppendMoov appends the MOOV record: header, then the initialization
// segment (ftyp and moov boxes).
// MoovHeaderH265 is the MOOV prefix of an H.265 stream (see MaskH265):
// profile is general_profile_space<<6|general_tier_flag<<5|
// general_profile_idc, level is general_level_idc.
func MoovHeaderH265(mask, profile, level byte) [4]byte {
	return [4]byte{0xF0 | (mask|MaskVideo|MaskH265)&0x0F, profile, level, 0}
}

func AppendMoov(dst []byte, header [4]byte, initSegment []byte) ([]byte, error) {
	if len(initSegment)+4 > MaxPayload {
		return dst, fmt.Errorf("%w (init segment, %d bytes)", ErrTooLarge, len(initSegment))
	}
	n := len(initSegment) + 4
	dst = append(dst, TypeMoov, byte(n>>16), byte(n>>8), byte(n))
	dst = append(dst, header[:]...)
	return append(dst, initSegment...), nil
}

// AppendSegment appends one media segment as BEGIN, MOOF, MDAT, VIDEO,
// AUDIO, END. segment is a moof box followed by an mdat box whose data is
// the video bytes (videoLen of them) then the audio bytes; moofLen is the
// moof box's size.
func AppendSegment(dst []byte, segment []byte, moofLen, videoLen int) ([]byte, error) {
	const mdatHeader = 8
	if moofLen < 8 || moofLen+mdatHeader > len(segment) || videoLen < 0 || moofLen+mdatHeader+videoLen > len(segment) {
		return dst, fmt.Errorf("ems: segment of %d bytes cannot hold a %d-byte moof, an mdat header and %d video bytes", len(segment), moofLen, videoLen)
	}
	moof := segment[:moofLen]
	mdat := segment[moofLen : moofLen+mdatHeader]
	video := segment[moofLen+mdatHeader : moofLen+mdatHeader+videoLen]
	audio := segment[moofLen+mdatHeader+videoLen:]
	var err error
	dst = append(dst, TypeBegin, 0, 0, 0)
	for _, r := range []struct {
		t byte
		p []byte
	}{{TypeMoof, moof}, {TypeMdat, mdat}, {TypeVideo, video}, {TypeAudio, audio}} {
		if dst, err = AppendRecord(dst, r.t, r.p); err != nil {
			return dst, err
		}
	}
	return append(dst, TypeEnd, 0, 0, 0), nil
}
