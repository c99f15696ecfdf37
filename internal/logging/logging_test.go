package logging

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
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

// slowSink is a WriteSyncer that records what it got, slowly.
type slowSink struct {
	mu    sync.Mutex
	data  []byte
	delay time.Duration
}

func (s *slowSink) Write(p []byte) (int, error) {
	time.Sleep(s.delay) // a slow log reader, the condition under test
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = append(s.data, p...)
	return len(p), nil
}

func (s *slowSink) Sync() error { return nil }

func (s *slowSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.data)
}

// TestAsyncWriterKeepsEveryLineInOrder: many writers, a sink slower than
// them and a small bound (so Write must block as backpressure): after stop
// every line is there exactly once, each writer's lines in order.
func TestAsyncWriterKeepsEveryLineInOrder(t *testing.T) {
	sink := &slowSink{delay: 2 * time.Millisecond}
	w := newAsyncWriter(sink, 512, 2048, 10*time.Millisecond)
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				if _, err := fmt.Fprintf(w, "w%d-%04d\n", g, i); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	w.stop()
	got := strings.Split(strings.TrimSuffix(sink.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines written, want %d", len(got), writers*lines)
	}
	next := map[string]int{}
	for _, l := range got {
		g, n, _ := strings.Cut(l, "-")
		i, _ := strconv.Atoi(n)
		if i != next[g] {
			t.Fatalf("writer %s: line %d after %d", g, i, next[g]-1)
		}
		next[g]++
	}
	// After stop, writes go straight through.
	fmt.Fprintf(w, "late\n")
	if !strings.HasSuffix(sink.String(), "late\n") {
		t.Fatal("a write after stop was lost")
	}
}

func TestAsyncWriterFlushesOnItsOwn(t *testing.T) {
	sink := &slowSink{}
	w := newAsyncWriter(sink, 1<<20, 1<<22, 20*time.Millisecond)
	defer w.stop()
	fmt.Fprintf(w, "one line\n")
	deadline := time.Now().Add(5 * time.Second)
	for sink.String() != "one line\n" {
		if time.Now().After(deadline) {
			t.Fatal("a buffered line was not written out by the interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
