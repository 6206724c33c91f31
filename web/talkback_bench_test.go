package web_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/talkback"
)

// firstAudioSink notes when each spurt's first audio page (the third Ogg
// page, after OpusHead and OpusTags) reaches the sink.
type firstAudioSink struct {
	mu    sync.Mutex
	first []time.Time
}

type firstAudioWriter struct {
	s     *firstAudioSink
	pages int
}

func (s *firstAudioSink) Open() (io.WriteCloser, error) { return &firstAudioWriter{s: s}, nil }
func (s *firstAudioSink) String() string                { return "latency probe" }

func (w *firstAudioWriter) Write(p []byte) (int, error) {
	before := w.pages
	w.pages += bytes.Count(p, []byte("OggS"))
	if before < 3 && w.pages >= 3 {
		w.s.mu.Lock()
		w.s.first = append(w.s.first, time.Now())
		w.s.mu.Unlock()
	}
	return len(p), nil
}

func (w *firstAudioWriter) Close() error { return nil }

func (s *firstAudioSink) spurts() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.first)
}

// BenchmarkTalkbackLatency: the viewer presses T in Chromium (fake
// microphone); measured are the press to the sink's first audio bytes
// (the microphone opened, the floor taken, the sink opened) and the
// microphone's track put on the sender to those bytes (the network path).
// One press per iteration: -benchtime 20x.
func BenchmarkTalkbackLatency(b *testing.B) {
	dir := b.TempDir()
	wav := filepath.Join(dir, "tone.wav")
	testutil.ToneWAV(b, wav, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sink := &firstAudioSink{}
	log := slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := demo.Start(ctx, demo.Config{Addr: "127.0.0.1:0", Logger: log, TuneDevice: func(c *node.Config) {
		c.Secrets = map[string]string{"demo": "hunter2"}
		c.Talkback = map[string]talkback.Sink{"sample": sink}
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	u, _ := url.Parse(d.URL)
	br := browsertest.New(b, browsertest.Flag("use-fake-device-for-media-stream", true),
		browsertest.Flag("use-fake-ui-for-media-stream", true),
		browsertest.Flag("use-file-for-fake-audio-capture", wav))
	page := "http://" + u.Host + "/?" + url.Values{"room": {"demo"}, "transport": {"fmp4"}, "secret": {"hunter2"}}.Encode()
	if err := browsertest.Navigate(br, page); err != nil {
		b.Fatal(err)
	}
	browsertest.WaitFor(br, b, 25*time.Second, playing+` && !document.getElementById('talk').hidden`)
	var press, network []float64
	b.ResetTimer()
	for i := range b.N {
		// Wall-clock milliseconds in the browser, the same clock as Go's
		// on this machine.
		if _, err := browsertest.Eval[bool](br, `document.dispatchEvent(new KeyboardEvent('keydown', {key: 't'})), true`); err != nil {
			b.Fatal(err)
		}
		browsertest.WaitFor(br, b, 10*time.Second, `document.getElementById('talk-status').dataset.state === 'talking'`)
		deadline := time.Now().Add(5 * time.Second)
		for len(sink.spurts()) <= i && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		heard := sink.spurts()
		if len(heard) <= i {
			b.Fatalf("press %d never reached the sink", i)
		}
		t, err := browsertest.Eval[[]float64](br, `(() => { const t = window.ersPlayer.talkback.timing; return [performance.timeOrigin + t.pressedAt, performance.timeOrigin + t.sendingAt]; })()`)
		if err != nil || len(t) != 2 {
			b.Fatalf("timings: %v %v", t, err)
		}
		at := float64(heard[i].UnixNano()) / 1e6
		press = append(press, at-t[0])
		network = append(network, at-t[1])
		browsertest.Eval[bool](br, `document.dispatchEvent(new KeyboardEvent('keyup', {key: 't'})), true`)
		browsertest.WaitFor(br, b, 10*time.Second, `document.getElementById('talk-status').dataset.state === 'released'`)
	}
	b.StopTimer()
	for name, v := range map[string][]float64{"press": press, "sending": network} {
		slices.Sort(v)
		b.ReportMetric(v[len(v)/2], name+"-median-ms")
		b.ReportMetric(v[min(len(v)-1, len(v)*95/100)], name+"-p95-ms")
	}
}
