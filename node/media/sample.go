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

// The built-in clip: ffmpeg's testsrc2 pattern, 4 s of 640x360 at 30 fps,
// Constrained Baseline, and a 4 s AAC-LC tone (mono, 32 kHz);
// scripts/make-sample.sh regenerates both.
var (
	//go:embed sample/sample.h264
	sampleClip []byte
	//go:embed sample/sample.aac
	sampleAAC []byte
)

// SampleFrameDuration is the frame interval of the built-in clip.
const SampleFrameDuration = time.Second / 30

// sampleAudioFrames is how many AAC frames make exactly the clip's 4 s at
// 32 kHz (1024 samples each); the encoder's padding beyond is dropped.
const sampleAudioFrames = 125

var (
	sampleOnce  sync.Once
	sampleAUs   []AccessUnit
	sampleAudio []AudioFrame
	sampleFmt   *AudioFormat
	sampleErr   error
)

func loadSample() {
	sampleAUs, sampleErr = ReadAll(bytes.NewReader(sampleClip))
	if sampleErr == nil && (len(sampleAUs) == 0 || !sampleAUs[0].IDR) {
		sampleErr = errors.New("built-in sample clip does not start with a keyframe")
	}
	if sampleErr != nil {
		return
	}
	sampleAudio, sampleFmt, sampleErr = readAllADTS(bytes.NewReader(sampleAAC))
	if sampleErr == nil && len(sampleAudio) < sampleAudioFrames {
		sampleErr = fmt.Errorf("built-in sample audio has %d frames, want %d", len(sampleAudio), sampleAudioFrames)
	}
	if sampleErr == nil {
		sampleAudio = sampleAudio[:sampleAudioFrames]
	}
}

// SampleClip returns the built-in clip's access units, parsed once.
func SampleClip() ([]AccessUnit, error) {
	sampleOnce.Do(loadSample)
	return sampleAUs, sampleErr
}

// SampleAudio returns the built-in clip's AAC frames and format.
func SampleAudio() ([]AudioFrame, *AudioFormat, error) {
	sampleOnce.Do(loadSample)
	return sampleAudio, sampleFmt, sampleErr
}

// NewSampleSource is the built-in clip, looped.
func NewSampleSource() (Source, error) {
	aus, err := SampleClip()
	if err != nil {
		return nil, err
	}
	audio, format, err := SampleAudio()
	if err != nil {
		return nil, err
	}
	return &LoopSource{Name: "sample:", Video: aus, FrameDuration: SampleFrameDuration, Audio: audio, AudioFormat: format}, nil
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

// readAllADTS reads every frame of an ADTS stream.
func readAllADTS(r io.Reader) ([]AudioFrame, *AudioFormat, error) {
	ar := NewADTSReader(r)
	var out []AudioFrame
	for {
		b, err := ar.ReadFrame()
		if errors.Is(err, io.EOF) {
			if len(out) == 0 {
				return nil, nil, fmt.Errorf("%w: empty", ErrNotADTS)
			}
			return out, ar.Format(), nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("AAC frame %d: %w", len(out), err)
		}
		out = append(out, AudioFrame{Data: b, Samples: 1024})
	}
}
