package media

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Limits of the Ogg Opus reader.
const (
	maxOpusPacket  = 8 << 10 // far above Opus's 1275-byte frames × 6
	maxOpusPackets = 1 << 20
)

// ErrNotOggOpus is returned when an input is not an Ogg Opus stream.
var ErrNotOggOpus = errors.New("not an Ogg Opus stream")

// pageRecorder keeps the bytes of the page pion's reader is parsing, so
// that the page's lacing values (which it does not return) can be read.
type pageRecorder struct {
	r   io.Reader
	buf bytes.Buffer
}

func (p *pageRecorder) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.buf.Write(b[:n])
	return n, err
}

// readAllOggOpus reads every Opus packet of an Ogg Opus file (RFC 7845):
// pion's oggreader checks pages and their CRC; packets are cut by the
// pages' lacing values (RFC 3533 §6), continuing across pages.
func readAllOggOpus(r io.Reader) ([]AudioFrame, *AudioFormat, error) {
	rec := &pageRecorder{r: r}
	or, head, err := oggreader.NewWith(rec)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNotOggOpus, err)
	}
	var out []AudioFrame
	var partial []byte
	for {
		rec.buf.Reset()
		payload, _, err := or.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: page %d: %w", ErrNotOggOpus, len(out), err)
		}
		page := rec.buf.Bytes()
		if len(page) < 27 || len(page) < 27+int(page[26]) {
			return nil, nil, fmt.Errorf("%w: short page", ErrNotOggOpus)
		}
		lacing := page[27 : 27+int(page[26])]
		if bytes.HasPrefix(payload, []byte("OpusTags")) {
			continue
		}
		off := 0
		for _, l := range lacing {
			if off+int(l) > len(payload) {
				return nil, nil, fmt.Errorf("%w: lacing beyond the page", ErrNotOggOpus)
			}
			partial = append(partial, payload[off:off+int(l)]...)
			off += int(l)
			if len(partial) > maxOpusPacket {
				return nil, nil, fmt.Errorf("%w: packet over %d bytes", ErrNotOggOpus, maxOpusPacket)
			}
			if l < 255 { // the packet ends here
				if n := opusSamples(partial); n > 0 {
					out = append(out, AudioFrame{Data: partial, Samples: n})
				}
				partial = nil
				if len(out) > maxOpusPackets {
					return nil, nil, fmt.Errorf("%w: more than %d packets", ErrNotOggOpus, maxOpusPackets)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("%w: no audio packets", ErrNotOggOpus)
	}
	return out, &AudioFormat{Codec: AudioOpus, SampleRate: 48000, Channels: max(int(head.Channels), 1)}, nil
}
