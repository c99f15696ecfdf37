package logging

import (
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

type strEnc struct {
	zapcore.PrimitiveArrayEncoder
	got string
}

func (e *strEnc) AppendByteString(b []byte) { e.got = string(b) }

func TestISO8601UTC(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), "2026-11-23T12:00:00.000Z"},
		{time.Date(2026, 11, 23, 12, 0, 0, 7e6, time.UTC), "2026-11-23T12:00:00.007Z"},
		{time.Date(2026, 11, 23, 12, 0, 0, 45e6, time.UTC), "2026-11-23T12:00:00.045Z"},
		{time.Date(2026, 11, 23, 12, 0, 0, 999999999, time.UTC), "2026-11-23T12:00:00.999Z"},
		{time.Date(2026, 11, 23, 13, 0, 1, 123e6, loc), "2026-11-23T12:00:01.123Z"},
		{time.Date(2026, 11, 23, 12, 0, 0, 500e6, time.UTC), "2026-11-23T12:00:00.500Z"}, // back to an earlier second
	} {
		e := &strEnc{}
		ISO8601UTC(tc.t, e)
		if e.got != tc.want {
			t.Errorf("ISO8601UTC(%v) = %q, want %q", tc.t, e.got, tc.want)
		}
	}
}

func BenchmarkISO8601UTC(b *testing.B) {
	e := &strEnc{}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		ISO8601UTC(now, e)
	}
}
