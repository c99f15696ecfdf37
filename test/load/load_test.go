package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play the harness's roles: the harness
// re-executes its own binary (here, this test binary) as upstream, bare
// proxy and Go load generator.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "_") {
		os.Exit(runRole(os.Args[1], os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestQuickRun runs the whole harness in -quick mode, so that CI proves it
// still builds the gateway, starts every process, loads the revocations,
// drives every target and prints its table, with no error. It asserts no
// performance figure (under -race the roles it re-executes from this test
// binary are instrumented, so the bare proxy is the slow one).
func TestQuickRun(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := harnessMain([]string{"-quick"}, &stdout, &stderr)
	t.Logf("harness ran %s\n%s", time.Since(start).Round(time.Millisecond), stdout.String())
	if code != 0 {
		t.Fatalf("exit code %d\nstderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"req/s (median)", "redis cmds/req",
		"bare proxy", "portcullis public", "portcullis jwt cached", "portcullis jwt cold", "portcullis session",
		"keep-alive: 200 connections held open", " 0 errors",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	// In the Redis section, the session route reads Redis once per request
	// (HMGET; the throttled last-seen write adds a few more in its script);
	// the JWT routes never read a session or a revocation (only
	// the denylist's periodic rebuild may land in their runs).
	var session, jwt int
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasSuffix(line, "requests)") {
			continue
		}
		switch {
		case strings.HasPrefix(line, "  portcullis session"):
			session++
			// Requests still in flight when a run ends read Redis but are
			// not counted: allow a few per cent.
			var calls int
			var perReq float64
			_, after, _ := strings.Cut(line, "hmget ")
			if _, err := fmt.Sscanf(after, "%d (%f)", &calls, &perReq); err != nil || perReq < 0.99 || perReq > 1.1 {
				t.Errorf("the session target did not read Redis once per request: %s", line)
			}
		case strings.HasPrefix(line, "  portcullis jwt"):
			jwt++
			if strings.Contains(line, "hmget") || strings.Contains(line, "hgetall") || strings.Contains(line, " get ") {
				t.Errorf("a JWT target read Redis: %s", line)
			}
		}
	}
	if session != 1 || jwt != 2 {
		t.Errorf("Redis section: %d session and %d JWT lines, want 1 and 2", session, jwt)
	}
}

func TestParseCommandStats(t *testing.T) {
	t.Parallel()
	info := "# Commandstats\r\n" +
		"cmdstat_hgetall:calls=1200,usec=3000,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setinfo:calls=4,usec=4,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|id:calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=7,usec=70,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n"
	before := map[string]int64{"hgetall": 200, "info": 3}
	got := commandDelta(before, parseCommandStats(info))
	if len(got) != 1 || got["hgetall"] != 1000 {
		t.Fatalf("delta %v, want only hgetall 1000 (client and info are housekeeping)", got)
	}
}

func TestPercentileAndMedian(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	if p50, p99 := percentileUS(d, 50), percentileUS(d, 99); p50 != 50 || p99 != 99 {
		t.Errorf("p50 %v p99 %v, want 50 and 99", p50, p99)
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median of 3,1,2 = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of 4,1,3,2 = %v", m)
	}
}

// TestRatiosAreBracketed: a target run's ratio is against the geometric
// mean of the bare runs around it, the CPU ratio likewise, and the table
// gives the medians with quartiles.
func TestRatiosAreBracketed(t *testing.T) {
	t.Parallel()
	bare, tgt := &target{label: "bare proxy"}, &target{label: "portcullis x"}
	run := func(tg *target, rps, cpu float64) *runRec {
		return &runRec{t: tg, conns: 64, res: genResult{Requests: int64(rps), Seconds: 1}, cpuPerReq: cpu}
	}
	// The machine halves its speed between the bare runs of round 2: a
	// ratio against the run before alone would say 0.5 there, the bracket
	// says 0.71.
	b1, b2, b3, b4 := run(bare, 1000, 50), run(bare, 1000, 50), run(bare, 500, 100), run(bare, 1000, 50)
	t1, t2, t3 := run(tgt, 900, 55), run(tgt, 500, 100), run(tgt, 800, 60)
	t1.bare, t1.bareAfter = b1, b2
	t2.bare, t2.bareAfter = b2, b3
	t3.bare = b4 // the last run without a bare run after it
	rep := &report{h: &harness{bare: bare}, targets: []*target{bare, tgt}, runs: []*runRec{b1, t1, b2, t2, b3, b4, t3}}
	rows := rep.rows()
	got := rows[1].ratioRuns
	want := []float64{0.9, 500 / math.Sqrt(1000*500), 0.8}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			t.Fatalf("ratios %v, want %v", got, want)
		}
	}
	if rows[1].ratio != want[2] {
		t.Errorf("median ratio %v, want %v", rows[1].ratio, want[2])
	}
	if c := rows[1].cpuRatioRuns; math.Abs(c[0]-50.0/55) > 1e-9 || math.Abs(c[1]-math.Sqrt(50*100)/100) > 1e-9 || math.Abs(c[2]-50.0/60) > 1e-9 {
		t.Errorf("CPU ratios %v", c)
	}
	if q1, q3 := quartiles([]float64{5, 1, 4, 2, 3}); q1 != 2 || q3 != 4 {
		t.Errorf("quartiles of 1..5: %v, %v; want 2, 4", q1, q3)
	}
	if q1, q3 := quartiles([]float64{1, 2}); q1 != 1.25 || q3 != 1.75 {
		t.Errorf("quartiles of 1, 2: %v, %v; want 1.25, 1.75", q1, q3)
	}
}

// TestGenerator drives the Go load generator at answers of every framing
// it must parse: Content-Length, chunked, and Connection: close.
func TestGenerator(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			_, _ = io.WriteString(w, "o")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "k")
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "ok")
		case "/denied":
			http.Error(w, "no", http.StatusUnauthorized)
		default:
			if r.Header.Get("X-Variant") == "" {
				http.Error(w, "no variant header", http.StatusBadRequest)
				return
			}
			_, _ = io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(srv.Close)
	hdr := filepath.Join(t.TempDir(), "h")
	if err := os.WriteFile(hdr, []byte("X-Variant: a\nX-Variant: b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		path    string
		wantErr bool
	}{{"/length", false}, {"/chunked", false}, {"/close", false}, {"/denied", true}} {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := genMain([]string{"-addr", addr, "-path", tc.path, "-conns", "2", "-duration", "150ms", "-headers", hdr}, &out)
			if err != nil {
				t.Fatal(err)
			}
			var res genResult
			if err := json.Unmarshal(out.Bytes(), &res); err != nil {
				t.Fatalf("output %q: %v", out.String(), err)
			}
			if res.Requests == 0 || res.Seconds <= 0 || res.P50us <= 0 || res.P99us < res.P50us {
				t.Fatalf("implausible result %+v", res)
			}
			if gotErr := res.Errors > 0; gotErr != tc.wantErr || (tc.wantErr && res.Non2xx != res.Requests) {
				t.Fatalf("result %+v, want errors: %v", res, tc.wantErr)
			}
		})
	}
}
