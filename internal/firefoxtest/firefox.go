package firefoxtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ersmesh/ersmesh/internal/testutil"
)

const (
	startTimeout = 30 * time.Second // Firefox's start, to the BiDi session
	closeTimeout = 5 * time.Second  // the graceful close before the kill
	maxMessage   = 16 << 20         // a BiDi message (evaluated JSON, mostly)
)

// ErrNoBrowser is returned by Start when Firefox is not installed.
var ErrNoBrowser = errors.New("no Firefox found")

// find returns $FIREFOX or the first Firefox on PATH.
func find() (string, error) {
	if p := os.Getenv("FIREFOX"); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no firefox-esr or firefox on PATH and $FIREFOX is not set")
}

// Browser is one running Firefox and the BiDi session to its first tab.
type Browser struct {
	cmd     *exec.Cmd
	conn    *websocket.Conn
	tab     string // the top-level browsing context
	profile string

	readDone chan struct{} // closed when the reader ends
	waitDone chan struct{} // closed when the process is reaped

	mu      sync.Mutex
	nextID  int
	pending map[int]chan reply
	console []string
	output  testutil.Tail
	readErr error
}

type reply struct {
	Type    string          `json:"type"` // "success" or "error"
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// New starts a fresh headless Firefox for the test and stops it when the
// test ends. Without Firefox the test is skipped, unless CI=true.
func New(t testing.TB, extraPrefs map[string]any) *Browser {
	t.Helper()
	b, err := Start(extraPrefs)
	if errors.Is(err, ErrNoBrowser) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("firefoxtest: %v (CI=true, so this is an error)", err)
		}
		t.Skipf("firefoxtest: skipping, no Firefox: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

var listening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// Start starts Firefox with a fresh profile, connects to its BiDi endpoint
// and opens a session. Close stops it.
func Start(extraPrefs map[string]any) (*Browser, error) {
	bin, err := find()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoBrowser, err)
	}
	profile, err := os.MkdirTemp("", "firefoxtest-")
	if err != nil {
		return nil, fmt.Errorf("firefoxtest: profile: %w", err)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(userJS(extraPrefs)), 0o644); err != nil {
		os.RemoveAll(profile)
		return nil, fmt.Errorf("firefoxtest: profile: %w", err)
	}
	b := &Browser{
		profile:  profile,
		pending:  map[int]chan reply{},
		readDone: make(chan struct{}),
		waitDone: make(chan struct{}),
		output:   testutil.Tail{Max: 64 << 10},
	}
	// Port 0: Firefox picks a free port and prints it.
	b.cmd = exec.Command(bin, "--headless", "--no-remote", "--remote-debugging-port=0", "--profile", profile, "about:blank")
	b.cmd.Env = append(os.Environ(), "MOZ_CRASHREPORTER_DISABLE=1", "MOZ_DISABLE_AUTO_SAFE_MODE=1")
	// Its own process group, so that Close kills the content processes too.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.cmd.Stdout = &b.output
	stderr, err := b.cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(profile)
		return nil, err
	}
	if err := b.cmd.Start(); err != nil {
		os.RemoveAll(profile)
		return nil, fmt.Errorf("firefoxtest: start %s: %w", bin, err)
	}
	urlc := make(chan string, 1)
	go func() {
		// Read stderr to its end (the process's), keeping a tail, and
		// hand over the BiDi address when it appears.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			b.output.Write([]byte(line + "\n"))
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		b.cmd.Wait()
		close(b.waitDone)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var wsURL string
	select {
	case wsURL = <-urlc:
	case <-b.waitDone:
		b.kill()
		return nil, fmt.Errorf("firefoxtest: %s exited at start:\n%s", bin, b.output.String())
	case <-ctx.Done():
		b.kill()
		return nil, fmt.Errorf("firefoxtest: %s did not open WebDriver BiDi within %v:\n%s", bin, startTimeout, b.output.String())
	}
	conn, _, err := websocket.Dial(ctx, strings.TrimSuffix(wsURL, "/")+"/session", nil)
	if err != nil {
		b.kill()
		return nil, fmt.Errorf("firefoxtest: connect to %s: %w", wsURL, err)
	}
	conn.SetReadLimit(maxMessage)
	b.conn = conn
	go b.read()

	if _, err := b.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}); err != nil {
		b.Close()
		return nil, err
	}
	if _, err := b.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}); err != nil {
		b.Close()
		return nil, err
	}
	res, err := b.call(ctx, "browsingContext.getTree", map[string]any{"maxDepth": 0})
	if err != nil {
		b.Close()
		return nil, err
	}
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := json.Unmarshal(res, &tree); err != nil || len(tree.Contexts) == 0 {
		b.Close()
		return nil, fmt.Errorf("firefoxtest: no tab in %s", res)
	}
	b.tab = tree.Contexts[0].Context
	return b, nil
}

// read owns the connection's reading side: it hands replies to their
// callers and keeps log entries.
func (b *Browser) read() {
	defer close(b.readDone)
	for {
		_, data, err := b.conn.Read(context.Background())
		if err != nil {
			b.mu.Lock()
			b.readErr = err
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var msg struct {
			ID     *int            `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			reply
		}
		if err := json.Unmarshal(data, &msg); err != nil {
			continue
		}
		if msg.ID != nil {
			b.mu.Lock()
			ch := b.pending[*msg.ID]
			delete(b.pending, *msg.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- msg.reply
			}
			continue
		}
		if msg.Method == "log.entryAdded" {
			var e struct {
				Level  string `json:"level"`
				Text   string `json:"text"`
				Source struct {
					Context string `json:"context"`
				} `json:"source"`
			}
			if json.Unmarshal(msg.Params, &e) == nil {
				b.mu.Lock()
				b.console = append(b.console, e.Level+": "+e.Text)
				b.mu.Unlock()
			}
		}
	}
}

// call sends a BiDi command and waits for its result.
func (b *Browser) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	ch := make(chan reply, 1)
	b.mu.Lock()
	if b.readErr != nil {
		err := b.readErr
		b.mu.Unlock()
		return nil, fmt.Errorf("firefoxtest: %s: connection closed: %w", method, err)
	}
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	forget := func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
	}
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		forget()
		return nil, err
	}
	if err := b.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		forget()
		return nil, fmt.Errorf("firefoxtest: %s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("firefoxtest: %s: connection closed", method)
		}
		if r.Type == "error" {
			return nil, fmt.Errorf("firefoxtest: %s: %s: %s", method, r.Error, r.Message)
		}
		return r.Result, nil
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("firefoxtest: %s: %w", method, ctx.Err())
	}
}

// Navigate opens url in the tab and waits for it to load.
func (b *Browser) Navigate(ctx context.Context, url string) error {
	_, err := b.call(ctx, "browsingContext.navigate", map[string]any{"context": b.tab, "url": url, "wait": "complete"})
	return err
}

// Eval evaluates a JavaScript expression in the page, awaits it if it is a
// promise, and decodes its JSON value into v.
func (b *Browser) Eval(ctx context.Context, js string, v any) error {
	// The value travels as a JSON string: BiDi's own serialisation of
	// objects is verbose and needs decoding by type.
	expr := "(async () => JSON.stringify(await (" + js + "\n)))()"
	res, err := b.call(ctx, "script.evaluate", map[string]any{
		"expression":      expr,
		"target":          map[string]any{"context": b.tab},
		"awaitPromise":    true,
		"resultOwnership": "none",
	})
	if err != nil {
		return err
	}
	var r struct {
		Type   string `json:"type"`
		Result struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return fmt.Errorf("firefoxtest: evaluate: %w", err)
	}
	if r.Type == "exception" {
		return fmt.Errorf("firefoxtest: evaluate %s: %s", testutil.Abbrev(js, 80), r.ExceptionDetails.Text)
	}
	if r.Result.Type != "string" {
		return fmt.Errorf("firefoxtest: evaluate %s: no JSON value (%s)", testutil.Abbrev(js, 80), r.Result.Type)
	}
	return json.Unmarshal([]byte(r.Result.Value), v)
}

// WaitFor polls the boolean expression js every 100 ms until it is true,
// and fails the test with the page's state and console if it is not within
// timeout.
func (b *Browser) WaitFor(t testing.TB, timeout time.Duration, js string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), max(time.Until(deadline), 100*time.Millisecond))
		var ok bool
		err := b.Eval(ctx, js, &ok)
		cancel()
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err
		}
		if !time.Now().Before(deadline) {
			break
		}
		select {
		case <-b.readDone:
			last = errors.New("the connection to Firefox is gone")
			deadline = time.Now()
		case <-time.After(100 * time.Millisecond):
		}
	}
	msg := fmt.Sprintf("firefoxtest: %s still not true after %v", testutil.Abbrev(js, 200), timeout)
	if last != nil {
		msg += fmt.Sprintf(" (last error: %v)", last)
	}
	t.Fatal(msg + "\n" + b.Describe())
}

// Describe reports the page's URL, the player's stage and message, and the
// console log, for failure messages.
func (b *Browser) Describe() string {
	var sb strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	var st map[string]any
	err := b.Eval(ctx, `({url: location.href, stage: document.body?.dataset.stage ?? null,
		stageText: document.getElementById('stage')?.textContent ?? null,
		message: document.getElementById('message')?.textContent ?? null})`, &st)
	cancel()
	if err != nil {
		fmt.Fprintf(&sb, "page state unknown: %v\nfirefox output (tail):\n%s\n", err, b.output.String())
	} else {
		fmt.Fprintf(&sb, "page %v\nstage %v: %q\nmessage: %q\n", st["url"], st["stage"], st["stageText"], st["message"])
	}
	lines := b.Console()
	const keep = 80
	sb.WriteString("console:")
	if len(lines) > keep {
		fmt.Fprintf(&sb, "\n  … %d earlier lines", len(lines)-keep)
		lines = lines[len(lines)-keep:]
	}
	for _, l := range lines {
		sb.WriteString("\n  " + l)
	}
	return sb.String()
}

// Console returns the page's console messages so far ("info: text").
func (b *Browser) Console() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// Close ends the session and the browser, kills what is left of its
// process group, waits for the reader and removes the profile.
func (b *Browser) Close() {
	if b.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		_, _ = b.call(ctx, "browser.close", map[string]any{})
		cancel()
		select {
		case <-b.waitDone:
		case <-time.After(closeTimeout):
		}
		b.conn.CloseNow()
		<-b.readDone
	}
	b.kill()
}

// kill ends the process group, reaps the process and removes the profile.
func (b *Browser) kill() {
	if b.cmd.Process != nil {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-b.waitDone
	os.RemoveAll(b.profile)
}
