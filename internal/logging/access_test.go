package logging

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// encodeBoth encodes ent and fields with the access encoder and with zap's
// JSON encoder of the same configuration.
func encodeBoth(t testing.TB, enc zapcore.Encoder, ent zapcore.Entry, fields []zapcore.Field) (got, want string) {
	t.Helper()
	ref := zapcore.NewJSONEncoder(encoderConfig())
	if _, ok := enc.(*accessEncoder); !ok {
		t.Fatalf("encoder is %T", enc)
	}
	b, err := enc.EncodeEntry(ent, fields)
	if err != nil {
		t.Fatal(err)
	}
	got = b.String()
	b.Free()
	r, err := ref.EncodeEntry(ent, fields)
	if err != nil {
		t.Fatal(err)
	}
	want = r.String()
	r.Free()
	return got, want
}

func accessFields(reqID, route, path, subject string, status int, dur time.Duration, bytes int64) []zapcore.Field {
	return []zapcore.Field{
		zap.String("request_id", reqID),
		zap.String("route", route),
		zap.String("method", "GET"),
		zap.String("host", "api.example.com"),
		zap.String("path", path),
		zap.Int("status", status),
		zap.Duration("duration", dur),
		zap.Int64("bytes", bytes),
		zap.String("auth", "jwt"),
		zap.String("subject", subject),
		zap.String("client", "192.0.2.7"),
	}
}

// TestAccessEncoderMatchesJSONEncoder: every line, plain or not, is byte
// for byte what zap's JSON encoder writes.
func TestAccessEncoderMatchesJSONEncoder(t *testing.T) {
	at := time.Date(2026, 11, 23, 15, 4, 5, 67_000_000, time.FixedZone("CET", 3600))
	entry := func(mod func(*zapcore.Entry)) zapcore.Entry {
		e := zapcore.Entry{Level: zapcore.InfoLevel, Time: at, LoggerName: "access", Message: "request"}
		if mod != nil {
			mod(&e)
		}
		return e
	}
	plainFields := accessFields("0123456789abcdef", "orders", "/api/orders/1", "user-1", 200, 1234567*time.Nanosecond, 512)
	cases := []struct {
		name   string
		ent    zapcore.Entry
		fields []zapcore.Field
		fast   bool // the shortcut is expected to write it
	}{
		{"plain line", entry(nil), plainFields, true},
		{"warn level", entry(func(e *zapcore.Entry) { e.Level = zapcore.WarnLevel }), plainFields, true},
		{"no fields", entry(nil), nil, true},
		{"zero time", entry(func(e *zapcore.Entry) { e.Time = time.Time{} }), plainFields, true},
		{"no logger name", entry(func(e *zapcore.Entry) { e.LoggerName = "" }), plainFields, true},
		{"empty strings and key", entry(nil), []zapcore.Field{zap.String("", ""), zap.String("subject", "")}, true},
		{"numbers", entry(nil), []zapcore.Field{
			zap.Int64("min", math.MinInt64), zap.Int64("max", math.MaxInt64), zap.Int("zero", 0),
			zap.Duration("d0", 0), zap.Duration("d1", 1), zap.Duration("dneg", -1500*time.Millisecond),
			zap.Duration("dmax", math.MaxInt64), zap.Duration("dmin", math.MinInt64), zap.Duration("hour", time.Hour),
		}, true},
		{"quote in a path", entry(nil), accessFields("r", "orders", `/a"b`, "u", 200, time.Millisecond, 1), false},
		{"backslash in a subject", entry(nil), accessFields("r", "orders", "/a", `dom\user`, 200, time.Millisecond, 1), false},
		{"control byte", entry(nil), accessFields("r", "orders", "/a\x01", "u", 200, time.Millisecond, 1), false},
		{"newline in a message", entry(func(e *zapcore.Entry) { e.Message = "two\nlines" }), plainFields, false},
		{"UTF-8 subject", entry(nil), accessFields("r", "orders", "/a", "jürgen", 200, time.Millisecond, 1), false},
		{"invalid UTF-8", entry(nil), accessFields("r", "orders", "/a\xff", "u", 200, time.Millisecond, 1), false},
		{"odd key", entry(nil), []zapcore.Field{zap.String("a\"b", "v")}, false},
		{"error field", entry(nil), append(accessFields("r", "x", "/", "u", 502, time.Second, 0), zap.Error(errors.New("dial tcp: refused"))), false},
		{"bool field", entry(nil), []zapcore.Field{zap.Bool("ok", true)}, false},
		{"caller", entry(func(e *zapcore.Entry) { e.Caller = zapcore.NewEntryCaller(0, "x/y.go", 7, true) }), plainFields, false},
		{"stack", entry(func(e *zapcore.Entry) { e.Stack = "goroutine 1" }), plainFields, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := plainEntry(c.ent, c.fields); got != c.fast {
				t.Errorf("plainEntry = %v, want %v", got, c.fast)
			}
			got, want := encodeBoth(t, newAccessEncoder(), c.ent, c.fields)
			if got != want {
				t.Errorf("access encoder wrote\n%s\nJSON encoder wrote\n%s", got, want)
			}
		})
	}
}

// TestAccessEncoderWithContext: fields added with With live in the JSON
// encoder's state, so a cloned encoder writes through it and keeps them.
func TestAccessEncoderWithContext(t *testing.T) {
	var out, ref bytes.Buffer
	// One fixed clock: the two loggers' lines must not differ by their time.
	clock := zap.WithClock(fixedClock{time.Date(2026, 11, 23, 15, 4, 5, 999_000_000, time.UTC)})
	l := zap.New(zapcore.NewCore(newAccessEncoder(), zapcore.AddSync(&out), zapcore.InfoLevel), clock).Named("access")
	r := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(encoderConfig()), zapcore.AddSync(&ref), zapcore.InfoLevel), clock).Named("access")
	for _, lg := range []*zap.Logger{l, r} {
		lg.Info("request", zap.String("route", "a"))
		lg.With(zap.String("node", "n1")).Info("request", zap.String("route", "b"))
	}
	if out.String() != ref.String() {
		t.Fatalf("access logger wrote\n%s\nJSON logger wrote\n%s", out.String(), ref.String())
	}
	if !bytes.Contains(out.Bytes(), []byte(`"node":"n1","route":"b"`)) {
		t.Fatalf("the With field is missing:\n%s", out.String())
	}
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                         { return c.t }
func (c fixedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

func FuzzAccessEncoder(f *testing.F) {
	f.Add("0123456789abcdef", "/api/orders/1", "user-1", "request", int64(200), int64(1234567), int64(1700000000123456789))
	f.Add(`a"b`, "/x\\y", "jürgen", "two\nlines", int64(-1), int64(math.MinInt64), int64(0))
	f.Add("", "", "", "", int64(0), int64(0), int64(-62135596800000000))
	f.Fuzz(func(t *testing.T, reqID, path, subject, msg string, status, dur, unixNano int64) {
		ent := zapcore.Entry{Level: zapcore.InfoLevel, Time: time.Unix(0, unixNano), LoggerName: "access", Message: msg}
		fields := accessFields(reqID, "orders", path, subject, int(status), time.Duration(dur), status)
		got, want := encodeBoth(t, newAccessEncoder(), ent, fields)
		if got != want {
			t.Fatalf("access encoder wrote\n%q\nJSON encoder wrote\n%q", got, want)
		}
	})
}

func BenchmarkAccessLine(b *testing.B) {
	ent := zapcore.Entry{Level: zapcore.InfoLevel, Time: time.Now(), LoggerName: "access", Message: "request"}
	fields := accessFields("0123456789abcdef0123456789abcdef", "orders", "/api/orders/123", "user-12345", 200, 123456*time.Nanosecond, 1234)
	for _, enc := range []struct {
		name string
		enc  zapcore.Encoder
	}{{"access", newAccessEncoder()}, {"json", zapcore.NewJSONEncoder(encoderConfig())}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf, err := enc.enc.EncodeEntry(ent, fields)
				if err != nil {
					b.Fatal(err)
				}
				buf.Free()
			}
		})
	}
}
