package web_test

import (
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/talkback"
)

// TestTalkbackFromBrowser: Chromium's fake microphone plays a 1 kHz tone;
// the viewer, who proved the room secret, holds T; the device's file sink
// gets Ogg Opus whose decoded audio has its energy at 1 kHz.
func TestTalkbackFromBrowser(t *testing.T) {
	testutil.NeedFFmpeg(t, "to decode the talkback recording")
	dir := t.TempDir()
	wav := filepath.Join(dir, "tone.wav")
	testutil.ToneWAV(t, wav, 10)
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
			samples := testutil.DecodePCM(t, 48000, "-i", files[0])
			if len(samples) < 48000 {
				t.Fatalf("%d samples recorded for 2 s of talk", len(samples))
			}
			testutil.CheckTone(t, samples, 48000)
		})
	}
}
