package media

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/bluenviron/mediacommon/pkg/codecs/mpeg4audio"
)

// ErrNotADTS is returned when an input is not an ADTS AAC stream.
var ErrNotADTS = errors.New("not an ADTS AAC stream")

// ADTSReader splits an ADTS stream (ffmpeg's -f adts, a .aac file) into AAC
// access units. Each ADTS header is checked by mediacommon's parser.
type ADTSReader struct {
	r      *bufio.Reader
	format *AudioFormat
	buf    []byte
}

// NewADTSReader reads ADTS from r.
func NewADTSReader(r io.Reader) *ADTSReader {
	return &ADTSReader{r: bufio.NewReaderSize(r, 16<<10)}
}

// Format is the stream's audio format, known after the first ReadFrame.
func (a *ADTSReader) Format() *AudioFormat { return a.format }

// ReadFrame returns the next access unit (a fresh slice); io.EOF at the end.
func (a *ADTSReader) ReadFrame() ([]byte, error) {
	hdr, err := a.r.Peek(7)
	if err != nil {
		if errors.Is(err, io.EOF) && len(hdr) == 0 {
			return nil, io.EOF
		}
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: truncated header at the end", ErrNotADTS)
		}
		return nil, err
	}
	if hdr[0] != 0xff || hdr[1]&0xf0 != 0xf0 {
		return nil, fmt.Errorf("%w: no sync word", ErrNotADTS)
	}
	// 13-bit frame length, header included (ISO 14496-3, 1.A.2.2).
	n := int(hdr[3]&0x03)<<11 | int(hdr[4])<<3 | int(hdr[5])>>5
	if n <= 7 || n > 7+mpeg4audio.MaxAccessUnitSize {
		return nil, fmt.Errorf("%w: frame length %d", ErrNotADTS, n)
	}
	a.buf = a.buf[:0]
	if cap(a.buf) < n {
		a.buf = make([]byte, n)
	}
	a.buf = a.buf[:n]
	if _, err := io.ReadFull(a.r, a.buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: truncated frame at the end", ErrNotADTS)
		}
		return nil, err
	}
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(a.buf); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotADTS, err)
	}
	p := pkts[0]
	if a.format == nil {
		a.format = &AudioFormat{
			Codec: AudioAAC, SampleRate: p.SampleRate, Channels: p.ChannelCount,
			AAC: &mpeg4audio.AudioSpecificConfig{Type: p.Type, SampleRate: p.SampleRate, ChannelCount: p.ChannelCount},
		}
	} else if p.SampleRate != a.format.SampleRate || p.ChannelCount != a.format.Channels {
		return nil, fmt.Errorf("%w: format changed mid-stream (%d Hz %d ch, was %d Hz %d ch)", ErrNotADTS, p.SampleRate, p.ChannelCount, a.format.SampleRate, a.format.Channels)
	}
	return append([]byte(nil), p.AU...), nil
}
