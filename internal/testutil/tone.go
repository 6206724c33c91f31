package testutil

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// The talk back tests send a 1 kHz tone and look for it in what the
// device's sink got, decoded with ffmpeg.

// NeedFFmpeg skips t without ffmpeg, or fails it when CI=true.
func NeedFFmpeg(t testing.TB, why string) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ffmpeg is needed %s", why)
		}
		t.Skipf("no ffmpeg %s (LookPath failed; CI=true fails instead)", why)
	}
}

// ToneWAV writes secs seconds of a 1 kHz sine, 48 kHz mono 16-bit PCM, as
// Chromium's fake microphone input.
func ToneWAV(t testing.TB, path string, secs int) {
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

// ToneOgg is secs seconds of a 1 kHz sine as Ogg Opus (48 kHz), encoded
// by ffmpeg. Each Ogg page holds one 20 ms packet, so ToneOpusPackets can
// take a page as a packet.
func ToneOgg(t testing.TB, secs int) []byte {
	t.Helper()
	ogg, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000:duration="+strconv.Itoa(secs),
		"-c:a", "libopus", "-frame_duration", "20", "-page_duration", "20000", "-f", "ogg", "pipe:1").Output()
	if err != nil {
		t.Fatalf("ffmpeg could not encode the tone: %v", err)
	}
	return ogg
}

// ToneOpusPackets is ToneOgg's Opus packets, 20 ms each, for an RTP
// sender.
func ToneOpusPackets(t testing.TB, secs int) [][]byte {
	t.Helper()
	r, _, err := oggreader.NewWith(bytes.NewReader(ToneOgg(t, secs)))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		payload, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(payload, []byte("OpusTags")) {
			continue
		}
		out = append(out, payload)
	}
}

// DecodePCM decodes any audio file ffmpeg reads (in: its input options,
// then the input) to mono float samples at rate.
func DecodePCM(t testing.TB, rate int, in ...string) []float64 {
	t.Helper()
	args := append([]string{"-v", "error"}, in...)
	args = append(args, "-f", "s16le", "-ac", "1", "-ar", strconv.Itoa(rate), "-")
	out, err := exec.Command("ffmpeg", args...).Output()
	if err != nil {
		t.Fatalf("ffmpeg could not decode %q: %v", in, err)
	}
	return PCMSamples(out)
}

// PCMSamples reads signed 16-bit little-endian PCM as floats in [-1, 1).
func PCMSamples(pcm []byte) []float64 {
	s := make([]float64, len(pcm)/2)
	for i := range s {
		s[i] = float64(int16(binary.LittleEndian.Uint16(pcm[2*i:]))) / 32768
	}
	return s
}

// ToneShare is the share of the samples' energy at freq (Hz), by Goertzel's
// algorithm: near 1 for a pure tone at freq, near 0 elsewhere.
func ToneShare(samples []float64, rate, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/rate)
	var s1, s2, energy float64
	for _, x := range samples {
		s1, s2 = x+k*s1-s2, s1
		energy += x * x
	}
	if energy == 0 {
		return 0
	}
	return 2 * (s1*s1 + s2*s2 - k*s1*s2) / (energy * float64(len(samples)))
}

// CheckTone fails t unless the middle of samples (after the codec's
// start-up) is the 1 kHz tone: most of its energy at 1 kHz, little at
// other frequencies.
func CheckTone(t testing.TB, samples []float64, rate float64) {
	t.Helper()
	if len(samples) < int(rate)/2 {
		t.Fatalf("%d samples: less than half a second of audio", len(samples))
	}
	mid := samples[len(samples)/4 : 3*len(samples)/4]
	at1k := ToneShare(mid, rate, 1000)
	t.Logf("share of energy at 1 kHz %.2f, at 700 Hz %.3f, at 1.5 kHz %.3f", at1k, ToneShare(mid, rate, 700), ToneShare(mid, rate, 1500))
	if at1k < 0.5 {
		t.Fatalf("only %.2f of the audio's energy is at 1 kHz", at1k)
	}
	for _, f := range []float64{500, 700, 1500, 2000} {
		if f >= rate/2 {
			continue
		}
		if g := ToneShare(mid, rate, f); g > 0.1 {
			t.Fatalf("%.2f of the energy at %v Hz: not the 1 kHz tone", g, f)
		}
	}
}
