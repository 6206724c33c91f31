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
	br, stop, err := browsertest.Start(browsertest.ExposeLocalIPs())
	if err != nil {
		return nil, err
	}
	defer stop()
	if _, err := chromedp.Call(br, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: hooks}); err != nil {
		return nil, fmt.Errorf("install the timing hooks: %w", err)
	}
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

// joinOnce loads the player at url and returns join to first frame.
func joinOnce(ctx context.Context, br context.Context, url string) (float64, error) {
	// Leave the previous page first, so its session ends at the bridge.
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
		t, err := browsertest.Eval[struct{ Join, Frame float64 }](br, `window.__ersBench || {}`)
		if err == nil && t.Join > 0 && t.Frame > 0 {
			return t.Frame - t.Join, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, errors.New("no video frame within 20 s of loading the player:\n" + fmt.Sprint(browsertest.Console(br)))
}
