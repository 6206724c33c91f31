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
	const talkSecret = "talk-secret-for-the-browser"
	for _, c := range []struct {
		name, transport string
		secret          bool   // the room has one, which the page knows
		talk, pageTalk  string // the stream's talk secret; the page's #talk=
		refused         string // a regexp of why the viewer may not talk; "" it talks
	}{
		{"fmp4", "fmp4", true, "", "", ""},
		{"srtp", "srtp", true, "", "", ""},
		{"fmp4/no-secret", "fmp4", false, "", "", "room secret"},
		// The room secret lets a viewer watch, not talk, where the stream
		// has a talk secret; the player says which secret is missing.
		{"fmp4/room-secret-only", "fmp4", true, talkSecret, "", "talk secret.*#talk="},
		{"srtp/talk-secret", "srtp", true, talkSecret, talkSecret, ""},
		// WHEP (?protocol=whep): the player proves both secrets in its
		// POST (Ersmesh-Secret-Proof) and offers a sendrecv audio section.
		{"whep/talk-secret", "whep", true, talkSecret, talkSecret, ""},
		{"whep/room-secret-only", "whep", true, talkSecret, "", "talk secret.*#talk="},
	} {
		transport, name := c.transport, c.name
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
				if c.talk != "" {
					nc.TalkSecrets = map[string]string{"sample": c.talk}
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			u, _ := url.Parse(d.URL)
			b := browsertest.New(t, browsertest.Flag("use-fake-device-for-media-stream", true),
				browsertest.Flag("use-fake-ui-for-media-stream", true),
				browsertest.Flag("use-file-for-fake-audio-capture", wav))
			params := url.Values{"room": {"demo"}, "transport": {transport}, "secret": {"hunter2"}}
			if transport == "whep" {
				params = url.Values{"room": {"demo"}, "protocol": {"whep"}, "secret": {"hunter2"}}
			}
			page := "http://" + u.Host + "/?" + params.Encode()
			if c.pageTalk != "" {
				page += "#" + url.Values{"talk": {c.pageTalk}}.Encode()
			}
			if err := browsertest.Navigate(b, page); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitFor(b, t, 25*time.Second, playing+` && !document.getElementById('talk').hidden`)
			if _, err := browsertest.Eval[bool](b, `document.dispatchEvent(new KeyboardEvent('keydown', {key: 't'})), true`); err != nil {
				t.Fatal(err)
			}
			if c.refused != "" {
				// Nobody proved the secret that lets one talk: nobody is
				// heard, and the viewer reads why.
				browsertest.WaitFor(b, t, 10*time.Second, `document.getElementById('talk-status').dataset.state === 'refused' && /`+c.refused+`/.test(document.getElementById('talk-status').textContent)`)
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
			if len(files) == 0 {
				t.Fatal("nothing recorded")
			}
			// One press is one spurt, unless the machine stalled the
			// browser's capture for longer than the device's idle time
			// (seen on a loaded 2-core host): the longest is then checked.
			var samples []float64
			for _, f := range files {
				if s := testutil.DecodePCM(t, 48000, "-i", f); len(s) > len(samples) {
					samples = s
				}
			}
			if len(files) > 1 {
				t.Logf("%d spurts for one press (a stall of the browser's capture); checking the longest, %d samples", len(files), len(samples))
			}
			if len(samples) < 24000 {
				t.Fatalf("%d samples recorded for 2 s of talk", len(samples))
			}
			testutil.CheckTone(t, samples, 48000)
		})
	}
}
