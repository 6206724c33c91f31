package talkback

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// Sink takes a stream's talk spurts.
type Sink interface {
	// Open starts a talk spurt; the writer receives its Ogg Opus bytes and
	// is closed when the spurt ends.
	Open() (io.WriteCloser, error)
	// String names the sink for logs.
	String() string
}

// ParseSink reads a --talkback sink:
//
//	file:PATH       each spurt to its own file PATH-<time>-<n>.ogg (PATH without .ogg)
//	exec:CMD ARGS   each spurt to the standard input of a fresh CMD (split on spaces, no shell)
//	pcm:RATE:CMD    each spurt as s16le mono PCM at RATE Hz (ffmpeg decodes) to a fresh CMD
//	rtsp://...      the camera's ONVIF audio backchannel (G.711, transcoded by ffmpeg)
func ParseSink(s string) (Sink, error) {
	kind, arg, ok := strings.Cut(s, ":")
	if !ok || arg == "" {
		return nil, fmt.Errorf("talkback sink %q: want file:PATH or exec:COMMAND", s)
	}
	switch kind {
	case "file":
		return &FileSink{Path: arg}, nil
	case "exec":
		argv := strings.Fields(arg)
		if len(argv) == 0 {
			return nil, fmt.Errorf("talkback sink %q: no command", s)
		}
		return &CommandSink{Argv: argv}, nil
	case "pcm":
		sink, err := parsePCM(arg)
		if err != nil {
			return nil, fmt.Errorf("talkback sink %q: %w", s, err)
		}
		return sink, nil
	case "rtsp", "rtsps":
		if !strings.HasPrefix(arg, "//") {
			return nil, fmt.Errorf("talkback sink %q: want rtsp://host/path", s)
		}
		return &RTSPSink{URL: s}, nil
	}
	return nil, fmt.Errorf("talkback sink %q: unknown kind %q; want file: or exec:", s, kind)
}

// FileSink records each spurt in its own Ogg Opus file beside Path.
type FileSink struct {
	Path string
	n    atomic.Uint64
}

func (f *FileSink) String() string { return "file:" + f.Path }

// Open creates PATH-<UTC time>-<n>.ogg: a file per spurt, so that a
// recording is never appended to one that a reader already closed.
func (f *FileSink) Open() (io.WriteCloser, error) {
	base := strings.TrimSuffix(f.Path, ".ogg")
	name := fmt.Sprintf("%s-%s-%d.ogg", base, time.Now().UTC().Format("20060102T150405.000Z"), f.n.Add(1))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

// CommandSink starts Argv for each spurt, its standard input the Ogg Opus
// stream; closing the stream ends the input and waits for the command.
type CommandSink struct {
	Argv []string
	Log  *slog.Logger // the command's standard error, line by line; nil: discarded
	// WriteTimeout bounds one write to the command's input, Wait the
	// command's end after it; a command that stops reading must not hold
	// the viewer's session (and the device's Close) forever. Defaults
	// commandWriteTimeout and commandWait.
	WriteTimeout, Wait time.Duration
}

func (c *CommandSink) String() string { return "exec:" + strings.Join(c.Argv, " ") }

// commandWait bounds how long a command may take after its input ended;
// commandWriteTimeout how long it may leave a write unread.
const (
	commandWait         = 10 * time.Second
	commandWriteTimeout = 2 * time.Second
)

func (c *CommandSink) Open() (io.WriteCloser, error) {
	wait, wto := cmp.Or(c.Wait, commandWait), cmp.Or(c.WriteTimeout, commandWriteTimeout)
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	// Our own pipe rather than StdinPipe: an *os.File pipe takes write
	// deadlines.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdin = r
	if c.Log != nil {
		cmd.Stderr = logWriter{c.Log}
	}
	cmd.WaitDelay = wait
	err = cmd.Start()
	r.Close() // the command's now
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("talkback command: %w", err)
	}
	return &commandInput{in: w, cmd: cmd, wait: wait, writeTimeout: wto}, nil
}

type commandInput struct {
	in                 *os.File
	cmd                *exec.Cmd
	wait, writeTimeout time.Duration
}

func (c *commandInput) Write(p []byte) (int, error) {
	c.in.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	n, err := c.in.Write(p)
	if err != nil {
		err = fmt.Errorf("talkback command does not take its input: %w", err)
	}
	return n, err
}

func (c *commandInput) Close() error {
	return errors.Join(c.in.Close(), waitOrKill(c.cmd, c.wait))
}

// waitOrKill waits up to wait for cmd, whose input has been closed, to end,
// and kills it after that: a command that ignores the end of its input
// must not hold the floor.
func waitOrKill(cmd *exec.Cmd, wait time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		cmd.Process.Kill()
		return errors.Join(<-done, errors.New("talkback command did not end after its input; killed"))
	}
}

type logWriter struct{ log *slog.Logger }

func (l logWriter) Write(p []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimSpace(string(p)), "\n") {
		l.log.Debug("talkback command", "stderr", line)
	}
	return len(p), nil
}

// Spurt writes one talk spurt's Opus RTP packets to a sink as Ogg Opus.
type Spurt struct {
	out io.WriteCloser
	ogg *oggwriter.OggWriter
}

// Start opens a spurt on sink.
func Start(sink Sink) (*Spurt, error) {
	out, err := sink.Open()
	if err != nil {
		return nil, err
	}
	// WebRTC Opus is 48 kHz, stereo in its SDP whatever the sender sends.
	// The writer is hidden behind a plain io.Writer: OggWriter.Close would
	// close a Closer itself, and the sink's Close must run once.
	ogg, err := oggwriter.NewWith(struct{ io.Writer }{out}, 48000, 2)
	if err != nil {
		out.Close()
		return nil, err
	}
	return &Spurt{out: out, ogg: ogg}, nil
}

// WriteRTP adds one Opus RTP packet.
func (s *Spurt) WriteRTP(p *rtp.Packet) error { return s.ogg.WriteRTP(p) }

// Close ends the Ogg stream and the sink's writer.
func (s *Spurt) Close() error {
	return errors.Join(s.ogg.Close(), s.out.Close())
}
