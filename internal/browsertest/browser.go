package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ersmesh/ersmesh/internal/testutil"
)

// startTimeout bounds the browser's start; chromedp itself waits forever.
const startTimeout = 30 * time.Second

// closeTimeout bounds the graceful close at cleanup; the process is killed
// after it.
const closeTimeout = 5 * time.Second

// Option changes how New starts the browser.
type Option func(*config)

type config struct {
	flags           map[string]any
	order           []string
	disableFeatures []string
}

func (c *config) set(name string, value any) {
	if _, ok := c.flags[name]; !ok {
		c.order = append(c.order, name)
	}
	c.flags[name] = value
}

// ExposeLocalIPs makes WebRTC gather host candidates with real IP addresses.
// Real browsers hide them behind mDNS names (*.local), which a test machine
// without an mDNS responder cannot resolve.
func ExposeLocalIPs() Option {
	return func(c *config) {
		c.disableFeatures = append(c.disableFeatures, "WebRtcHideLocalIpsWithMdns")
	}
}

// Flag adds a Chromium command-line switch: Flag("use-fake-device-for-media-stream", true),
// Flag("lang", "de"). A false bool removes a switch. Features named in
// "disable-features" are added to those New disables already.
func Flag(name string, value any) Option {
	return func(c *config) {
		if name == "disable-features" {
			if s, ok := value.(string); ok {
				c.disableFeatures = append(c.disableFeatures, strings.Split(s, ",")...)
			}
			return
		}
		c.set(name, value)
	}
}

// findChromium returns the browser to run: $CHROMIUM, else the first of the
// usual names on PATH.
func findChromium() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		abs, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("$CHROMIUM=%q: %w", p, err)
		}
		return abs, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser or google-chrome on PATH and $CHROMIUM is not set")
}

// session is what New keeps for a browser: its console log and output.
type session struct {
	mu      sync.Mutex
	console []string
	output  testutil.Tail
}

type sessionKey struct{}

func sessionOf(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// New starts a fresh headless Chromium for the test and returns the context
// of its first tab, for Navigate, Eval, WaitFor and any chromedp action. The
// browser is stopped, its processes killed and its goroutines ended when the
// test ends.
//
// Without Chromium the test is skipped, unless CI=true in the environment:
// then it fails, so that CI cannot pass by testing nothing.
func New(t testing.TB, opts ...Option) context.Context {
	t.Helper()
	ctx, stop, err := Start(opts...)
	if errors.Is(err, ErrNoBrowser) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browsertest: %v (CI=true, so this is an error)", err)
		}
		t.Skipf("browsertest: skipping, no browser: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return ctx
}

// ErrNoBrowser is returned by Start when no Chromium is installed.
var ErrNoBrowser = errors.New("no Chromium found")

// Start is New for code that is not a test (benchmark harnesses): it
// returns the tab's context and stop, which closes the browser, kills its
// processes, waits for its goroutines and removes its profile directory.
func Start(opts ...Option) (_ context.Context, stop func(), _ error) {
	bin, err := findChromium()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrNoBrowser, err)
	}
	dataDir, err := os.MkdirTemp("", "browsertest-")
	if err != nil {
		return nil, nil, fmt.Errorf("browsertest: profile directory: %w", err)
	}
	cfg := &config{flags: map[string]any{}}
	for _, f := range []struct {
		name  string
		value any
	}{
		{"headless", true},
		{"no-sandbox", true},
		{"disable-gpu", true},
		{"disable-background-networking", true},
		{"disable-component-update", true},
		{"disable-sync", true},
		{"no-first-run", true},
		{"disable-quic", true},
		{"user-data-dir", dataDir},
		{"autoplay-policy", "no-user-gesture-required"},
		{"use-fake-ui-for-media-stream", true},
		// A headless tab counts as hidden: keep its timers (the player's
		// heartbeats and retries) and its renderer at full speed.
		{"disable-background-timer-throttling", true},
		{"disable-renderer-backgrounding", true},
		{"disable-backgrounding-occluded-windows", true},
		// /dev/shm is small in containers; Chromium crashes when it fills.
		{"disable-dev-shm-usage", true},
		{"no-default-browser-check", true},
		{"disable-extensions", true},
		{"mute-audio", true},
		{"hide-scrollbars", true},
		{"password-store", "basic"},
		{"use-mock-keychain", true},
		{"window-size", "1280,800"},
	} {
		cfg.set(f.name, f.value)
	}
	cfg.disableFeatures = []string{"Translate", "MediaRouter", "OptimizationHints"}
	for _, o := range opts {
		o(cfg)
	}
	cfg.set("disable-features", strings.Join(cfg.disableFeatures, ","))

	sess := &session{output: testutil.Tail{Max: 64 << 10}}
	allocOpts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.CombinedOutput(&sess.output),
	}
	for _, name := range cfg.order {
		allocOpts = append(allocOpts, chromedp.Flag(name, cfg.flags[name]))
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	ctx, cancel := chromedp.NewContext(allocCtx)

	var wg sync.WaitGroup
	stop = func() {
		// Close gracefully, so that Chromium flushes nothing half-written,
		// then make sure: cancel kills the process, and the sweep kills the
		// helpers (zygote, renderers) that can outlive it.
		cctx, ccancel := context.WithTimeout(ctx, closeTimeout)
		_ = chromedp.Cancel(cctx)
		ccancel()
		cancel()
		allocCancel()
		killLeftovers(dataDir)
		wg.Wait()
		os.RemoveAll(dataDir)
	}

	// The first action starts the browser and binds it to ctx, which must
	// not carry a deadline; a watchdog bounds the start instead.
	started := make(chan struct{})
	wg.Go(func() {
		timer := time.NewTimer(startTimeout)
		defer timer.Stop()
		select {
		case <-started:
		case <-timer.C:
			cancel()
		}
	})
	err = chromedp.Do(ctx)
	close(started)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("browsertest: cannot start %s: %w\n%s", bin, err, sess.output.String())
	}

	// Subscribe before any navigation, so no console message is lost.
	messages := chromedp.Console(ctx)
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			line := m.String()
			if m.URL != "" && m.Type != chromedp.ConsoleLog && m.Type != chromedp.ConsoleInfo && m.Type != chromedp.ConsoleDebug {
				line += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
			}
			sess.mu.Lock()
			sess.console = append(sess.console, line)
			sess.mu.Unlock()
		}
	})
	return context.WithValue(ctx, sessionKey{}, sess), stop, nil
}

// Navigate opens url in the tab and waits for it to load.
func Navigate(ctx context.Context, url string) error {
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("navigate to %s: %w", url, err)
	}
	return nil
}

// Console returns the page's console messages so far ("log: text",
// "error: text (url:line)", "exception: ..."), including the browser's own
// log entries such as failed requests.
func Console(ctx context.Context) []string {
	s := sessionOf(ctx)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.console...)
}

// Eval evaluates a JavaScript expression in the page, awaits it if it is a
// promise, and decodes its JSON value into T. Use Eval[any] for a value of
// no particular type, and wrap statements in an arrow function:
// `(async () => { ...; return x })()`.
func Eval[T any](ctx context.Context, js string) (T, error) {
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		return v, fmt.Errorf("evaluate %s: %w", testutil.Abbrev(js, 80), err)
	}
	return v, nil
}

// WaitFor polls the boolean JavaScript expression js every 100 ms until it
// is true, and fails the test if it is not within timeout. The failure
// message has the page's URL, the player's stage and message, and the console
// log. Errors while evaluating (during a navigation, say) count as false. Call
// it from the test's goroutine.
func WaitFor(ctx context.Context, t testing.TB, timeout time.Duration, js string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ectx, cancel := context.WithTimeout(ctx, max(time.Until(deadline), 100*time.Millisecond))
		ok, err := Eval[bool](ectx, js)
		cancel()
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "browsertest: %s still not true after %v", testutil.Abbrev(js, 200), timeout)
	if last != nil {
		fmt.Fprintf(&b, " (last error: %v)", last)
	}
	b.WriteString("\n" + Describe(ctx))
	t.Fatal(b.String())
}

// pageState reads what a person would look at first on the player page.
const pageState = `JSON.stringify({
  url: location.href,
  stage: document.body?.dataset.stage ?? null,
  stageText: document.getElementById('stage')?.textContent ?? null,
  message: document.getElementById('message')?.textContent ?? null,
})`

// Describe reports the page's URL, stage, message and console log, for
// failure messages.
func Describe(ctx context.Context) string {
	var b strings.Builder
	if ctx.Err() != nil {
		fmt.Fprintf(&b, "the browser is gone (%v)\n", context.Cause(ctx))
		if s := sessionOf(ctx); s != nil {
			b.WriteString("browser output (tail):\n" + s.output.String() + "\n")
		}
	} else {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		state, err := Eval[string](sctx, pageState)
		cancel()
		if err != nil {
			fmt.Fprintf(&b, "page state unknown: %v\n", err)
		} else {
			var st struct {
				URL, StageText, Message string
				Stage                   *string
			}
			_ = json.Unmarshal([]byte(state), &st)
			stage := "(unset)"
			if st.Stage != nil {
				stage = *st.Stage
			}
			fmt.Fprintf(&b, "page %s\nstage %s: %q\nmessage: %q\n", st.URL, stage, st.StageText, st.Message)
		}
	}
	lines := Console(ctx)
	if len(lines) == 0 {
		b.WriteString("console: (empty)")
		return b.String()
	}
	const keep = 80
	b.WriteString("console:")
	if len(lines) > keep {
		fmt.Fprintf(&b, "\n  … %d earlier lines", len(lines)-keep)
		lines = lines[len(lines)-keep:]
	}
	for _, l := range lines {
		b.WriteString("\n  " + l)
	}
	return b.String()
}

// BeforeLoad makes the tab run js in every document it loads from now on,
// before the page's own scripts: to take a browser feature away
// (MediaSource, say) and see how the page copes.
func BeforeLoad(ctx context.Context, js string) error {
	_, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (page.AddScriptToEvaluateOnNewDocumentResult, error) {
		return cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js})
	})
	if err != nil {
		return fmt.Errorf("script before load: %w", err)
	}
	return nil
}

// Screenshot saves a PNG of the tab's viewport to path.
func Screenshot(ctx context.Context, path string) error {
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	return nil
}
