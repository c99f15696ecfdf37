// Package logging builds portcullis's zap loggers: JSON on stderr, the
// access log buffered, timestamps in UTC ISO 8601 with milliseconds.
package logging

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New builds the main logger and the access logger at level, both JSON on
// stderr through one lock (their lines never interleave). The access log,
// one line per request, is buffered and written out by a background
// goroutine every 100 ms or 64 KiB, so no request waits on a write; stop
// flushes it.
func New(level string) (main, access *zap.Logger, stop func(), err error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("log.level: %w", err)
	}
	enc := encoderConfig()
	out := zapcore.Lock(os.Stderr)
	main = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), out, lvl), zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel))
	async := newAsyncWriter(out, 64<<10, 8<<20, 100*time.Millisecond)
	access = zap.New(AccessCore(async, lvl)).Named("access")
	return main, access, async.stop, nil
}

// AccessCore is the access log's core: the JSON layout of New's loggers,
// written to out, with the plain request line encoded without zap's
// general-purpose escaping (see accessEncoder).
func AccessCore(out zapcore.WriteSyncer, lvl zapcore.LevelEnabler) zapcore.Core {
	return zapcore.NewCore(newAccessEncoder(), out, lvl)
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
	var buf [32]byte
	e.AppendByteString(appendISO8601UTC(buf[:0], t))
}

func appendISO8601UTC(b []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	s := lastStamp.Load()
	if s == nil || s.sec != sec {
		s = &stamp{sec: sec, prefix: t.Truncate(time.Second).Format("2006-01-02T15:04:05.")}
		lastStamp.Store(s)
	}
	b = append(b, s.prefix...)
	ms := t.Nanosecond() / int(time.Millisecond)
	if ms < 100 {
		b = append(b, '0')
	}
	if ms < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, int64(ms), 10)
	return append(b, 'Z')
}

// asyncWriter is the access log's write syncer. Request goroutines only
// append to an in-memory buffer; a background goroutine writes it out
// every interval or when it passes flushAt, so a request never waits on a
// write system call, nor on a slow log reader (a pipe to a container
// runtime, a busy disk). Only when max bytes are waiting does Write block,
// as backpressure: access log lines are never dropped.
type asyncWriter struct {
	out      zapcore.WriteSyncer
	flushAt  int
	max      int
	interval time.Duration

	flushMu sync.Mutex // one write-out at a time, so lines stay in order
	mu      sync.Mutex
	drained *sync.Cond // signalled after every write-out
	buf     []byte
	spare   []byte // the other buffer, while buf fills
	stopped bool

	kick chan struct{}
	done chan struct{}
}

func newAsyncWriter(out zapcore.WriteSyncer, flushAt, max int, interval time.Duration) *asyncWriter {
	w := &asyncWriter{
		out: out, flushAt: flushAt, max: max, interval: interval,
		buf:  make([]byte, 0, flushAt*2),
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	w.drained = sync.NewCond(&w.mu)
	go w.loop()
	return w
}

// Write appends p (one encoded log line) to the buffer.
func (w *asyncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	for len(w.buf)+len(p) > w.max && !w.stopped {
		w.wake()
		w.drained.Wait()
	}
	if w.stopped {
		w.mu.Unlock()
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= w.flushAt
	w.mu.Unlock()
	if full {
		w.wake()
	}
	return len(p), nil
}

func (w *asyncWriter) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Sync writes out what is buffered.
func (w *asyncWriter) Sync() error {
	w.flush()
	return nil
}

func (w *asyncWriter) loop() {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		case <-w.kick:
		}
		w.flush()
	}
}

// flush swaps the buffer out under the lock and writes it without it.
// Two buffers take turns, so a busy gateway makes no garbage here; one
// grown past 4×flushAt by a burst is dropped after its write-out.
func (w *asyncWriter) flush() {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	out := w.buf
	if w.spare != nil {
		w.buf, w.spare = w.spare, nil
	} else {
		w.buf = make([]byte, 0, w.flushAt*2)
	}
	w.mu.Unlock()
	if len(out) > 0 {
		_, _ = w.out.Write(out)
	}
	w.mu.Lock()
	if cap(out) <= 4*w.flushAt {
		w.spare = out[:0]
	}
	w.drained.Broadcast()
	w.mu.Unlock()
}

// stop writes out the rest; later writes go straight to the output.
func (w *asyncWriter) stop() {
	close(w.done)
	w.flush()
	w.mu.Lock()
	w.stopped = true
	w.drained.Broadcast()
	w.mu.Unlock()
	w.flush()
}
