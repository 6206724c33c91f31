package ems

import (
	"errors"
	"fmt"
)

// Limits of the Parser: a data channel peer must not make it hold more than
// this, whatever lengths it declares.
const (
	DefaultMaxRecord = 8 << 20 // one record's payload
)

// ErrMalformed wraps every framing error the Parser reports.
var ErrMalformed = errors.New("ems: malformed stream")

// Init is a MOOV record, parsed.
type Init struct {
	Mask    byte    // MaskVideo | MaskAudio | MaskH265 | MaskOpus; 0 for the older header-less form
	Profile [3]byte // profile_idc, constraint flags, level_idc
	Segment []byte  // the initialization segment (ftyp, moov)
}

// Codecs is the MSE codec list the EvoStream player builds for this init.
func (in Init) Codecs() string {
	var s string
	if in.Mask&MaskH265 != 0 {
		s = hevcCodec(in.Segment)
	} else if in.Mask == 0 || in.Mask&MaskVideo != 0 {
		s = fmt.Sprintf("avc1.%02x%02x%02x", in.Profile[0], in.Profile[1], in.Profile[2])
	}
	if in.Mask&MaskAudio != 0 {
		if s != "" {
			s += ","
		}
		if in.Mask&MaskOpus != 0 {
			s += "opus"
		} else {
			s += "mp4a.40.2"
		}
	}
	return s
}

// Segment is one BEGIN..END media segment, parsed.
type Segment struct {
	Moof, MdatHeader, Video, Audio []byte
}

// Bytes is what the player appends to its SourceBuffer:
// moof ‖ mdat header ‖ video ‖ audio.
func (s Segment) Bytes() []byte {
	out := make([]byte, 0, len(s.Moof)+len(s.MdatHeader)+len(s.Video)+len(s.Audio))
	out = append(out, s.Moof...)
	out = append(out, s.MdatHeader...)
	out = append(out, s.Video...)
	return append(out, s.Audio...)
}

// Parser reads the records of an emsStreamChannel, message by message.
// Records may span messages and a message may hold several records. It is
// a test client and a tool, not a player: it checks the order the player
// relies on (MOOV before segments, BEGIN ... END), and caps memory.
type Parser struct {
	// MaxRecord caps one record's payload; default DefaultMaxRecord.
	MaxRecord int

	buf      []byte
	inSeg    bool
	seg      Segment
	haveMoov bool
}

// Feed consumes one data channel message and returns the init segments and
// media segments it completed. After an error the Parser is unusable: a
// stream that broke framing cannot be resynchronised.
func (p *Parser) Feed(msg []byte, onInit func(Init), onSegment func(Segment)) error {
	max := p.MaxRecord
	if max <= 0 {
		max = DefaultMaxRecord
	}
	p.buf = append(p.buf, msg...)
	for {
		if len(p.buf) < HeaderSize {
			return nil
		}
		typ := p.buf[0]
		n := int(p.buf[1])<<16 | int(p.buf[2])<<8 | int(p.buf[3])
		if n > max {
			return fmt.Errorf("%w: record type %d declares %d bytes, over the %d limit", ErrMalformed, typ, n, max)
		}
		if typ < TypeBegin {
			return fmt.Errorf("%w: unknown record type %d", ErrMalformed, typ)
		}
		if len(p.buf) < HeaderSize+n {
			return nil
		}
		payload := make([]byte, n) // non-nil even when empty: nil marks a missing record
		copy(payload, p.buf[HeaderSize:HeaderSize+n])
		p.buf = p.buf[HeaderSize+n:]
		if err := p.record(typ, payload, onInit, onSegment); err != nil {
			return err
		}
		if len(p.buf) == 0 {
			p.buf = nil // let a large message's buffer go
		}
	}
}

func (p *Parser) record(typ byte, payload []byte, onInit func(Init), onSegment func(Segment)) error {
	switch typ {
	case TypeMoov:
		if p.inSeg {
			return fmt.Errorf("%w: MOOV inside a segment", ErrMalformed)
		}
		var in Init
		if len(payload) > 0 && payload[0]&0xF0 == 0xF0 {
			if len(payload) < 4 {
				return fmt.Errorf("%w: MOOV of %d bytes has no codec header", ErrMalformed, len(payload))
			}
			in.Mask = payload[0] & 0x0F
			if in.Mask == 0 || in.Mask&MaskH265 != 0 && in.Mask&MaskVideo == 0 || in.Mask&MaskOpus != 0 && in.Mask&MaskAudio == 0 {
				return fmt.Errorf("%w: MOOV track mask %d", ErrMalformed, in.Mask)
			}
			copy(in.Profile[:], payload[1:4])
			payload = payload[4:]
		}
		in.Segment = payload
		p.haveMoov = true
		if onInit != nil {
			onInit(in)
		}
	case TypeBegin, TypeEnd:
		if len(payload) != 0 {
			return fmt.Errorf("%w: record type %d has %d payload bytes, want 0", ErrMalformed, typ, len(payload))
		}
		if typ == TypeBegin {
			if !p.haveMoov {
				return fmt.Errorf("%w: segment before MOOV", ErrMalformed)
			}
			if p.inSeg {
				return fmt.Errorf("%w: BEGIN inside a segment", ErrMalformed)
			}
			p.inSeg, p.seg = true, Segment{}
			return nil
		}
		if !p.inSeg {
			return fmt.Errorf("%w: END outside a segment", ErrMalformed)
		}
		if p.seg.Moof == nil || p.seg.MdatHeader == nil {
			return fmt.Errorf("%w: segment without MOOF or MDAT", ErrMalformed)
		}
		p.inSeg = false
		if onSegment != nil {
			onSegment(p.seg)
		}
	case TypeMoof, TypeMdat, TypeVideo, TypeAudio:
		if !p.inSeg {
			return fmt.Errorf("%w: record type %d outside a segment", ErrMalformed, typ)
		}
		dst := map[byte]*[]byte{TypeMoof: &p.seg.Moof, TypeMdat: &p.seg.MdatHeader, TypeVideo: &p.seg.Video, TypeAudio: &p.seg.Audio}[typ]
		if *dst != nil {
			return fmt.Errorf("%w: record type %d twice in a segment", ErrMalformed, typ)
		}
		if typ == TypeMdat && len(payload) != 8 {
			return fmt.Errorf("%w: MDAT record of %d bytes, want the 8-byte box header", ErrMalformed, len(payload))
		}
		*dst = payload
	}
	return nil
}
