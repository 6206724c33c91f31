package web_test

import (
	"context"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/node/control"
)

// TestStartWebRTCTokenInBrowser: a room started through the device's
// control API with a token is protected by it: the player plays it with
// #secret=<token> and is refused without.
func TestStartWebRTCTokenInBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := demo.Start(ctx, demo.Config{Addr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctl, err := control.New(control.Config{Device: d.Device(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	cmd, err := control.ParseRequest("/startWebRTC", "roomid=porch&token=hunter2&keepAlive=0")
	if err != nil {
		t.Fatal(err)
	}
	if rep := ctl.Do(ctx, cmd); !rep.OK() {
		t.Fatalf("startWebRTC: %+v", rep)
	}
	u, _ := url.Parse(d.URL)
	base := "http://" + u.Host
	b := browsertest.New(t)
	for _, c := range []struct{ extra, want string }{
		{"", `document.body.dataset.stage === 'error' && /secret/.test(document.getElementById('message').textContent)`},
		{"#secret=hunter2", playing},
	} {
		if err := browsertest.Navigate(b, playerURL(base, "porch", c.extra)); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitFor(b, t, 25*time.Second, c.want)
	}
}
