package metadata

import (
	"github.com/rs/zerolog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns a zap logger, as the etcd server and client take,
// that writes through log and drops everything below min. etcd logs a great
// deal at info level; Gregor passes zapcore.WarnLevel so that only what an
// operator must see reaches its own log, in its own format. Entries for
// which demote (if not nil) returns true are written at debug level.
func newZapLogger(log zerolog.Logger, min zapcore.Level, demote func(zapcore.Entry, map[string]any) bool) *zap.Logger {
	return zap.New(&zerologCore{log: log, min: min, demote: demote})
}

// zerologCore is a zapcore.Core that turns each zap entry into one zerolog
// event. It is immutable: With returns a new core.
type zerologCore struct {
	log    zerolog.Logger
	min    zapcore.Level
	demote func(zapcore.Entry, map[string]any) bool // nil: none; given the entry's encoded fields
	fields []zapcore.Field                          // from With, written before each entry's own
}

func (c *zerologCore) Enabled(l zapcore.Level) bool { return l >= c.min }

func (c *zerologCore) With(fields []zapcore.Field) zapcore.Core {
	all := make([]zapcore.Field, 0, len(c.fields)+len(fields))
	all = append(all, c.fields...)
	all = append(all, fields...)
	return &zerologCore{log: c.log, min: c.min, demote: c.demote, fields: all}
}

func (c *zerologCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *zerologCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	var ev *zerolog.Event
	switch {
	case e.Level <= zapcore.DebugLevel || (c.demote != nil && c.demote(e, enc.Fields)):
		ev = c.log.Debug()
	case e.Level == zapcore.InfoLevel:
		ev = c.log.Info()
	case e.Level == zapcore.WarnLevel:
		ev = c.log.Warn()
	default:
		// Error, DPanic, Panic and Fatal: zap itself panics or exits after
		// Write for the last two, as etcd expects.
		ev = c.log.Error()
	}
	if e.LoggerName != "" {
		ev = ev.Str("etcd_logger", e.LoggerName)
	}
	ev.Fields(enc.Fields).Msg(e.Message)
	return nil
}

func (c *zerologCore) Sync() error { return nil }
