package ems

import (
	"bytes"
	"errors"
	"testing"
)

// segmentBytes builds a fake moof+mdat: only the sizes matter to the framing.
func segmentBytes(video, audio []byte) (seg []byte, moofLen int) {
	moof := []byte{0, 0, 0, 16, 'm', 'o', 'o', 'f', 1, 2, 3, 4, 5, 6, 7, 8}
	n := 8 + len(video) + len(audio)
	mdat := []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 'm', 'd', 'a', 't'}
	seg = append(append(append(append([]byte{}, moof...), mdat...), video...), audio...)
	return seg, len(moof)
}

func stream(t testing.TB) []byte {
	hdr, err := MoovHeader(MaskVideo|MaskAudio, []byte{0x67, 0x42, 0xc0, 0x1f})
	if err != nil {
		t.Fatal(err)
	}
	b, err := AppendMoov(nil, hdr, []byte("ftyp....moov...."))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		seg, moofLen := segmentBytes(bytes.Repeat([]byte{byte(i)}, 1000*(i+1)), []byte{0xa, 0xb})
		if b, err = AppendSegment(b, seg, moofLen, 1000*(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestRoundTripAnySplit(t *testing.T) {
	b := stream(t)
	for _, chunk := range []int{1, 3, 4, 7, 100, len(b)} {
		var p Parser
		var inits []Init
		var segs []Segment
		for off := 0; off < len(b); off += chunk {
			end := min(off+chunk, len(b))
			if err := p.Feed(b[off:end], func(in Init) { inits = append(inits, in) }, func(s Segment) { segs = append(segs, s) }); err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
		}
		if len(inits) != 1 || inits[0].Codecs() != "avc1.42c01f,mp4a.40.2" || string(inits[0].Segment) != "ftyp....moov...." {
			t.Fatalf("chunk %d: inits %+v", chunk, inits)
		}
		if len(segs) != 3 {
			t.Fatalf("chunk %d: %d segments, want 3", chunk, len(segs))
		}
		for i, s := range segs {
			want, _ := segmentBytes(bytes.Repeat([]byte{byte(i)}, 1000*(i+1)), []byte{0xa, 0xb})
			if !bytes.Equal(s.Bytes(), want) {
				t.Fatalf("chunk %d: segment %d differs", chunk, i)
			}
			if len(s.Video) != 1000*(i+1) || len(s.Audio) != 2 {
				t.Fatalf("chunk %d: segment %d has %d video and %d audio bytes", chunk, i, len(s.Video), len(s.Audio))
			}
		}
	}
}

func TestParserRejects(t *testing.T) {
	moov, _ := AppendMoov(nil, [4]byte{0xF1, 0x42, 0, 0x1f}, []byte("init"))
	for name, in := range map[string][]byte{
		"unknown type":     {7, 0, 0, 0},
		"segment first":    {TypeBegin, 0, 0, 0},
		"begin with data":  append(append([]byte{}, moov...), TypeBegin, 0, 0, 1, 9),
		"end outside":      append(append([]byte{}, moov...), TypeEnd, 0, 0, 0),
		"moof outside":     append(append([]byte{}, moov...), TypeMoof, 0, 0, 1, 9),
		"short mdat":       append(append([]byte{}, moov...), TypeBegin, 0, 0, 0, TypeMdat, 0, 0, 2, 1, 2),
		"huge":             {TypeVideo, 0xff, 0xff, 0xff},
		"bad mask":         {TypeMoov, 0, 0, 4, 0xF4, 1, 2, 3},
		"end without moof": append(append([]byte{}, moov...), TypeBegin, 0, 0, 0, TypeEnd, 0, 0, 0),
	} {
		var p Parser
		if err := p.Feed(in, nil, nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestAppendRecordLimit(t *testing.T) {
	if _, err := AppendRecord(nil, TypeVideo, make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func FuzzParser(f *testing.F) {
	b := stream(f)
	f.Add(b, 5)
	f.Add(b[:40], 1)
	f.Add([]byte{TypeMoov, 0, 0, 0}, 2)
	h265 := append([]byte{TypeMoov, 0, 0, 28, 0xF5, 1, 30, 0, 0, 0, 0, 24}, "moovhvcC\x01\x01\x60\x00\x00\x00\x90\x00\x00\x00\x00\x00\x1e"...)
	f.Add(h265, 3)
	f.Fuzz(func(t *testing.T, in []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		p := Parser{MaxRecord: 1 << 16}
		total := 0
		onSeg := func(s Segment) { total += len(s.Bytes()) }
		// Codecs reads an H.265 init segment's hvcC (mask bit 4): from any
		// bytes it returns a string, never panics.
		onInit := func(in Init) { total += len(in.Segment); _ = in.Codecs() }
		for off := 0; off < len(in); off += chunk {
			if err := p.Feed(in[off:min(off+chunk, len(in))], onInit, onSeg); err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error not wrapping ErrMalformed: %v", err)
				}
				return
			}
		}
		if total > len(in) {
			t.Fatalf("parsed %d payload bytes out of %d input bytes", total, len(in))
		}
		if len(p.buf) > 1<<16+HeaderSize+chunk {
			t.Fatalf("parser holds %d bytes", len(p.buf))
		}
	})
}

// TestH265MoovHeader: ersmesh's H.265 extension of the MOOV header (mask
// bit 4) is parsed, needs the video bit, and leaves H.264's header as EMS
// has it.
func TestH265MoovHeader(t *testing.T) {
	hdr := MoovHeaderH265(MaskAudio, 0x01, 30)
	if hdr != [4]byte{0xF7, 0x01, 30, 0} {
		t.Fatalf("H.265 MOOV header % x", hdr)
	}
	if h, _ := MoovHeader(MaskVideo, []byte{0x67, 0x42, 0xc0, 0x1f}); h != [4]byte{0xF1, 0x42, 0xc0, 0x1f} {
		t.Fatalf("H.264 MOOV header % x changed", h)
	}
	for _, tc := range []struct {
		first byte
		ok    bool
	}{{0xF5, true}, {0xF7, true}, {0xF4, false}, {0xF6, false}, {0xF8, false}} {
		b, err := AppendMoov(nil, [4]byte{tc.first, 1, 30, 0}, []byte("not an init segment"))
		if err != nil {
			t.Fatal(err)
		}
		var p Parser
		var in Init
		err = p.Feed(b, func(i Init) { in = i }, nil)
		if (err == nil) != tc.ok {
			t.Errorf("MOOV % x: err = %v, want ok=%v", tc.first, err, tc.ok)
			continue
		}
		// Without an hvcC the codec string is the bare sample entry.
		if tc.ok && in.Codecs() != map[bool]string{false: "hev1", true: "hev1,mp4a.40.2"}[tc.first == 0xF7] {
			t.Errorf("MOOV % x: codecs %q", tc.first, in.Codecs())
		}
	}
}

// TestOpusMoovHeader: the Opus bit (ersmesh's extension) names the audio
// "opus", needs the audio bit, and leaves AAC's header as it was.
func TestOpusMoovHeader(t *testing.T) {
	for _, tc := range []struct {
		first  byte
		codecs string // "" when malformed
	}{
		{0xFB, "avc1.42c01f,opus"},
		{0xF3, "avc1.42c01f,mp4a.40.2"},
		{0xFF, "hev1,opus"},
		{0xF9, ""}, // Opus without audio
		{0xFA, "opus"},
	} {
		b, err := AppendMoov(nil, [4]byte{tc.first, 0x42, 0xc0, 0x1f}, []byte("not an init segment"))
		if err != nil {
			t.Fatal(err)
		}
		var p Parser
		var in Init
		err = p.Feed(b, func(i Init) { in = i }, nil)
		if (err == nil) != (tc.codecs != "") {
			t.Errorf("MOOV % x: err = %v", tc.first, err)
			continue
		}
		if err == nil && in.Codecs() != tc.codecs {
			t.Errorf("MOOV % x: codecs %q, want %q", tc.first, in.Codecs(), tc.codecs)
		}
	}
}
