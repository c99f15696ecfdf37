// Package logging builds portcullis's zap loggers: JSON on stderr, the
// access log buffered, timestamps in UTC ISO 8601 with milliseconds.
package logging

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New builds the main logger and the access logger at level, both JSON on
// stderr through one lock (their lines never interleave). The access log,
// one line per request, is buffered and flushed every 100 ms or 256 KiB
// instead of costing a write system call per request; stop flushes it.
func New(level string) (main, access *zap.Logger, stop func(), err error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("log.level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = ISO8601UTC
	out := zapcore.Lock(os.Stderr)
	main = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), out, lvl), zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel))
	buffered := &zapcore.BufferedWriteSyncer{WS: out, Size: 256 << 10, FlushInterval: 100 * time.Millisecond}
	access = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), buffered, lvl)).Named("access")
	return main, access, func() { _ = buffered.Stop() }, nil
}

// stamp caches the formatted second of the last timestamp.
type stamp struct {
	sec    int64
	prefix string // "2006-01-02T15:04:05."
}

var lastStamp atomic.Pointer[stamp]

// ISO8601UTC encodes t as "2006-01-02T15:04:05.000Z" (UTC). Formatting a
// time costs more than the rest of an access log line's fields; the
// seconds part is formatted once per second and reused.
func ISO8601UTC(t time.Time, e zapcore.PrimitiveArrayEncoder) {
	t = t.UTC()
	sec := t.Unix()
	s := lastStamp.Load()
	if s == nil || s.sec != sec {
		s = &stamp{sec: sec, prefix: t.Truncate(time.Second).Format("2006-01-02T15:04:05.")}
		lastStamp.Store(s)
	}
	var buf [32]byte
	b := append(buf[:0], s.prefix...)
	ms := t.Nanosecond() / int(time.Millisecond)
	if ms < 100 {
		b = append(b, '0')
	}
	if ms < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, int64(ms), 10)
	b = append(b, 'Z')
	e.AppendByteString(b)
}
