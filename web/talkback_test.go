package web_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/talkback"
)

// toneWAV writes secs seconds of a 1 kHz sine, 48 kHz mono 16-bit PCM, as
// Chromium's fake microphone input.
func toneWAV(t testing.TB, path string, secs int) {
	t.Helper()
	const rate = 48000
	n := rate * secs
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + 2*n))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1)) // PCM
	le(uint16(1)) // mono
	le(uint32(rate))
	le(uint32(2 * rate))
	le(uint16(2))
	le(uint16(16))
	b.WriteString("data")
	le(uint32(2 * n))
	for i := range n {
		le(int16(12000 * math.Sin(2*math.Pi*1000*float64(i)/rate)))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// goertzel is the power of samples at freq (Hz), normalised by the
// samples' own energy: near 1 for a pure tone at freq, near 0 elsewhere.
func goertzel(samples []float64, rate, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/rate)
	var s1, s2, energy float64
	for _, x := range samples {
		s1, s2 = x+k*s1-s2, s1
		energy += x * x
	}
	power := s1*s1 + s2*s2 - k*s1*s2
	if energy == 0 {
		return 0
	}
	return 2 * power / (energy * float64(len(samples)))
}

// decodeOgg decodes an Ogg Opus file to 48 kHz mono samples with ffmpeg.
func decodeOgg(t *testing.T, path string) []float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "s16le", "-ac", "1", "-ar", "48000", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg could not decode the sink's file: %v", err)
	}
	s := make([]float64, len(out)/2)
	for i := range s {
		s[i] = float64(int16(binary.LittleEndian.Uint16(out[2*i:]))) / 32768
	}
	return s
}

// TestTalkbackFromBrowser: Chromium's fake microphone plays a 1 kHz tone;
// the viewer, who proved the room secret, holds T; the device's file sink
// gets Ogg Opus whose decoded audio has its energy at 1 kHz.
func TestTalkbackFromBrowser(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg is needed to decode the talkback recording")
		}
		t.Skip("no ffmpeg to decode the talkback recording (CI=true fails instead)")
	}
	dir := t.TempDir()
	wav := filepath.Join(dir, "tone.wav")
	toneWAV(t, wav, 10)
	for _, c := range []struct {
		transport string
		secret    bool
	}{{"fmp4", true}, {"srtp", true}, {"fmp4", false}} {
		transport := c.transport
		name := transport
		if !c.secret {
			name += "/no-secret"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rec := filepath.Join(dir, name, "talk.ogg")
			log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			d, err := demo.Start(ctx, demo.Config{Addr: "127.0.0.1:0", Logger: log, TuneDevice: func(nc *node.Config) {
				if c.secret {
					nc.Secrets = map[string]string{"demo": "hunter2"}
				}
				nc.Talkback = map[string]talkback.Sink{"sample": &talkback.FileSink{Path: rec}}
			}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			u, _ := url.Parse(d.URL)
			b := browsertest.New(t, browsertest.Flag("use-fake-device-for-media-stream", true),
				browsertest.Flag("use-fake-ui-for-media-stream", true),
				browsertest.Flag("use-file-for-fake-audio-capture", wav))
			page := "http://" + u.Host + "/?" + url.Values{"room": {"demo"}, "transport": {transport}, "secret": {"hunter2"}}.Encode()
			if err := browsertest.Navigate(b, page); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitFor(b, t, 25*time.Second, playing+` && !document.getElementById('talk').hidden`)
			if _, err := browsertest.Eval[bool](b, `document.dispatchEvent(new KeyboardEvent('keydown', {key: 't'})), true`); err != nil {
				t.Fatal(err)
			}
			if !c.secret {
				// The room is open: nobody proved a secret, nobody is heard,
				// and the viewer reads why.
				browsertest.WaitFor(b, t, 10*time.Second, `document.getElementById('talk-status').dataset.state === 'refused' && /room secret/.test(document.getElementById('talk-status').textContent)`)
				time.Sleep(time.Second)
				if files, _ := filepath.Glob(filepath.Join(dir, name, "talk-*.ogg")); len(files) != 0 {
					t.Fatalf("a viewer without the secret was recorded: %q", files)
				}
				return
			}
			browsertest.WaitFor(b, t, 10*time.Second, `document.getElementById('talk-status').dataset.state === 'talking'`)
			time.Sleep(2 * time.Second)
			if _, err := browsertest.Eval[bool](b, `document.dispatchEvent(new KeyboardEvent('keyup', {key: 't'})), true`); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitFor(b, t, 10*time.Second, `document.getElementById('talk-status').dataset.state === 'released'`)
			files, _ := filepath.Glob(filepath.Join(dir, name, "talk-*.ogg"))
			if len(files) != 1 {
				t.Fatalf("recordings %q, want one spurt", files)
			}
			samples := decodeOgg(t, files[0])
			if len(samples) < 48000 {
				t.Fatalf("%d samples recorded for 2 s of talk", len(samples))
			}
			// Skip the codec's start-up; the middle second is the tone.
			mid := samples[len(samples)/4 : len(samples)/4+48000]
			at1k := goertzel(mid, 48000, 1000)
			t.Logf("share of energy at 1 kHz %.2f, at 700 Hz %.3f, at 1.5 kHz %.3f", at1k, goertzel(mid, 48000, 700), goertzel(mid, 48000, 1500))
			if at1k < 0.5 {
				t.Fatalf("only %.2f of the recorded energy is at 1 kHz", at1k)
			}
			for _, f := range []float64{500, 700, 1500, 2000} {
				if g := goertzel(mid, 48000, f); g > 0.1 {
					t.Fatalf("%.2f of the energy at %v Hz: not the 1 kHz tone", g, f)
				}
			}
		})
	}
}
