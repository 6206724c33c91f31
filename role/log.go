package role

import (
	"flag"
	"io"
	"log/slog"
)

// LogConfig is how a command logs.
type LogConfig struct {
	Level  string // debug, info, warn or error
	Format string // text, or json for log collectors
}

// DefaultLogConfig: info, as text.
func DefaultLogConfig() LogConfig { return LogConfig{Level: "info", Format: "text"} }

// Flags binds --log-level and --log-format.
func (c *LogConfig) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Level, "log-level", c.Level, "log level: debug, info, warn or error")
	fs.StringVar(&c.Format, "log-format", c.Format, "log format: text, or json for log collectors")
}

// Logger returns a logger writing to w as configured.
func (c LogConfig) Logger(w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, keyErr("log-level", "%q: want debug, info, warn or error", c.Level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch c.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, keyErr("log-format", "%q: want text or json", c.Format)
}
