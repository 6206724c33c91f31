package ratelog

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ersmesh/ersmesh/internal/keylimit"
)

// SuppressedKey is the attribute that tells how many lines were left out
// since the line before.
const SuppressedKey = "suppressed"

// Logger writes at most one line per interval, with burst lines in
// reserve. It is safe for concurrent use.
type Logger struct {
	log     *slog.Logger
	lim     *rate.Limiter
	dropped atomic.Uint64
}

// New returns a Logger writing to log at most burst lines at once and one
// line per every after that.
func New(log *slog.Logger, every time.Duration, burst int) *Logger {
	return &Logger{log: log, lim: rate.NewLimiter(rate.Every(every), max(1, burst))}
}

// Log writes the line if the rate allows, and reports whether it did.
func (l *Logger) Log(level slog.Level, msg string, args ...any) bool {
	if !l.lim.Allow() {
		l.dropped.Add(1)
		return false
	}
	l.write(level, msg, args)
	return true
}

func (l *Logger) write(level slog.Level, msg string, args []any) {
	if n := l.dropped.Swap(0); n > 0 {
		args = append(args[:len(args):len(args)], SuppressedKey, n)
	}
	l.log.Log(context.Background(), level, msg, args...)
}

// Warn logs at warning level, rate permitting.
func (l *Logger) Warn(msg string, args ...any) { l.Log(slog.LevelWarn, msg, args...) }

// Info logs at info level, rate permitting.
func (l *Logger) Info(msg string, args ...any) { l.Log(slog.LevelInfo, msg, args...) }

// Keyed writes at most one line per key per interval, and over all keys no
// more than its shared Logger allows: many keys (a Sybil flood of peers)
// cannot flood the log either.
type Keyed[K comparable] struct {
	all  *Logger
	keys *keylimit.Limiter[K]
}

// NewKeyed returns a Keyed logger: one line per key per perKey, and over
// all keys burst lines at once and one per every after that. It tracks at
// most maxKeys keys; beyond that, keys whose interval has not run out are
// forgotten (they may log again sooner, within the shared bound).
func NewKeyed[K comparable](log *slog.Logger, perKey, every time.Duration, burst, maxKeys int) *Keyed[K] {
	return &Keyed[K]{
		all: New(log, every, burst),
		keys: keylimit.New(keylimit.Config[K]{Rate: rate.Every(perKey), Burst: 1,
			MaxKeys: maxKeys, WhenFull: keylimit.Forget, SweepEvery: perKey}),
	}
}

// Log writes the line for key if both its key's and the shared rate
// allow, and reports whether it did.
func (k *Keyed[K]) Log(key K, level slog.Level, msg string, args ...any) bool {
	if k.keys.Allow(key) != nil {
		k.all.dropped.Add(1)
		return false
	}
	return k.all.Log(level, msg, args...)
}

// Warn logs at warning level for key, rates permitting.
func (k *Keyed[K]) Warn(key K, msg string, args ...any) { k.Log(key, slog.LevelWarn, msg, args...) }

// Info logs at info level for key, rates permitting.
func (k *Keyed[K]) Info(key K, msg string, args ...any) { k.Log(key, slog.LevelInfo, msg, args...) }
