// Package wmlog bridges *slog.Logger to Watermill's LoggerAdapter, the one
// way Hexeract hands a logger to Watermill (the App's router and in-memory
// broker, and every transport adapters.Open opens).
package wmlog

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// logger bridges an *slog.Logger to Watermill's logger. It logs
// Watermill's info lines (router life cycle) at debug level, and it drops a
// line before converting its fields when the level is disabled: the router
// logs a trace line per message, which would otherwise cost an allocation
// per field on the hot path.
type logger struct {
	slog  *slog.Logger
	inner watermill.LoggerAdapter
}

// New returns Watermill's logger writing to l; nil means slog.Default().
// Watermill's info lines (life cycle) are logged at debug level, its errors
// at error level, and a line whose level l does not enable costs no field
// conversion.
func New(l *slog.Logger) watermill.LoggerAdapter {
	if l == nil {
		l = slog.Default()
	}
	return logger{
		slog: l,
		inner: watermill.NewSlogLoggerWithLevelMapping(l, map[slog.Level]slog.Level{
			slog.LevelInfo: slog.LevelDebug,
		}),
	}
}

func (w logger) enabled(level slog.Level) bool {
	return w.slog.Enabled(context.Background(), level)
}

func (w logger) Error(msg string, err error, fields watermill.LogFields) {
	w.inner.Error(msg, err, fields)
}

func (w logger) Info(msg string, fields watermill.LogFields) {
	if w.enabled(slog.LevelDebug) {
		w.inner.Info(msg, fields)
	}
}

func (w logger) Debug(msg string, fields watermill.LogFields) {
	if w.enabled(slog.LevelDebug) {
		w.inner.Debug(msg, fields)
	}
}

func (w logger) Trace(msg string, fields watermill.LogFields) {
	if w.enabled(watermill.LevelTrace) {
		w.inner.Trace(msg, fields)
	}
}

func (w logger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return logger{slog: w.slog, inner: w.inner.With(fields)}
}
