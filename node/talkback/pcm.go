package talkback

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// PCMCommandSink is a CommandSink for commands that take raw audio (aplay,
// a speaker's driver): ffmpeg decodes each spurt's Ogg Opus to signed
// 16-bit little-endian mono PCM at Rate, which is the command's input.
type PCMCommandSink struct {
	Rate   int
	Argv   []string
	FFmpeg string       // default "ffmpeg" on PATH
	Log    *slog.Logger // the commands' standard error; nil: discarded
}

func (p *PCMCommandSink) String() string {
	return fmt.Sprintf("pcm:%d:%s", p.Rate, strings.Join(p.Argv, " "))
}

// parsePCM reads RATE:COMMAND ARGS.
func parsePCM(arg string) (Sink, error) {
	rate, command, _ := strings.Cut(arg, ":")
	r, err := strconv.Atoi(rate)
	if err != nil || r < 8000 || r > 48000 {
		return nil, fmt.Errorf("pcm rate %q: want 8000 to 48000 (Hz)", rate)
	}
	argv := strings.Fields(command)
	if len(argv) == 0 {
		return nil, errors.New("pcm: no command")
	}
	return &PCMCommandSink{Rate: r, Argv: argv}, nil
}

func (p *PCMCommandSink) Open() (io.WriteCloser, error) {
	dec := exec.Command(cmp.Or(p.FFmpeg, "ffmpeg"), "-v", "error", "-f", "ogg", "-i", "pipe:0", "-f", "s16le", "-ar", strconv.Itoa(p.Rate), "-ac", "1", "pipe:1")
	play := exec.Command(p.Argv[0], p.Argv[1:]...)
	in, decIn, err := os.Pipe() // us → ffmpeg
	if err != nil {
		return nil, err
	}
	pcm, decOut, err := os.Pipe() // ffmpeg → the command
	if err != nil {
		in.Close()
		decIn.Close()
		return nil, err
	}
	dec.Stdin, dec.Stdout = in, decOut
	play.Stdin = pcm
	if p.Log != nil {
		dec.Stderr, play.Stderr = logWriter{p.Log}, logWriter{p.Log}
	}
	dec.WaitDelay, play.WaitDelay = commandWait, commandWait
	errDec := dec.Start()
	errPlay := error(nil)
	if errDec == nil {
		if errPlay = play.Start(); errPlay != nil {
			dec.Process.Kill()
			dec.Wait()
		}
	}
	// The children hold their ends now.
	in.Close()
	decOut.Close()
	pcm.Close()
	if err := errors.Join(errDec, errPlay); err != nil {
		decIn.Close()
		return nil, fmt.Errorf("talkback pcm: %w", err)
	}
	return &pcmInput{commandInput: commandInput{in: decIn, cmd: dec, wait: commandWait, writeTimeout: commandWriteTimeout}, play: play}, nil
}

// pcmInput is the decoder's input; closing it ends the decoder, whose end
// ends the command's input.
type pcmInput struct {
	commandInput
	play *exec.Cmd
}

func (p *pcmInput) Close() error {
	return errors.Join(p.commandInput.Close(), waitOrKill(p.play, p.wait))
}
