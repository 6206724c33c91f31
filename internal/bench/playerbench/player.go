package playerbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/bench/benchstat"
	"github.com/ersmesh/ersmesh/internal/browsertest"
)

// hooks stamps the join packet and the first presented frame.
const hooks = `(() => {
  const t = { join: 0, frame: 0 };
  window.__ersBench = t;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (!t.join && typeof data === 'string' && data.includes('"name":"join"')) t.join = performance.now();
    return send.call(this, data);
  };
  const watch = () => {
    for (const v of document.querySelectorAll('video')) {
      if (v.__ersBench || !v.requestVideoFrameCallback) continue;
      v.__ersBench = true;
      v.requestVideoFrameCallback(() => { if (!t.frame) t.frame = performance.now(); });
    }
  };
  new MutationObserver(watch).observe(document, { childList: true, subtree: true });
})()`

// Config of a run. Zero values give the defaults of `ersmesh-bench player`.
type Config struct {
	Runs     int // per mode; default 20
	Progress func(format string, args ...any)
}

// Result holds join-to-first-frame times in milliseconds.
type Result struct {
	Cold        []float64         `json:"cold_ms"`
	Warm        []float64         `json:"warm_ms"`
	ColdSummary benchstat.Summary `json:"cold"`
	WarmSummary benchstat.Summary `json:"warm"`
}

// Run measures cfg.Runs cold and cfg.Runs warm joins.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Runs == 0 {
		cfg.Runs = 20
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, ...any) {}
	}
	br, stop, err := NewBrowser()
	if err != nil {
		return nil, err
	}
	defer stop()
	log := slog.New(slog.DiscardHandler)
	res := &Result{}

	// Cold: a new demo each time, so the bridge has never looked the room
	// up nor dialled the device.
	for i := range cfg.Runs {
		d, err := demo.Start(ctx, demo.Config{Addr: "127.0.0.1:0", Logger: log})
		if err != nil {
			return nil, err
		}
		ms, err := joinOnce(ctx, br, d.URL)
		d.Close()
		if err != nil {
			return nil, fmt.Errorf("cold run %d: %w", i+1, err)
		}
		res.Cold = append(res.Cold, ms)
	}
	res.ColdSummary = benchstat.Summarize(res.Cold)
	cfg.Progress("player: cold bridge, %d runs: median %.0f ms, p95 %.0f ms", cfg.Runs, res.ColdSummary.Median, res.ColdSummary.P95)

	// Warm: one demo; the first join fills the bridge's cache and its
	// connection to the device, the next ones are measured.
	d, err := demo.Start(ctx, demo.Config{Addr: "127.0.0.1:0", Logger: log})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	for i := -1; i < cfg.Runs; i++ {
		ms, err := joinOnce(ctx, br, d.URL)
		if err != nil {
			return nil, fmt.Errorf("warm run %d: %w", i+1, err)
		}
		if i >= 0 {
			res.Warm = append(res.Warm, ms)
		}
	}
	res.WarmSummary = benchstat.Summarize(res.Warm)
	cfg.Progress("player: warm bridge, %d runs: median %.0f ms, p95 %.0f ms", cfg.Runs, res.WarmSummary.Median, res.WarmSummary.P95)
	return res, nil
}

// NewBrowser starts headless Chromium as Run uses it (host candidates
// exposed, as on a LAN) with the timing hooks installed on every page it
// loads. stop ends it.
func NewBrowser() (br context.Context, stop func(), err error) {
	br, stop, err = browsertest.Start(browsertest.ExposeLocalIPs())
	if err != nil {
		return nil, nil, err
	}
	if _, err := chromedp.Call(br, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: hooks}); err != nil {
		stop()
		return nil, nil, fmt.Errorf("install the timing hooks: %w", err)
	}
	return br, stop, nil
}

// stamps are the hooks' times on the page clock (performance.now(), whose
// zero is the navigation's start); 0 until they happen.
type stamps struct{ Join, Frame float64 }

// joinOnce loads the player at url and returns join to first frame.
func joinOnce(ctx context.Context, br context.Context, url string) (float64, error) {
	return load(ctx, br, url, func(t stamps) (float64, bool) { return t.Frame - t.Join, t.Join > 0 && t.Frame > 0 })
}

// FirstFrame loads url in br (from NewBrowser) and returns the time from
// the navigation's start to the first video frame the page presents, in
// milliseconds of the page's clock. Any page with a <video> will do: the
// ersmesh player, another server's own.
func FirstFrame(ctx context.Context, br context.Context, url string) (float64, error) {
	return load(ctx, br, url, func(t stamps) (float64, bool) { return t.Frame, t.Frame > 0 })
}

// load navigates to url, after about:blank so that the previous page's
// session ends at its server, and polls the hooks' stamps until done says
// they are complete.
func load(ctx context.Context, br context.Context, url string, done func(stamps) (float64, bool)) (float64, error) {
	if err := browsertest.Navigate(br, "about:blank"); err != nil {
		return 0, err
	}
	if err := browsertest.Navigate(br, url); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		t, err := browsertest.Eval[stamps](br, `window.__ersBench || {}`)
		if ms, ok := done(t); err == nil && ok {
			return ms, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, errors.New("no video frame within 20 s of loading " + url + ":\n" + fmt.Sprint(browsertest.Console(br)))
}
