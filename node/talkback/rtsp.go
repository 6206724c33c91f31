package talkback

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// RTSPSink speaks through the camera's ONVIF audio backchannel (ONVIF
// Streaming Specification §5.3: DESCRIBE with "Require:
// www.onvif.org/ver20/backchannel", a sendonly audio section the client
// sends on). Cameras take G.711 there; each spurt's Ogg Opus is transcoded
// to 8 kHz µ-law or A-law by ffmpeg (no pure-Go Opus decoder handles what
// browsers send) and sent as RTP over the RTSP connection (interleaved).
type RTSPSink struct {
	URL    string
	FFmpeg string // the ffmpeg to run; default "ffmpeg" on PATH
}

func (s *RTSPSink) String() string { return s.URL }

// g711Packet is 20 ms of 8 kHz G.711: one byte a sample.
const g711Packet = 160

// Open connects to the camera, finds its G.711 backchannel and starts the
// transcoder whose input the spurt's Ogg Opus is.
func (s *RTSPSink) Open() (io.WriteCloser, error) {
	u, err := base.ParseURL(s.URL)
	if err != nil {
		return nil, fmt.Errorf("talkback rtsp: %w", err)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{RequestBackChannels: true, Transport: &tcp, ReadTimeout: 10 * time.Second, WriteTimeout: 5 * time.Second}
	if err := c.Start(u.Scheme, u.Host); err != nil {
		return nil, fmt.Errorf("talkback rtsp: %w", err)
	}
	medi, g711, err := backchannel(c, u)
	if err != nil {
		c.Close()
		return nil, err
	}
	codec := "alaw"
	if g711.MULaw {
		codec = "mulaw"
	}
	ff := s.FFmpeg
	if ff == "" {
		ff = "ffmpeg"
	}
	cmd := exec.Command(ff, "-v", "error", "-f", "ogg", "-i", "pipe:0", "-f", codec, "-ar", "8000", "-ac", "1", "pipe:1")
	r, w, err := os.Pipe()
	if err != nil {
		c.Close()
		return nil, err
	}
	cmd.Stdin = r
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.Close()
		w.Close()
		c.Close()
		return nil, err
	}
	cmd.WaitDelay = commandWait
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		c.Close()
		return nil, fmt.Errorf("talkback rtsp: the transcoder: %w", err)
	}
	bc := &backchannelInput{commandInput: commandInput{in: w, cmd: cmd, wait: commandWait, writeTimeout: commandWriteTimeout}, c: c}
	bc.wg.Go(func() { bc.err = send(c, medi, g711.PayloadType(), out) })
	return bc, nil
}

// backchannel describes u and sets up its G.711 backchannel.
func backchannel(c *gortsplib.Client, u *base.URL) (*description.Media, *format.G711, error) {
	desc, _, err := c.Describe(u)
	if err != nil {
		return nil, nil, fmt.Errorf("talkback rtsp: describe: %w", err)
	}
	for _, m := range desc.Medias {
		if !m.IsBackChannel {
			continue
		}
		for _, f := range m.Formats {
			if g, ok := f.(*format.G711); ok && g.SampleRate == 8000 && g.ChannelCount == 1 {
				if _, err := c.Setup(desc.BaseURL, m, 0, 0); err != nil {
					return nil, nil, fmt.Errorf("talkback rtsp: setup of the backchannel: %w", err)
				}
				if _, err := c.Play(nil); err != nil {
					return nil, nil, fmt.Errorf("talkback rtsp: play: %w", err)
				}
				return m, g, nil
			}
		}
	}
	return nil, nil, errors.New("talkback rtsp: the camera offers no G.711 audio backchannel")
}

// send packetises the transcoder's output, 20 ms to an RTP packet, until
// it ends.
func send(c *gortsplib.Client, medi *description.Media, pt uint8, in io.Reader) error {
	var b [4]byte
	rand.Read(b[:])
	ssrc := binary.BigEndian.Uint32(b[:])
	rand.Read(b[:])
	seq, ts := binary.BigEndian.Uint16(b[:2]), binary.BigEndian.Uint32(b[:])
	buf := make([]byte, g711Packet)
	for first := true; ; first = false {
		n, err := io.ReadFull(in, buf)
		if n > 0 {
			p := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: first, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}, Payload: append([]byte(nil), buf[:n]...)}
			if werr := c.WritePacketRTP(medi, p); werr != nil {
				io.Copy(io.Discard, in) // let the transcoder finish
				return werr
			}
			seq++
			ts += uint32(n)
		}
		if err != nil {
			return nil // EOF: the spurt ended
		}
	}
}

// backchannelInput is a spurt to the camera: the transcoder's input, and
// the RTSP session it feeds.
type backchannelInput struct {
	commandInput
	c   *gortsplib.Client
	wg  sync.WaitGroup
	err error
}

// Close ends the transcoder's input, sends what it still makes (its output
// is read to the end before Wait closes it), and ends the RTSP session.
func (b *backchannelInput) Close() error {
	err := b.in.Close()
	drained := make(chan struct{})
	go func() { b.wg.Wait(); close(drained) }()
	t := time.NewTimer(b.wait)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
		b.cmd.Process.Kill()
		<-drained
		err = errors.Join(err, errors.New("talkback rtsp: the transcoder did not end after its input; killed"))
	}
	err = errors.Join(err, b.cmd.Wait(), b.err)
	b.c.Close()
	return err
}
