package media

import (
	"bytes"
	"errors"
	"testing"
)

func TestSampleClip(t *testing.T) {
	aus, err := SampleClip()
	if err != nil {
		t.Fatal(err)
	}
	if len(aus) != 120 {
		t.Fatalf("sample clip has %d access units, want 120 (4 s at 30 fps)", len(aus))
	}
	for i, au := range aus {
		if want := i%30 == 0; au.IDR != want {
			t.Errorf("access unit %d: IDR=%v, want %v (a keyframe every second)", i, au.IDR, want)
		}
	}
}

func TestAUReaderRoundTrip(t *testing.T) {
	aus, err := SampleClip()
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	for _, au := range aus[:40] {
		stream.Write(au.AnnexB())
	}
	// 3-byte start codes must be accepted too.
	again, err := ReadAll(bytes.NewReader(bytes.ReplaceAll(stream.Bytes(), []byte{0, 0, 0, 1}, []byte{0, 0, 1})))
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 40 {
		t.Fatalf("got %d access units back, want 40", len(again))
	}
	for i := range again {
		if !bytes.Equal(again[i].AnnexB(), aus[i].AnnexB()) {
			t.Fatalf("access unit %d differs after a round trip", i)
		}
	}
}

func TestAUReaderRejectsGarbage(t *testing.T) {
	for name, in := range map[string][]byte{
		"text":          []byte("this is not video at all"),
		"empty":         nil,
		"forbidden bit": {0, 0, 0, 1, 0xe5, 0x88},
	} {
		_, err := ReadAll(bytes.NewReader(in))
		if !errors.Is(err, ErrNotAnnexB) {
			t.Errorf("%s: err = %v, want ErrNotAnnexB", name, err)
		}
	}
}

func FuzzAUReader(f *testing.F) {
	aus, err := SampleClip()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(aus[0].AnnexB())
	f.Add(append(aus[1].AnnexB(), aus[2].AnnexB()...))
	f.Add([]byte{0, 0, 1, 9, 0xf0, 0, 0, 1, 0x65, 0x88, 0, 0, 0})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ReadAll(bytes.NewReader(in))
		if err != nil {
			return
		}
		total := 0
		for _, au := range got {
			if len(au.NALUs) == 0 || len(au.NALUs) > MaxNALUsPerAU {
				t.Fatalf("access unit with %d NAL units", len(au.NALUs))
			}
			for _, n := range au.NALUs {
				if len(n) == 0 {
					t.Fatal("empty NAL unit returned")
				}
				total += len(n)
			}
		}
		if total > len(in) {
			t.Fatalf("returned %d NAL bytes from %d input bytes", total, len(in))
		}
	})
}
