package ems

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/abema/go-mp4"
)

// hevcCodec builds the RFC 6381 codec string of an H.265 init segment
// from its hvcC box (ISO/IEC 14496-15 annex E.3), e.g.
// "hev1.1.6.L93.B0"; "hev1" alone when the box cannot be read.
func hevcCodec(init []byte) string {
	const entry = "hev1"
	bs, err := mp4.ExtractBoxWithPayload(bytes.NewReader(init), nil, mp4.BoxPath{
		mp4.BoxTypeMoov(), mp4.BoxTypeTrak(), mp4.BoxTypeMdia(), mp4.BoxTypeMinf(),
		mp4.BoxTypeStbl(), mp4.BoxTypeStsd(), mp4.BoxTypeHev1(), mp4.BoxTypeHvcC(),
	})
	if err != nil || len(bs) == 0 {
		return entry
	}
	c, ok := bs[0].Payload.(*mp4.HvcC)
	if !ok {
		return entry
	}
	return HEVCCodecString(c.GeneralProfileSpace, c.GeneralTierFlag, c.GeneralProfileIdc,
		c.GeneralProfileCompatibility, c.GeneralConstraintIndicator, c.GeneralLevelIdc)
}

// HEVCCodecString formats an H.265 profile, tier and level as the codec
// string MSE's isTypeSupported and addSourceBuffer take.
func HEVCCodecString(space uint8, tier bool, idc uint8, compat [32]bool, constraint [6]uint8, level uint8) string {
	var b strings.Builder
	b.WriteString("hev1.")
	if space > 0 && space < 4 {
		b.WriteByte("ABC"[space-1])
	}
	fmt.Fprintf(&b, "%d.", idc)
	// The 32 compatibility flags in reverse bit order, hex, no leading zeros.
	var flags uint32
	for i, f := range compat {
		if f {
			flags |= 1 << i
		}
	}
	fmt.Fprintf(&b, "%X.", flags)
	if tier {
		b.WriteByte('H')
	} else {
		b.WriteByte('L')
	}
	fmt.Fprintf(&b, "%d", level)
	n := len(constraint)
	for n > 0 && constraint[n-1] == 0 {
		n--
	}
	for _, c := range constraint[:n] {
		fmt.Fprintf(&b, ".%X", c)
	}
	return b.String()
}
