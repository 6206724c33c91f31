package relay

import (
	"github.com/ersmesh/ersmesh/node/media/ems"
)

// Limits of a Reader: whatever lengths a relay declares, a player holds at
// most one unit of maxUnit bytes.
const (
	maxRecord = ems.DefaultMaxRecord
	maxUnit   = 16 << 20
)

// Unit is a SIG record and the records it covers, exactly as they came.
type Unit struct {
	Header
	// Raw is the SIG record followed by the covered records: what a relay
	// forwards. Covered is Raw after the SIG record: what the hash is of.
	Raw, Covered []byte
}

// reader states: what the next record must be.
const (
	wantSig = iota
	wantMoov
	wantBegin
	inGroup
)

// Reader cuts a signed stream channel into units, message by message.
// Records may span messages and a message may hold several. It checks the
// framing only (a SIG before every MOOV and BEGIN..END, and what its flags
// say follows); Link checks the units. After an error the Reader is
// unusable: the link is bad.
type Reader struct {
	buf   []byte // the current unit's complete records, then a partial one
	off   int    // bytes of buf that are complete records of the current unit
	state int
	hdr   Header
}

// Feed consumes one data channel message and calls onUnit for each unit it
// completes, in order; an error from onUnit stops Feed and is returned.
// Framing errors are *Problem with code unsigned or malformed.
func (r *Reader) Feed(msg []byte, onUnit func(Unit) error) error {
	r.buf = append(r.buf, msg...)
	for len(r.buf)-r.off >= ems.HeaderSize {
		typ := r.buf[r.off]
		n := int(r.buf[r.off+1])<<16 | int(r.buf[r.off+2])<<8 | int(r.buf[r.off+3])
		if n > maxRecord {
			return problem(ProblemMalformed, "record type %d declares %d bytes, over the %d limit", typ, n, maxRecord)
		}
		if r.off+ems.HeaderSize+n > maxUnit {
			return problem(ProblemMalformed, "a unit of more than %d bytes", maxUnit)
		}
		if len(r.buf)-r.off-ems.HeaderSize < n {
			return nil
		}
		payload := r.buf[r.off+ems.HeaderSize : r.off+ems.HeaderSize+n]
		done := false
		switch r.state {
		case wantSig:
			switch typ {
			case TypeSig:
			case ems.TypeMoov, ems.TypeBegin:
				return problem(ProblemUnsigned, "record type %d without a SIG record before it", typ)
			default:
				return problem(ProblemMalformed, "record type %d where a SIG record belongs", typ)
			}
			h, err := ParseHeader(payload)
			if err != nil {
				return problem(ProblemMalformed, "%v", err)
			}
			r.hdr, r.state = h, wantBegin
			if h.Moov() {
				r.state = wantMoov
			}
		case wantMoov:
			if typ != ems.TypeMoov {
				return problem(ProblemUnsigned, "a SIG record for a MOOV is followed by record type %d", typ)
			}
			done = true
		case wantBegin:
			if typ != ems.TypeBegin {
				return problem(ProblemUnsigned, "a SIG record for a group is followed by record type %d", typ)
			}
			if n != 0 {
				return problem(ProblemMalformed, "BEGIN with %d payload bytes", n)
			}
			r.state = inGroup
		case inGroup:
			switch typ {
			case ems.TypeMoof, ems.TypeMdat, ems.TypeVideo, ems.TypeAudio:
			case ems.TypeEnd:
				if n != 0 {
					return problem(ProblemMalformed, "END with %d payload bytes", n)
				}
				done = true
			default:
				return problem(ProblemMalformed, "record type %d inside a group", typ)
			}
		}
		r.off += ems.HeaderSize + n
		if !done {
			continue
		}
		raw := make([]byte, r.off)
		copy(raw, r.buf[:r.off])
		// Keep only the bytes after the unit, in a fresh slice: a large
		// message's buffer is let go.
		r.buf = append([]byte(nil), r.buf[r.off:]...)
		r.off, r.state = 0, wantSig
		if err := onUnit(Unit{Header: r.hdr, Raw: raw, Covered: raw[SigRecordSize:]}); err != nil {
			return err
		}
	}
	return nil
}
