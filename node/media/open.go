package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MaxFileSize caps a looped file source, which is held in memory.
const MaxFileSize = 512 << 20

// ErrBadSource wraps every error about a source a user named.
var ErrBadSource = errors.New("bad source")

// ParseStreamFlag splits a --stream value NAME=SOURCE.
func ParseStreamFlag(v string) (name, source string, err error) {
	name, source, ok := strings.Cut(v, "=")
	if !ok || name == "" || source == "" {
		return "", "", fmt.Errorf("--stream %q: want NAME=SOURCE (SOURCE: sample:, a file, -, rtsp://..., rtp://...)", v)
	}
	return name, source, nil
}

// Spec is a parsed SOURCE: the source itself and its options.
//
//	sample:                          the built-in clip (H.264 and AAC)
//	cam.h264[,audio=cam.aac][,fps=25] an H.264 Annex-B file, looped; ADTS AAC or Ogg Opus alongside
//	clip.mp4                         an MP4 file (H.264 without B-frames, AAC-LC), looped
//	- or pipe:[,fps=30]              H.264 Annex-B on standard input
//	rtsp://user:pass@cam/stream      an RTSP camera (H.264; AAC, Opus, G.711)
//	rtp://0.0.0.0[:5004],sdp=in.sdp  RTP pushed to UDP ports, described by an SDP file (its m= ports)
type Spec struct {
	Source string
	Opts   map[string]string
}

// ParseSpec splits SOURCE[,key=value...]. RTSP URLs keep their commas.
func ParseSpec(s string) (Spec, error) {
	sp := Spec{Opts: map[string]string{}}
	parts := strings.Split(s, ",")
	sp.Source = parts[0]
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return sp, fmt.Errorf("%w %q: option %q is not key=value", ErrBadSource, s, p)
		}
		switch k {
		case "audio", "fps", "sdp":
		default:
			return sp, fmt.Errorf("%w %q: unknown option %q (known: audio, fps, sdp)", ErrBadSource, s, k)
		}
		sp.Opts[k] = v
	}
	return sp, nil
}

func (sp Spec) fps() (time.Duration, error) {
	v, ok := sp.Opts["fps"]
	if !ok {
		return time.Second / 30, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 1 || f > 240 {
		return 0, fmt.Errorf("%w %q: fps %q is not a number between 1 and 240", ErrBadSource, sp.Source, v)
	}
	return time.Duration(float64(time.Second) / f), nil
}

// Open checks a SOURCE and returns it, ready to run. Errors name the
// source and say what is wrong with it. stdin serves "-" and "pipe:".
func Open(source string, stdin io.Reader) (Source, error) {
	sp, err := ParseSpec(source)
	if err != nil {
		return nil, err
	}
	switch {
	case sp.Source == "sample:":
		return NewSampleSource()
	case sp.Source == "-" || sp.Source == "pipe:":
		dur, err := sp.fps()
		if err != nil {
			return nil, err
		}
		return &PipeSource{Name: sp.Source, R: stdin, FrameDuration: dur}, nil
	case strings.HasPrefix(sp.Source, "rtsp://") || strings.HasPrefix(sp.Source, "rtsps://"):
		return NewRTSPSource(sp.Source)
	case strings.HasPrefix(sp.Source, "rtp://"):
		return NewRTPSource(sp.Source, sp.Opts["sdp"])
	case strings.Contains(sp.Source, "://"):
		return nil, fmt.Errorf("%w %q: unsupported scheme (use sample:, a file, -, rtsp:// or rtp://)", ErrBadSource, sp.Source)
	}
	switch strings.ToLower(filepath.Ext(sp.Source)) {
	case ".mp4", ".m4v", ".mov":
		return OpenMP4(sp.Source)
	}
	return openAnnexBFile(sp)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSource, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadSource, path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%w %q: larger than %d MiB; pipe it in instead (-)", ErrBadSource, path, MaxFileSize>>20)
	}
	return b, nil
}

func openAnnexBFile(sp Spec) (Source, error) {
	dur, err := sp.fps()
	if err != nil {
		return nil, err
	}
	b, err := readFile(sp.Source)
	if err != nil {
		return nil, err
	}
	aus, err := ReadAll(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadSource, sp.Source, err)
	}
	// Start on a keyframe: that is where a loop can begin.
	for len(aus) > 0 && !aus[0].IDR {
		aus = aus[1:]
	}
	if len(aus) == 0 {
		return nil, fmt.Errorf("%w %q: no keyframe (H.264 IDR, H.265 IRAP) in the file", ErrBadSource, sp.Source)
	}
	src := &LoopSource{Name: sp.Source, Video: aus, FrameDuration: dur}
	if a := sp.Opts["audio"]; a != "" {
		ab, err := readFile(a)
		if err != nil {
			return nil, err
		}
		switch strings.ToLower(filepath.Ext(a)) {
		case ".aac", ".adts":
			src.Audio, src.AudioFormat, err = readAllADTS(bytes.NewReader(ab))
			if err != nil {
				return nil, fmt.Errorf("%w %q: %w", ErrBadSource, a, err)
			}
		case ".ogg", ".opus":
			src.Audio, src.AudioFormat, err = readAllOggOpus(bytes.NewReader(ab))
			if err != nil {
				return nil, fmt.Errorf("%w %q: %w", ErrBadSource, a, err)
			}
		default:
			return nil, fmt.Errorf("%w %q: audio files must be ADTS AAC (.aac) or Ogg Opus (.ogg, .opus)", ErrBadSource, a)
		}
		src.Name += ",audio=" + a
	}
	return src, nil
}

// PipeSource reads H.264 Annex-B from a pipe (a camera encoder's stdout)
// as it comes; frames are timed by FrameDuration. It ends at the pipe's end.
type PipeSource struct {
	Name          string
	R             io.Reader
	FrameDuration time.Duration
}

func (p *PipeSource) String() string { return p.Name }

// Run implements Source. A pipe cannot be rewound: a parse error ends it.
func (p *PipeSource) Run(ctx context.Context, w Writer) error {
	// A blocked read ends when the pipe closes; a camera's pipe delivers a
	// frame every few tens of milliseconds anyway.
	if c, ok := p.R.(io.Closer); ok {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
	}
	ar := NewAUReader(p.R)
	for n := 0; ; n++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		au, err := ar.ReadAU()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, ErrNotAnnexB) {
			return fmt.Errorf("%w %q: %w", ErrBadSource, p.Name, err)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		w.WriteVideo(VideoFrame{AU: au, PTS: time.Duration(n) * p.FrameDuration, Duration: p.FrameDuration})
	}
}

// OpenStreams opens every --stream value (NAME=SOURCE; a bare NAME serves
// the sample clip). A bad source is logged, naming it, and skipped, so the
// others still serve; none at all is an error.
func OpenStreams(flags []string, stdin io.Reader, log *slog.Logger) (map[string]*Stream, error) {
	if len(flags) == 0 {
		flags = []string{"sample=sample:"}
	}
	streams := map[string]*Stream{}
	for _, f := range flags {
		if !strings.Contains(f, "=") {
			f += "=sample:"
		}
		name, source, err := ParseStreamFlag(f)
		if err == nil && streams[name] != nil {
			err = fmt.Errorf("--stream %q: stream %q is given twice", f, name)
		}
		var src Source
		if err == nil {
			src, err = Open(source, stdin)
		}
		if err != nil {
			log.Error("stream not served", "stream", name, "err", err)
			continue
		}
		streams[name] = NewStream(name, src, log)
		log.Info("stream", "name", name, "source", src.String())
	}
	if len(streams) == 0 {
		return nil, errors.New("no stream could be opened (see the errors above)")
	}
	return streams, nil
}
