package hexeract

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// watermillLogger bridges an *slog.Logger to Watermill's logger. It logs
// Watermill's info lines (router life cycle) at debug level, and it drops a
// line before converting its fields when the level is disabled: the router
// logs a trace line per message, which would otherwise cost an allocation
// per field on the hot path.
type watermillLogger struct {
	slog  *slog.Logger
	inner watermill.LoggerAdapter
}

func newWatermillLogger(l *slog.Logger) watermillLogger {
	return watermillLogger{
		slog: l,
		inner: watermill.NewSlogLoggerWithLevelMapping(l, map[slog.Level]slog.Level{
			slog.LevelInfo: slog.LevelDebug,
		}),
	}
}

func (w watermillLogger) enabled(level slog.Level) bool {
	return w.slog.Enabled(context.Background(), level)
}

func (w watermillLogger) Error(msg string, err error, fields watermill.LogFields) {
	w.inner.Error(msg, err, fields)
}

func (w watermillLogger) Info(msg string, fields watermill.LogFields) {
	if w.enabled(slog.LevelDebug) {
		w.inner.Info(msg, fields)
	}
}

func (w watermillLogger) Debug(msg string, fields watermill.LogFields) {
	if w.enabled(slog.LevelDebug) {
		w.inner.Debug(msg, fields)
	}
}

func (w watermillLogger) Trace(msg string, fields watermill.LogFields) {
	if w.enabled(watermill.LevelTrace) {
		w.inner.Trace(msg, fields)
	}
}

func (w watermillLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return watermillLogger{slog: w.slog, inner: w.inner.With(fields)}
}
