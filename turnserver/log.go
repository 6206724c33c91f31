package turnserver

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogger sends pion/turn's logs to slog. pion logs per-packet detail at
// trace and debug and genuine trouble at warn and error; its info is
// mostly chatter, so it goes to debug.
type pionLogger struct{ log *slog.Logger }

func (f pionLogger) NewLogger(scope string) logging.LeveledLogger {
	return pionScope{f.log.With("pion", scope)}
}

type pionScope struct{ log *slog.Logger }

func (l pionScope) at(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

func (l pionScope) Trace(msg string)                  {}
func (l pionScope) Tracef(format string, args ...any) {}
func (l pionScope) Debug(msg string)                  { l.at(slog.LevelDebug-4, msg) }
func (l pionScope) Debugf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug-4) {
		l.at(slog.LevelDebug-4, fmt.Sprintf(format, args...))
	}
}
func (l pionScope) Info(msg string) { l.at(slog.LevelDebug, msg) }
func (l pionScope) Infof(format string, args ...any) {
	l.at(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (l pionScope) Warn(msg string) { l.at(slog.LevelWarn, msg) }
func (l pionScope) Warnf(format string, args ...any) {
	l.at(slog.LevelWarn, fmt.Sprintf(format, args...))
}
func (l pionScope) Error(msg string) { l.at(slog.LevelWarn, msg) }
func (l pionScope) Errorf(format string, args ...any) {
	l.at(slog.LevelWarn, fmt.Sprintf(format, args...))
}
