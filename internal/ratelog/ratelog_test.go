package ratelog

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/testutil"
)

// buf collects the log lines a test checks.
type buf struct{ testutil.Buffer }

func (b *buf) lines() []string {
	return strings.Split(strings.TrimSpace(b.String()), "\n")
}

func newBuf() (*buf, *slog.Logger) {
	b := &buf{}
	return b, slog.New(slog.NewTextHandler(b, nil))
}

// TestFloodBounded: a thousand refusals write the burst, and the next line
// counts what was left out.
func TestFloodBounded(t *testing.T) {
	b, log := newBuf()
	l := New(log, 50*time.Millisecond, 3)
	written := 0
	for range 1000 {
		if l.Log(slog.LevelWarn, "refused", "who", "x") {
			written++
		}
	}
	if written != 3 {
		t.Fatalf("%d lines of a flood written, want the burst of 3", written)
	}
	time.Sleep(60 * time.Millisecond)
	l.Warn("refused again")
	lines := b.lines()
	if len(lines) != 4 {
		t.Fatalf("%d lines: %q", len(lines), lines)
	}
	if !strings.Contains(lines[3], "suppressed=997") {
		t.Fatalf("the line after the flood does not count it: %q", lines[3])
	}
	if strings.Contains(lines[0], SuppressedKey) {
		t.Fatalf("the first line claims suppressed lines: %q", lines[0])
	}
}

// TestKeyed: one line per key per interval, and many keys together within
// the shared bound.
func TestKeyed(t *testing.T) {
	b, log := newBuf()
	k := NewKeyed[int](log, time.Hour, time.Hour, 5, 1000)
	for range 10 {
		k.Warn(1, "refused")
	}
	if n := len(b.lines()); n != 1 {
		t.Fatalf("one key wrote %d lines in its interval, want 1", n)
	}
	for key := range 100 {
		k.Info(key+2, "refused")
	}
	if n := len(b.lines()); n != 5 {
		t.Fatalf("100 keys wrote %d lines, want the shared burst of 5", n)
	}
}

// TestKeyedTableBounded: a flood of fresh keys does not grow the table.
func TestKeyedTableBounded(t *testing.T) {
	_, log := newBuf()
	k := NewKeyed[int](log, time.Hour, time.Millisecond, 1, 64)
	for key := range 10000 {
		k.Warn(key, "refused")
	}
	if n := k.keys.Len(); n > 64 {
		t.Fatalf("%d keys tracked, bound 64", n)
	}
}
