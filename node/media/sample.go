package media

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// sampleClip is ffmpeg's testsrc2 pattern, 4 s of 640x360 at 30 fps,
// Constrained Baseline; scripts/make-sample.sh regenerates it.
//
//go:embed sample/sample.h264
var sampleClip []byte

// SampleFrameDuration is the frame interval of the built-in clip.
const SampleFrameDuration = time.Second / 30

var (
	sampleOnce sync.Once
	sampleAUs  []AccessUnit
	sampleErr  error
)

// SampleClip returns the built-in clip's access units, parsed once.
func SampleClip() ([]AccessUnit, error) {
	sampleOnce.Do(func() {
		sampleAUs, sampleErr = ReadAll(bytes.NewReader(sampleClip))
		if sampleErr == nil && (len(sampleAUs) == 0 || !sampleAUs[0].IDR) {
			sampleErr = errors.New("built-in sample clip does not start with a keyframe")
		}
	})
	return sampleAUs, sampleErr
}

// ReadAll reads every access unit of an Annex-B stream.
func ReadAll(r io.Reader) ([]AccessUnit, error) {
	ar := NewAUReader(r)
	var aus []AccessUnit
	for {
		au, err := ar.ReadAU()
		if errors.Is(err, io.EOF) {
			return aus, nil
		}
		if err != nil {
			return nil, fmt.Errorf("access unit %d: %w", len(aus), err)
		}
		aus = append(aus, au)
	}
}
